"""Aligned Xception-65: geometry at each output stride, its DeepLab
structure, and weights by file (no Keras ImageNet weights exist)."""

import keras
import numpy as np
import pytest

from kerasseg.backbones import build_backbone, xception
from tests.backbones.backbone_checks import check_geometry, randomize_batch_norm
from tests.layer_checks import assert_outputs_close


@pytest.fixture(scope="module")
def backbone():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, xception.xception65(inputs, output_stride=16))


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_geometry(output_stride):
    check_geometry(xception.xception65, 67, output_stride)


def test_structure(backbone):
    names = [layer.name for layer in backbone.layers]
    # No pooling anywhere: every downsampling is a strided convolution.
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in backbone.layers)
    assert "middle_flow_block16_add" in names and "middle_flow_block17_add" not in names
    # 65 = 2 stem convs + 3 x (3 entry + 16 middle + 2 exit) separable convs.
    convs = [
        layer for layer in backbone.layers
        if isinstance(layer, keras.layers.Conv2D) and not layer.name.endswith("_shortcut")
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
    ]
    assert len(convs) == 2 + 3 * 21
    # BN and ReLU after every depthwise convolution.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            assert f"{layer.name}_relu" in names
    # At output stride 16 the exit flow keeps stride 1 and dilates by 2 after it.
    assert backbone.get_layer("exit_flow_block1_sepconv3_depthwise").strides == (1, 1)
    assert backbone.get_layer("exit_flow_block2_sepconv1_depthwise").dilation_rate == (2, 2)
    assert backbone.get_layer("entry_flow_block3_sepconv3_depthwise").strides == (2, 2)
    assert {level: f.shape[-1] for level, f in zip("12345", backbone.outputs)} == {
        "1": 128, "2": 256, "3": 728, "4": 1024, "5": 2048,
    }


def test_imagenet_weights_rejected_clearly():
    with pytest.raises(ValueError, match="No Keras ImageNet weights exist"):
        build_backbone("xception65", keras.Input((None, None, 3)), weights="imagenet")


def test_weights_file_round_trip(backbone, tmp_path):
    randomize_batch_norm(backbone, seed=3)
    backbone.set_weights(
        [w if w.ndim == 1 else w * 1.01 for w in backbone.get_weights()]
    )
    path = tmp_path / "xception65.weights.h5"
    backbone.save_weights(path)
    inputs = keras.Input((None, None, 3))
    loaded = keras.Model(inputs, xception.xception65(inputs, output_stride=16, weights=str(path)))
    images = np.random.default_rng(0).uniform(0, 255, (1, 33, 47, 3)).astype("float32")
    expected, actual = backbone(images), loaded(images)
    for level in expected:
        assert_outputs_close(actual[level], expected[level], atol=1e-4)


def test_missing_weights_file_named():
    with pytest.raises(ValueError, match="backbone_weights"):
        xception.xception65(keras.Input((None, None, 3)), weights="/nonexistent.weights.h5")
