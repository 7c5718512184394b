"""MobileNet-EdgeTPU: feature geometry at each output stride, the reference
graph's layer shapes (those of Google's Cityscapes file), fused blocks."""

import keras
import pytest

from kerasseg.backbones import build_backbone
from tests.backbones.backbone_checks import check_geometry


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_geometry(output_stride):
    check_geometry(
        lambda inputs, **kwargs: build_backbone("mobilenet_edgetpu", inputs, **kwargs), 67,
        output_stride,
    )


def test_shapes_of_the_reference_graph():
    """Kernel shapes read off deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite."""
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, build_backbone("mobilenet_edgetpu", inputs, output_stride=16))
    shapes = {
        "Conv": (3, 3, 3, 24),
        "expanded_conv_project": (1, 1, 24, 16),  # block 0: the projection alone
        "expanded_conv_1_expand": (3, 3, 16, 128),  # fused: a plain 3x3 expansion
        "expanded_conv_5_expand": (3, 3, 24, 192),
        "expanded_conv_9_expand": (1, 1, 40, 320),
        "expanded_conv_9_depthwise": (3, 3, 320, 1),
        "expanded_conv_17_depthwise": (5, 5, 576, 1),
        "expanded_conv_21_project": (1, 1, 960, 144),
        "Conv_1": (1, 1, 144, 1280),
    }
    for name, shape in shapes.items():
        assert tuple(model.get_layer(name).kernel.shape) == shape, name
    adds = sorted(int(layer.name.split("_")[2]) for layer in model.layers
                  if layer.name.endswith("_add"))
    # Stage-opening blocks (expansion 8) have no residual, block 13 included.
    assert adds == [2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20]
    # As in the file at output stride 16: block 17 keeps stride 1, the next ones dilate.
    assert model.get_layer("expanded_conv_17_depthwise").strides == (1, 1)
    assert model.get_layer("expanded_conv_17_depthwise").dilation_rate == (1, 1)
    assert model.get_layer("expanded_conv_18_depthwise").dilation_rate == (2, 2)
    assert not any(layer.name.startswith("expanded_conv_4_depthwise") for layer in model.layers)


def test_rejects_application_weights():
    with pytest.raises(ValueError, match="no keras.applications weights"):
        build_backbone("mobilenet_edgetpu", keras.Input((None, None, 3)), weights="imagenet")
