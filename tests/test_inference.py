"""kerasseg.inference: whole image, sliding window, multi-scale and flip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg.inference import predict
from kerasseg.runtime.inference import tile_origins, window


def pointwise_model(num_classes=3):
    """1x1 convolutions only: each output pixel sees only its input pixel, so
    tiling cannot change the result."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 1, activation="tanh")(keras.layers.Rescaling(1 / 128.0)(inputs))
    return keras.Model(inputs, keras.layers.Conv2D(num_classes, 1)(x))


def conv_model(num_classes=3):
    """A 5x5 receptive field: not mirror-symmetric, so flips matter."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(num_classes, 5, padding="same")(
        keras.layers.Rescaling(1 / 128.0)(inputs))
    return keras.Model(inputs, x)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def image():
    return np.random.default_rng(0).uniform(0, 255, (37, 53, 3)).astype("float32")


def test_whole_image_is_softmax_of_the_model(image):
    model = conv_model()
    expected = softmax(model(image[None]).numpy()[0])
    np.testing.assert_allclose(predict(model, image), expected, atol=1e-6)
    np.testing.assert_allclose(predict(lambda x, training: tf.nn.softmax(model(x)), image,
                                       from_logits=False), expected, atol=1e-6)


@pytest.mark.parametrize("weighting", ["gaussian", "uniform"])
@pytest.mark.parametrize("tile_size", [(16, 16), (20, 24), (64, 64)])
def test_sliding_window_equals_whole_image_for_a_pointwise_model(image, tile_size, weighting):
    # Tiles cover the image, blending weights are normalised, and padding
    # (the 64x64 tile is larger than the image) is cropped off.
    model = pointwise_model()
    whole = predict(model, image)
    tiled = predict(model, image, tile_size=tile_size, overlap=0.25, weighting=weighting)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_sliding_window_blends_tiles_with_the_window():
    # A "model" whose class-0 logit is the mean brightness of its input: each
    # tile predicts its own mean, so the blend differs from whole-image
    # inference and must equal the average over the tiles covering a pixel.
    def tile_mean(x, training=False):
        mean = tf.reduce_mean(x[..., :1], axis=(1, 2), keepdims=True) * tf.ones_like(x[..., :1])
        return tf.concat([mean, tf.zeros_like(mean)], axis=-1)

    image = np.zeros((8, 12, 3), "float32")
    image[:, 6:] = 1.0
    tiled = predict(tile_mean, image, tile_size=(8, 8), overlap=0.5, weighting="uniform")
    starts = tile_origins(12, 8, 4)
    assert starts == [0, 4]
    expected, count = np.zeros((8, 12)), np.zeros((8, 12))
    for x in starts:
        expected[:, x:x + 8] += 1 / (1 + np.exp(-image[:, x:x + 8, 0].mean()))
        count[:, x:x + 8] += 1
    np.testing.assert_allclose(tiled[..., 0], expected / count, atol=1e-6)
    whole = predict(tile_mean, image)
    assert np.abs(whole[..., 0] - tiled[..., 0]).max() > 0.01


def test_tile_origins_cover_and_end_flush():
    for length, tile, stride in ((100, 32, 24), (32, 32, 10), (33, 32, 16), (7, 4, 1)):
        starts = tile_origins(length, tile, stride)
        covered = np.zeros(length, bool)
        for start in starts:
            covered[start:start + tile] = True
        assert covered.all() and starts[0] == 0 and starts[-1] == length - tile
        assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_window_shapes():
    gaussian = window((9, 15), "gaussian")
    assert gaussian.shape == (9, 15) and gaussian.max() == pytest.approx(1.0)
    assert gaussian[4, 7] == gaussian.max() and gaussian[0, 0] < 0.2
    np.testing.assert_allclose(gaussian, gaussian[::-1, ::-1])
    assert np.all(window((4, 5), "uniform") == 1)


def test_flip_averages_the_mirrored_prediction(image):
    model = conv_model()
    direct = softmax(model(image[None]).numpy()[0])
    mirrored = softmax(model(image[None, :, ::-1].copy()).numpy()[0])[:, ::-1]
    assert np.abs(direct - mirrored).max() > 1e-3  # the flip does change something
    np.testing.assert_allclose(predict(model, image, flip=True), (direct + mirrored) / 2,
                               atol=1e-6)


def test_multi_scale_averages_resized_predictions(image):
    model = conv_model()
    expected = 0
    for scale in (0.5, 1.0, 1.5):
        size = (round(37 * scale), round(53 * scale))
        resized = tf.image.resize(image[None], size).numpy()
        probabilities = softmax(model(resized).numpy())
        expected = expected + tf.image.resize(probabilities, (37, 53)).numpy()[0]
    np.testing.assert_allclose(predict(model, image, scales=(0.5, 1.0, 1.5)), expected / 3,
                               atol=1e-5)


def test_batches_and_tensors(image):
    model = pointwise_model()
    batch = np.stack([image, image[::-1]])
    result = predict(model, batch, tile_size=(16, 16), batch_size=3)
    assert result.shape == (2, 37, 53, 3)
    np.testing.assert_allclose(result[1], predict(model, image[::-1]), atol=1e-5)
    tensor = predict(model, tf.constant(image))
    assert tf.is_tensor(tensor) and tensor.shape == (37, 53, 3)


@pytest.mark.parametrize(
    "options, message",
    [({"overlap": 1.0}, "overlap"), ({"weighting": "cosine"}, "weighting"),
     ({"scales": (0.0,)}, "scales"), ({"tile_size": (0, 4)}, "tile_size")],
)
def test_bad_options(image, options, message):
    with pytest.raises(ValueError, match=message):
        predict(pointwise_model(), image, **options)
    with pytest.raises(ValueError, match="images"):
        predict(pointwise_model(), image[..., 0])


def test_a_sigmoid_model_gives_background_and_foreground_probabilities(image):
    # One channel is a foreground probability, read from the model's activation.
    inputs = keras.Input((None, None, 3))
    scaled = keras.layers.Rescaling(1 / 128.0)(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same",
                                                    activation="sigmoid")(scaled))
    foreground = model(image[None]).numpy()[0]
    probabilities = predict(model, image)
    assert probabilities.shape == (37, 53, 2)
    np.testing.assert_allclose(probabilities[..., 1:], foreground, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    # The same layer without the activation is a logit: sigmoid applied here.
    logits = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(scaled))
    logits.layers[-1].set_weights(model.layers[-1].get_weights())
    np.testing.assert_allclose(predict(logits, image), probabilities, atol=1e-6)
