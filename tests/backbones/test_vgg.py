"""VGG16 backbone: ImageNet-weight copy by name and output-stride geometry."""

import keras
import numpy as np
import pytest

from kerasseg.backbones import vgg
from tests.backbones.backbone_checks import check_geometry, check_weights_match_application

VGG16_LEVELS = {f"P{n}": f"block{n}_pool" for n in range(1, 6)}


def test_vgg16_loads_application_weights_by_name(tmp_path):
    check_weights_match_application(
        vgg.vgg16,
        keras.applications.VGG16,
        {level: (lambda m, n=name: m.get_layer(n).output) for level, name in VGG16_LEVELS.items()},
        tmp_path,
        preprocess=keras.applications.vgg16.preprocess_input,
    )


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_vgg16_geometry(output_stride):
    # VGG pools with "valid" 2x2 windows: sizes halve exactly at 64.
    check_geometry(vgg.vgg16, 64, output_stride)


def test_vgg16_bn_loads_application_conv_weights_by_name(tmp_path):
    reference = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / "vgg16_notop.weights.h5"
    reference.save_weights(path)
    inputs = keras.Input((None, None, 3))
    ours = keras.Model(inputs, vgg.vgg16_bn(inputs, weights=str(path)))
    convs = [layer for layer in reference.layers if layer.weights]
    assert len(convs) == 13
    for layer in convs:
        for mine, theirs in zip(ours.get_layer(layer.name).get_weights(), layer.get_weights(),
                                strict=True):
            np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="base_filters=64"):
        vgg.vgg16_bn(keras.Input((None, None, 3)), weights=str(path), base_filters=32)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_vgg16_bn_geometry(output_stride):
    check_geometry(vgg.vgg16_bn, 64, output_stride, base_filters=4)


def test_vgg16_bn_pools_in_ceil_mode_and_records_indices():
    # Odd sizes keep their last row and column (ceil mode), and each pooling
    # layer's second output holds the argmax indices SegNet's decoder uses.
    check_geometry(vgg.vgg16_bn, 67, 32, base_filters=4)
    inputs = keras.Input((67, 67, 3))
    encoder = keras.Model(inputs, vgg.vgg16_bn(inputs, base_filters=4))
    for level in range(1, 6):
        pooled, indices = encoder.get_layer(f"block{level}_pool").output
        assert pooled is encoder.output[f"P{level}"]
        assert indices.dtype == "int32" and indices.shape == pooled.shape
