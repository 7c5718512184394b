"""DeepLabv3 and DeepLabv3+: shared model checks on tiny MobileNet configs,
ASPP rates against the output stride, the paper's default configuration,
the image-pooling branch, and builtin-only TFLite parity."""

import keras
import numpy as np
import pytest

import kerasseg
from tests.model_tester import ModelTester
from tests.models.context_checks import check_tflite_parity

TINY_V3 = {
    "backbone": "mobilenetv3small",
    "backbone_kwargs": {"minimalistic": True},
    "output_stride": 8,
    "aspp_filters": 16,
}
TINY_V3PLUS = {
    "backbone": "mobilenetv2",
    "backbone_kwargs": {"alpha": 0.35},
    "aspp_filters": 16,
    "low_level_filters": 8,
    "decoder_filters": 16,
}


class TestDeepLabV3(ModelTester):
    builder = staticmethod(kerasseg.deeplabv3)
    # Stride-8 logits can draw the 8-pixel stripes of `tiny_batch`.
    config = {**TINY_V3, "dropout": 0.0}
    overfit_learning_rate = 1e-2


class TestDeepLabV3Plus(ModelTester):
    builder = staticmethod(kerasseg.deeplabv3plus)
    # The shortest backbone keeps the shared checks fast; MobileNetV2 is
    # covered by the conversion and phone-configuration tests below.
    config = {**TINY_V3PLUS, **TINY_V3, "output_stride": 16, "dropout": 0.0}
    overfit_learning_rate = 1e-2


def _atrous_rates(model):
    rates = []
    for index in (1, 2, 3):
        names = (f"aspp_conv_{index}_depthwise", f"aspp_conv_{index}")
        layer = next(model.get_layer(n) for n in names if n in {lay.name for lay in model.layers})
        rates.append(layer.dilation_rate)
    return rates


@pytest.mark.parametrize(
    ("output_stride", "rates"), [(16, (6, 12, 18)), (8, (12, 24, 36)), (32, (3, 6, 9))]
)
def test_aspp_rates_follow_output_stride(output_stride, rates):
    # DeepLabv3+ at output stride 16 is checked by the default-configuration test.
    config = {**TINY_V3, "output_stride": output_stride}
    model = kerasseg.deeplabv3(3, input_shape=(64, 64, 3), **config)
    assert _atrous_rates(model) == [(r, r) for r in rates]
    side = 64 // output_stride
    assert model.get_layer("aspp_concat").output.shape[1:3] == (side, side)


def test_explicit_aspp_rates_override():
    model = kerasseg.deeplabv3(3, aspp_rates=(1, 2, 3), **TINY_V3)
    assert _atrous_rates(model) == [(1, 1), (2, 2), (3, 3)]


def test_deeplabv3plus_default_is_paper_configuration():
    model = kerasseg.deeplabv3plus()
    names = {layer.name for layer in model.layers}
    assert model.output.shape == (None, None, None, 21)
    assert "middle_flow_block16_add" in names  # aligned Xception-65
    assert model.get_layer("exit_flow_block1_sepconv3_depthwise").strides == (1, 1)  # stride 16
    assert _atrous_rates(model) == [(6, 6), (12, 12), (18, 18)]
    # Separable ASPP and decoder convolutions, 48-channel low-level projection.
    assert isinstance(model.get_layer("aspp_conv_1_depthwise"), keras.layers.DepthwiseConv2D)
    assert isinstance(model.get_layer("decoder_conv2_depthwise"), keras.layers.DepthwiseConv2D)
    assert model.get_layer("decoder_low_level").filters == 48
    assert model.get_layer("decoder_low_level").input.shape[-1] == 256
    # Same count as the reference Keras port of the paper's model (bonlime).
    assert model.count_params() == 41_258_213


def test_mobilenetv2_defaults_to_the_reference_configuration():
    # tensorflow/models research/deeplab with model_variant mobilenet_v2: no
    # atrous branches, the 320-channel last block; Google's quantized
    # deeplabv3_mnv2_pascal_quant.tflite has this graph.
    model = kerasseg.deeplabv3(21, backbone="mobilenetv2")
    names = {layer.name for layer in model.layers}
    assert {"aspp_conv_0", "aspp_pool_conv"} <= names and "aspp_conv_1" not in names
    assert "Conv_1" not in names and model.get_layer("aspp_conv_0").input.shape[-1] == 320
    assert model.count_params() == 2_146_645
    full = kerasseg.deeplabv3(21, backbone="mobilenetv2", aspp_rates=(6, 12, 18),
                              backbone_kwargs={"include_last_conv": True})
    assert _atrous_rates(full) == [(6, 6), (12, 12), (18, 18)]
    assert full.count_params() == 12_099_925


def test_separable_false_gives_plain_convolutions():
    model = kerasseg.deeplabv3plus(3, separable=False, **TINY_V3PLUS)
    names = {layer.name for layer in model.layers}
    assert not any(n.startswith(("aspp_conv", "decoder_conv")) and "depthwise" in n for n in names)
    assert model.get_layer("aspp_conv_2").dilation_rate == (12, 12)
    assert model.get_layer("decoder_conv1").kernel_size == (3, 3)


def test_separable_aspp_keeps_the_decoder_plain():
    model = kerasseg.deeplabv3plus(3, separable="aspp", **TINY_V3PLUS)
    assert model.get_layer("aspp_conv_2_depthwise").dilation_rate == (12, 12)
    assert "decoder_conv1_depthwise" not in {layer.name for layer in model.layers}
    assert model.get_layer("decoder_conv1").kernel_size == (3, 3)
    plain, separable = (kerasseg.deeplabv3plus(3, separable=choice, **TINY_V3PLUS)
                        for choice in (False, True))
    assert separable.count_params() < model.count_params() < plain.count_params()


@pytest.mark.parametrize("backbone", ["mobilenetv2", "mobilenetv3small"])
def test_phone_configurations(backbone):
    model = kerasseg.deeplabv3plus(2, backbone=backbone)
    out = model(np.zeros((1, 65, 47, 3), "float32"))
    assert out.shape == (1, 65, 47, 2)
    assert model.count_params() < 5_000_000


def test_image_pooling_branch_is_a_spatial_broadcast():
    model = kerasseg.deeplabv3(3, **TINY_V3)
    probe = keras.Model(model.input, model.get_layer("aspp_pool_resize").output)
    out = np.asarray(probe(np.random.default_rng(0).uniform(0, 255, (1, 45, 67, 3))))
    assert out.shape[1:3] == (6, 9)
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), atol=1e-6)


def test_tflite_builtin_only_and_matches_keras():
    # DeepLabv3+ is checked with its trained model in tests/export/test_parity_builders.py.
    model = kerasseg.deeplabv3(3, input_shape=(64, 64, 3), **TINY_V3)
    ops = check_tflite_parity(model)
    assert "MEAN" in ops  # the image-pooling branch


@pytest.mark.parametrize(
    ("argument", "value"),
    [("multi_grid", (1, 2, 4)), ("output_stride", 12), ("aspp_rates", (6, 0, 18)),
     ("decoder_filters", 0), ("backbone", "resnet18"), ("separable", "decoder")],
)
def test_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        kerasseg.deeplabv3plus(3, **{**TINY_V3PLUS, argument: value})
