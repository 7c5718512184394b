"""What every builder shares: batch-norm settings given once, mixed precision
with float32 logits, and backbones given as a name or as your own model."""

import keras
import numpy as np
import pytest

from kerasseg.layers import BatchNormSettings
from kerasseg.models import MODELS
from kerasseg.train import batch_norm_layers

MOBILENET = {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35}}
# name -> a tiny configuration of the builder with batch normalisation in it.
TINY = {
    "fcn32s": MOBILENET, "fcn16s": MOBILENET, "fcn8s": MOBILENET,
    "segnet": {"base_filters": 8},
    "unet": {"base_filters": 4, "depth": 2, "batch_norm": True},
    "pspnet": {**MOBILENET, "ppm_filters": 4, "head_filters": 8, "auxiliary": True,
               "aux_filters": 4},
    "deeplabv3": {**MOBILENET, "aspp_filters": 8},
    "deeplabv3plus": {**MOBILENET, "aspp_filters": 8, "low_level_filters": 4,
                      "decoder_filters": 8},
    "lraspp": {"backbone": "mobilenetv3small", "backbone_kwargs": {"alpha": 0.35},
               "head_filters": 8},
    "lpsnet": {**MOBILENET, "fpn_filters": 8, "semantic_filters": 4, "head_convs": 1,
               "thing_classes": (1, 2)},
}


def test_every_builder_has_a_tiny_configuration():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_norm_layer_takes_the_settings_given_at_build_time(name):
    settings = {"synchronized": True, "momentum": 0.9, "epsilon": 1e-4}
    model = MODELS[name](3, input_shape=(64, 64, 3), norm=settings, **TINY[name])
    layers = batch_norm_layers(model)
    assert layers
    assert {(layer.synchronized, layer.momentum, layer.epsilon) for layer in layers} == {
        (True, 0.9, 1e-4)}
    # Saved with the model: nothing to rewrite after a reload.
    restored = keras.Model.from_config(model.get_config())
    assert {layer.synchronized for layer in batch_norm_layers(restored)} == {True}


def test_the_default_settings_are_one_momentum_and_each_layers_own_epsilon():
    model = MODELS["deeplabv3plus"](3, backbone="resnet50", aspp_filters=8,
                                    low_level_filters=4, decoder_filters=8)
    layers = batch_norm_layers(model)
    assert {layer.momentum for layer in layers} == {BatchNormSettings().momentum} == {0.99}
    assert not any(layer.synchronized for layer in layers)
    epsilons = {layer.name: layer.epsilon for layer in layers}
    assert epsilons["conv1_bn"] == 1.001e-5  # the ResNet weights' epsilon
    assert epsilons["aspp_conv_0_bn"] == 1e-3  # Keras' default in the decoder


@pytest.mark.parametrize("norm, message", [
    ({"sync": True}, "`norm` has unknown key"),
    ({"momentum": 1.5}, "`norm.momentum` must be a number in \\[0, 1\\)"),
    ({"synchronized": 1}, "`norm.synchronized` must be of type bool"),
    ("sync", "`norm` must be None, a dict"),
])
def test_bad_norm_settings_are_named(norm, message):
    with pytest.raises(ValueError, match=message):
        MODELS["unet"](2, norm=norm, batch_norm=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_builder_runs_under_mixed_float16_with_float32_logits(name):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = MODELS[name](3, input_shape=(64, 64, 3), **TINY[name])
        outputs = model(np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # LPSNet's semantic logits; PSPNet's main logits before the auxiliary ones.
    logits = outputs["semantic"] if isinstance(outputs, dict) else keras.tree.flatten(outputs)[0]
    assert model.get_layer("logits").dtype_policy.name == "float32"
    assert logits.dtype == "float32" and logits.shape == (1, 64, 64, 3)
    assert np.isfinite(keras.ops.convert_to_numpy(logits)).all()
    assert any(layer.compute_dtype == "float16" for layer in model.layers)


# === Your own backbone ===


def small_backbone(name="my_backbone"):
    """A user-made backbone: five stride-2 conv stages, features by level."""
    image = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(image)
    features = {}
    for level in range(1, 6):
        x = keras.layers.Conv2D(4 * level, 3, strides=2, padding="same", activation="relu",
                                name=f"{name}_stage{level}")(x)
        features[f"P{level}"] = x
    return keras.Model(image, features, name=name)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus", "pspnet", "lraspp", "lpsnet"])
def test_builders_take_a_user_made_backbone(name):
    config = {key: value for key, value in TINY[name].items()
              if key not in ("backbone", "backbone_kwargs", "auxiliary", "aux_filters")}
    model = MODELS[name](3, input_shape=(64, 64, 3), backbone=small_backbone(), **config)
    assert "my_backbone" in model.name
    assert any(layer.name == "my_backbone" for layer in model.layers)
    outputs = model(np.zeros((2, 64, 64, 3), "float32"))
    logits = outputs["semantic"] if isinstance(outputs, dict) else outputs
    assert logits.shape == (2, 64, 64, 3)


def test_a_backbone_function_works_too():
    backbone = small_backbone("inner")

    def my_features(image):
        return backbone(image)

    model = MODELS["deeplabv3plus"](2, input_shape=(64, 64, 3), backbone=my_features,
                                    aspp_filters=8, low_level_filters=4, decoder_filters=8)
    assert model.name == "deeplabv3plus_my_features"
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 64, 64, 2)


def test_a_backbone_that_breaks_the_contract_gets_a_clear_error():
    image = keras.Input((None, None, 3))
    flat = keras.Model(image, [keras.layers.Conv2D(4, 3, strides=2)(image)], name="flat")
    with pytest.raises(ValueError, match="Backbone 'flat' must return a dict of feature maps "
                                         "\\{'P1', 'P2', 'P3', 'P4', 'P5'\\}"):
        MODELS["deeplabv3plus"](2, backbone=flat)
    with pytest.raises(ValueError, match="`backbone` must be a name in kerasseg.backbones."
                                         "BACKBONES, or a keras.Model or callable"):
        MODELS["deeplabv3plus"](2, backbone=3)
    with pytest.raises(ValueError, match="`backbone_weights` and `backbone_kwargs` apply to "
                                         "named backbones"):
        MODELS["deeplabv3plus"](2, backbone=small_backbone(), backbone_kwargs={"alpha": 0.5})
    with pytest.raises(ValueError, match="`backbone` must be one of 'vgg16_bn'"):
        MODELS["segnet"](2, backbone=small_backbone())
