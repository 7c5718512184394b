import json
from pathlib import Path

import numpy as np
import pytest

import kerasseg
from tests.model_tester import ModelTester


class TestSegNet(ModelTester):
    builder = staticmethod(kerasseg.segnet)
    config = {"base_filters": 8}
    overfit_learning_rate = 1e-2


def test_segnet_parameter_count_matches_paper():
    # The paper reports 29.5M for its 12-class CamVid model.
    count = kerasseg.segnet(num_classes=12).count_params()
    assert count == 29_465_804
    assert abs(count - 29.5e6) / 29.5e6 < 0.01


def test_segnet_decoder_unpools_at_encoder_argmax():
    import keras
    import tensorflow as tf

    model = kerasseg.segnet(num_classes=2, base_filters=4)
    x = np.random.default_rng(0).uniform(0, 255, (1, 37, 29, 3)).astype("float32")
    probe = keras.Model(
        model.input,
        [
            model.get_layer("block1_conv2_relu").output,
            model.get_layer("decoder_block1_unpool").output,
        ],
    )
    encoder, unpooled = probe.predict(x, verbose=0)
    assert unpooled.shape == encoder.shape
    _, argmax = tf.nn.max_pool_with_argmax(encoder, 2, 2, "SAME", include_batch_in_index=True)
    at_argmax = np.zeros(encoder.size, bool)
    at_argmax[argmax.numpy().ravel()] = True
    nonzero = unpooled.ravel() != 0
    assert nonzero.any()
    assert np.all(at_argmax[nonzero])


def test_segnet_rejects_other_backbones():
    with pytest.raises(ValueError, match="vgg16_bn"):
        kerasseg.segnet(num_classes=2, backbone="resnet50")


def test_segnet_index_dropout_reaches_every_pooling_layer():
    import keras

    model = kerasseg.segnet(num_classes=2, base_filters=4, index_dropout=0.5)
    pools = [layer for layer in model.layers if layer.name.endswith("_pool")]
    assert [layer.index_dropout for layer in pools] == [0.5] * 5
    # No weights of its own: a model trained with it loads into one without.
    plain = kerasseg.segnet(num_classes=2, base_filters=4)
    assert [w.shape for w in model.weights] == [w.shape for w in plain.weights]
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model(x).numpy(), plain(x).numpy())
    unpooled = keras.Model(model.input, model.get_layer("decoder_block1_unpool").output)
    assert np.any(unpooled(x, training=True).numpy() != unpooled(x, training=True).numpy())
    with pytest.raises(ValueError, match="index_dropout"):
        kerasseg.segnet(num_classes=2, index_dropout=1.0)


def test_segnet_graph_is_the_one_saved_models_were_built_with():
    # Layer names, classes and weight order recorded from the builder before
    # its encoder became the `vgg16_bn` backbone: weights files saved then
    # (`model.save_weights`, `weights=`) load into today's graph.
    recorded = json.loads((Path(__file__).parent / "segnet_layers.json").read_text())
    model = kerasseg.segnet(num_classes=5, base_filters=4)
    assert [[layer.name, type(layer).__name__] for layer in model.layers] == recorded["layers"]
    assert [[w.path, list(w.shape)] for w in model.weights] == recorded["weights"]


def test_segnet_encoder_is_the_vgg16_bn_backbone():
    import keras

    from kerasseg.backbones import BACKBONES

    inputs = keras.Input((None, None, 3))
    encoder = keras.Model(inputs, BACKBONES["vgg16_bn"](inputs, base_filters=4))
    model = kerasseg.segnet(num_classes=2, base_filters=4)
    for layer in encoder.layers[1:]:
        assert model.get_layer(layer.name).get_config() == layer.get_config()
