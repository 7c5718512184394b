"""MobileNetV2/V3 backbones: ImageNet-weight copy by name (Keras' own
preprocessing layer replaced by ours), output-stride geometry, dilation."""

import keras
import numpy as np
import pytest

from kerasseg.backbones import build_backbone, mobilenet
from tests.backbones.backbone_checks import check_geometry, check_weights_match_application

V2_LEVELS = {
    "P1": "block_1_expand_relu",
    "P2": "block_3_expand_relu",
    "P3": "block_6_expand_relu",
    "P4": "block_13_expand_relu",
    "P5": "out_relu",
}
# Keras leaves MobileNetV3 activations unnamed: the reference is the named
# batch normalisation followed by the activation the paper gives that layer.
V3_SMALL_LEVELS = {
    "P1": ("conv_bn", "hard_swish"),
    "P2": ("expanded_conv_1_expand_bn", "relu"),
    "P3": ("expanded_conv_3_expand_bn", "hard_swish"),
    "P4": ("expanded_conv_8_expand_bn", "hard_swish"),
    "P5": ("conv_1_bn", "hard_swish"),
}
V3_LARGE_LEVELS = {
    "P1": ("expanded_conv_1_expand_bn", "relu"),
    "P2": ("expanded_conv_3_expand_bn", "relu"),
    "P3": ("expanded_conv_6_expand_bn", "hard_swish"),
    "P4": ("expanded_conv_12_expand_bn", "hard_swish"),
    "P5": ("conv_1_bn", "hard_swish"),
}


def _named(names):
    return {
        level: (lambda model, n=name: model.get_layer(n).output) for level, name in names.items()
    }


def _activated(names):
    def reference(name, activation):
        return lambda model: keras.layers.Activation(activation)(model.get_layer(name).output)

    return {level: reference(*spec) for level, spec in names.items()}


@pytest.mark.parametrize("alpha", [0.35])
def test_mobilenetv2_loads_application_weights_by_name(alpha, tmp_path):
    check_weights_match_application(
        mobilenet.mobilenetv2,
        keras.applications.MobileNetV2,
        _named(V2_LEVELS),
        tmp_path,
        preprocess=keras.applications.mobilenet_v2.preprocess_input,
        alpha=alpha,
    )


@pytest.mark.parametrize(
    ("backbone", "application", "levels"),
    [
        (mobilenet.mobilenetv3small, keras.applications.MobileNetV3Small, V3_SMALL_LEVELS),
        (mobilenet.mobilenetv3large, keras.applications.MobileNetV3Large, V3_LARGE_LEVELS),
    ],
)
def test_mobilenetv3_loads_application_weights_by_name(backbone, application, levels, tmp_path):
    # The application rescales raw pixels itself (include_preprocessing=True).
    check_weights_match_application(backbone, application, _activated(levels), tmp_path)


def test_mobilenetv3_minimalistic_loads_application_weights(tmp_path):
    levels = {level: (bn, "relu") for level, (bn, _) in V3_SMALL_LEVELS.items()}
    check_weights_match_application(
        mobilenet.mobilenetv3small,
        keras.applications.MobileNetV3Small,
        _activated(levels),
        tmp_path,
        minimalistic=True,
        alpha=0.75,
    )


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3small", "mobilenetv3large"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_geometry(name, output_stride):
    check_geometry(
        lambda inputs, **kwargs: build_backbone(name, inputs, **kwargs), 67, output_stride
    )


def test_dilation_follows_output_stride():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, mobilenet.mobilenetv2(inputs, output_stride=8))
    # block_6 would stride to 16: it keeps stride 1 at the current rate, and
    # the blocks after it dilate by 2, then by 4 past block_13.
    depthwise = {i: model.get_layer(f"block_{i}_depthwise") for i in (5, 6, 7, 12, 13, 14, 16)}
    assert depthwise[6].strides == (1, 1) and depthwise[6].dilation_rate == (1, 1)
    assert depthwise[5].dilation_rate == (1, 1)
    assert [depthwise[i].dilation_rate[0] for i in (7, 12, 13, 14, 16)] == [2, 2, 2, 4, 4]
    out = model(np.zeros((1, 64, 48, 3), "float32"))
    assert out["P5"].shape == (1, 8, 6, 1280)


def test_without_last_conv_p5_is_the_320_channel_block(tmp_path):
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(None, None, 3)
    )
    path = tmp_path / "mobilenetv2.weights.h5"
    reference.save_weights(path)
    inputs = keras.Input((None, None, 3))
    features = mobilenet.mobilenetv2(inputs, weights=str(path), include_last_conv=False)
    model = keras.Model(inputs, features)
    assert features["P5"].shape[-1] == 320
    assert "Conv_1" not in {layer.name for layer in model.layers}
    # 2,257,984 parameters in the application minus Conv_1 and its BN.
    assert model.count_params() == 2_257_984 - 320 * 1280 - 4 * 1280
    probe = keras.Model(reference.input, reference.get_layer("block_16_project_BN").output)
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    expected = probe(keras.applications.mobilenet_v2.preprocess_input(images.copy()))
    np.testing.assert_allclose(model(images)["P5"], expected, atol=1e-4)


def test_alpha_changes_width():
    inputs = keras.Input((None, None, 3))
    features = mobilenet.mobilenetv2(inputs, alpha=0.35)
    # 0.35 * 16 rounds to 8, the first conv to 16; the last conv stays 1280.
    assert features["P2"].shape[-1] == 6 * 8
    assert features["P5"].shape[-1] == 1280
    with pytest.raises(ValueError, match="alpha"):
        mobilenet.mobilenetv3large(inputs, alpha=0)
