"""The model of a run: builder resolution, BN momentum, precise BN."""

import keras
import numpy as np
import pytest

import kerasseg
from kerasseg.train import Config


def test_build_model_sets_bn_momentum_and_registered_builders():
    from kerasseg.train import build_model
    from tests.train.test_strategy import tiny_net

    config = Config.from_dict({"model": {"name": "unet", "bn_momentum": 0.5, "args": {
        "base_filters": 4, "depth": 2, "batch_norm": True}}})
    norms = [layer for layer in build_model(config, 3).layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.get_config()["momentum"] == 0.5 for layer in norms)
    assert kerasseg.register_builder("my_tiny_net", tiny_net) is tiny_net
    custom = Config.from_dict({"model": {"name": "my_tiny_net", "args": {}}})
    assert build_model(custom, 4).output_shape == (None, None, None, 4)
    with pytest.raises(ValueError, match="model.name.*'nonet'"):
        build_model(Config.from_dict({"model": {"name": "nonet"}}), 3)
    with pytest.raises(ValueError, match="kerasseg builder's name"):
        kerasseg.register_builder("unet", tiny_net)
    with pytest.raises(ValueError, match="callable"):
        kerasseg.register_builder("not_a_function", "tiny_net")


def test_a_config_cannot_import_a_module(tmp_path, monkeypatch):
    # A config is data people share: "module:function" used to import the
    # module (running its import-time code) and call the function.
    (tmp_path / "evil_builders.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(tmp_path / 'ran')!r}).write_text('imported')\n"
        "def net(num_classes, **kwargs):\n    raise SystemExit('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from kerasseg.train import build_model

    config = Config.from_dict({"model": {"name": "evil_builders:net", "args": {}}})
    with pytest.raises(kerasseg.KerassegError, match="register_builder"):
        build_model(config, 3)
    assert not (tmp_path / "ran").exists()


def test_default_model_is_the_int8_friendly_quickstart_model():
    # kerasseg.train.ModelConfig: the ASPP reads MobileNetV2's 112-channel last
    # block (no 1280-channel last conv), separable ASPP, plain 3x3 decoder.
    from kerasseg.train import build_model

    model = build_model(Config.from_dict({}), 7)
    names = {layer.name for layer in model.layers}
    assert "Conv_1" not in names and model.get_layer("aspp_conv_0").input.shape[-1] == 112
    assert "aspp_conv_1_depthwise" in names and "decoder_conv1_depthwise" not in names
    assert model.get_layer("decoder_conv1").kernel_size == (3, 3)
    assert model.count_params() == 413_719


def test_recompute_batch_norm_averages_batch_statistics_and_restores_momentum():
    from kerasseg.train import batch_norm_layers, recompute_batch_norm

    inner = keras.Sequential([keras.layers.BatchNormalization(momentum=0.999)])
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(momentum=0.9),
                              inner])
    assert len(batch_norm_layers(model)) == 2  # the nested model's too
    images = np.random.default_rng(0).normal(5.0, 2.0, (8, 3)).astype("float32")
    recompute_batch_norm(model, images, batch_size=4)
    first = model.layers[0]
    expected = (images[:4].mean(0) + images[4:].mean(0)) / 2  # the mean of the batch means
    np.testing.assert_allclose(first.moving_mean.numpy(), expected, rtol=1e-5)
    expected_variance = (images[:4].var(0) + images[4:].var(0)) / 2
    np.testing.assert_allclose(first.moving_variance.numpy(), expected_variance, rtol=1e-4)
    assert [layer.momentum for layer in batch_norm_layers(model)] == [0.9, 0.999]


def test_build_model_puts_sync_and_momentum_into_the_builders_norm():
    from kerasseg.train import batch_norm_layers, build_model

    config = Config.from_dict({"model": {"name": "unet", "bn_momentum": 0.9, "args": {
        "base_filters": 4, "depth": 2, "batch_norm": True, "norm": {"epsilon": 1e-4}}}})
    layers = batch_norm_layers(build_model(config, 3, synchronized_bn=True))
    assert {(layer.synchronized, layer.momentum, layer.epsilon) for layer in layers} == {
        (True, 0.9, 1e-4)}
    # A builder of your own: `synchronized_bn` if it takes it; no momentum to set.
    from tests.train.test_strategy import register_tiny_net

    register_tiny_net()
    custom = {"name": "test_tiny_net"}
    model = build_model(Config.from_dict({"model": custom}), 4, synchronized_bn=True)
    assert [layer.synchronized for layer in batch_norm_layers(model)] == [True]
    with pytest.raises(ValueError, match="`model.bn_momentum` needs a builder with a `norm`"):
        build_model(Config.from_dict({"model": {**custom, "bn_momentum": 0.9}}), 4)
