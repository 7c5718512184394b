"""PSPNet: shared model checks on a tiny MobileNetV3-Small config, the auxiliary
head, pyramid pooling geometry, TFLite parity and the paper-size count."""

import keras
import numpy as np
import pytest

import kerasseg
from kerasseg.models.pspnet import AUX_LOSS_WEIGHT, without_auxiliary
from tests.model_tester import ModelTester, tiny_batch
from tests.models.context_checks import check_tflite_parity

# The shortest backbone keeps these tests fast.
TINY = {
    "backbone": "mobilenetv3small",
    "backbone_kwargs": {"minimalistic": True},
    "output_stride": 8,
    "ppm_filters": 8,
    "head_filters": 16,
    "aux_filters": 8,
}


class TestPSPNet(ModelTester):
    builder = staticmethod(kerasseg.pspnet)
    # Stride-8 logits can draw the 8-pixel stripes of `tiny_batch`.
    config = {**TINY, "dropout": 0.0}
    overfit_learning_rate = 1e-2


def test_auxiliary_head_and_its_removal():
    model = kerasseg.pspnet(3, auxiliary=True, **TINY)
    assert model.output_names == ["logits", "aux_logits"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 40, 3)).astype("float32")
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 48, 40, 3)
    # The auxiliary head reads stage 4 ("P4"), not the pyramid pooling output.
    aux_input = model.get_layer("aux_conv").input
    stage4 = model.get_layer("expanded_conv_8_expand_activation").output
    assert aux_input.shape[-1] == stage4.shape[-1] != model.get_layer("ppm_concat").output.shape[-1]

    deployable = without_auxiliary(model)
    assert len(deployable.outputs) == 1 and deployable.layers[-1].name == "logits"
    assert not any(layer.name.startswith("aux_") for layer in deployable.layers)
    np.testing.assert_array_equal(deployable(x), logits)

    images, masks = tiny_batch((48, 40))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss=[loss, loss], loss_weights=[1.0, AUX_LOSS_WEIGHT])
    result = model.evaluate(images, (masks, masks), verbose=0, return_dict=True)
    np.testing.assert_allclose(
        result["loss"],
        result["logits_loss"] + AUX_LOSS_WEIGHT * result["aux_logits_loss"],
        rtol=1e-5,
    )


def test_auxiliary_off_by_default():
    model = kerasseg.pspnet(3, **TINY)
    assert len(model.outputs) == 1
    assert not any(layer.name.startswith("aux_") for layer in model.layers)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_pyramid_pooling_at_output_stride(output_stride):
    model = kerasseg.pspnet(3, input_shape=(64, 64, 3), **{**TINY, "output_stride": output_stride})
    side = 64 // output_stride
    assert model.get_layer("ppm_concat").output.shape == (None, side, side, 576 + 4 * 8)
    for bins in (1, 2, 3, 6):
        assert model.get_layer(f"ppm_pool_{bins}").output.shape == (None, bins, bins, 576)


def test_tflite_builtin_only_and_matches_keras():
    # At 64x64 and stride 16 the 4x4 map is pooled into 3x3 and 6x6 bins too:
    # overlapping and repeated bins must still match.
    model = kerasseg.pspnet(3, input_shape=(64, 64, 3), **{**TINY, "output_stride": 16})
    ops = check_tflite_parity(model)
    assert {"MEAN", "RESIZE_BILINEAR"} <= ops


def test_paper_size_parameter_count():
    # ResNet-50 at output stride 8, 150 classes (ADE20K), auxiliary head.
    model = kerasseg.pspnet(150, auxiliary=True)
    assert model.count_params() == 49_142_444
    assert without_auxiliary(model).count_params() == 46_743_574


@pytest.mark.parametrize(
    ("argument", "value"),
    [("bins", (1, 1)), ("bins", ()), ("output_stride", 4), ("dropout", 1.0), ("head_filters", 0)],
)
def test_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        kerasseg.pspnet(3, **{**TINY, argument: value})
