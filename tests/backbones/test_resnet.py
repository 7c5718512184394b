"""Dilated ResNet backbones: ImageNet-weight copy by name, output-stride
geometry, dilation rates and multi-grid."""

import keras
import numpy as np
import pytest

from kerasseg.backbones import build_backbone, resnet
from tests.backbones.backbone_checks import check_geometry, check_weights_match_application

RESNET50_LEVELS = {
    "P1": "conv1_relu",
    "P2": "conv2_block3_out",
    "P3": "conv3_block4_out",
    "P4": "conv4_block6_out",
    "P5": "conv5_block3_out",
}


def _outputs(names):
    return {
        level: (lambda model, n=name: model.get_layer(n).output) for level, name in names.items()
    }


def test_resnet50_loads_application_weights_by_name(tmp_path):
    check_weights_match_application(
        resnet.resnet50,
        keras.applications.ResNet50,
        _outputs(RESNET50_LEVELS),
        tmp_path,
        preprocess=keras.applications.resnet.preprocess_input,
    )


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("size", [64, 67])
def test_resnet50_geometry(output_stride, size):
    check_geometry(resnet.resnet50, size, output_stride)


def test_resnet101_geometry_and_depth():
    check_geometry(resnet.resnet101, 64, 16)
    inputs = keras.Input((64, 64, 3))
    features = resnet.resnet101(inputs)
    names = {layer.name for layer in keras.Model(inputs, features).layers}
    assert "conv4_block23_out" in names and "conv4_block24_out" not in names
    # 44.7M parameters with the classifier; 42.66M without it (keras.applications).
    assert keras.Model(inputs, features).count_params() == 42_658_176


def _rates(model, stage, blocks):
    return [model.get_layer(f"{stage}_block{i}_2_conv").dilation_rate for i in range(1, blocks + 1)]


@pytest.mark.parametrize(
    ("output_stride", "conv4", "conv5"), [(32, 1, 1), (16, 1, 2), (8, 2, 4)]
)
def test_dilation_replaces_stride(output_stride, conv4, conv5):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, resnet.resnet50(inputs, output_stride=output_stride))
    assert _rates(model, "conv4", 6) == [(conv4, conv4)] * 6
    assert _rates(model, "conv5", 3) == [(conv5, conv5)] * 3
    strided = [model.get_layer(f"conv{s}_block1_1_conv").strides for s in (3, 4, 5)]
    expected = {32: [(2, 2)] * 3, 16: [(2, 2), (2, 2), (1, 1)], 8: [(2, 2), (1, 1), (1, 1)]}
    assert strided == expected[output_stride]


def test_multi_grid_multiplies_last_stage_rates():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(
        inputs, build_backbone("resnet50", inputs, output_stride=16, multi_grid=(1, 2, 4))
    )
    assert _rates(model, "conv5", 3) == [(2, 2), (4, 4), (8, 8)]
    assert _rates(model, "conv4", 6) == [(1, 1)] * 6


def test_dynamic_size_runs_and_matches_static_geometry():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, resnet.resnet50(inputs, output_stride=8))
    out = model(np.zeros((1, 45, 67, 3), "float32"))
    assert out["P5"].shape == (1, 6, 9, 2048)
    assert out["P2"].shape == (1, 12, 17, 256)


@pytest.mark.parametrize("multi_grid", [(1, 2), (1, 0, 2), "124", (1.0, 2, 4)])
def test_rejects_bad_multi_grid(multi_grid):
    with pytest.raises(ValueError, match="multi_grid"):
        resnet.resnet50(keras.Input((None, None, 3)), multi_grid=multi_grid)


def test_rejects_bad_output_stride():
    with pytest.raises(ValueError, match="output_stride"):
        build_backbone("resnet50", keras.Input((None, None, 3)), output_stride=12)
