"""`to_saved_model`: signatures for uint8 images of any size, reloaded with
`tf.saved_model.load` and compared with the Keras model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg.export import to_saved_model
from kerasseg.runtime import read_metadata
from tests.export import tiny

TOLERANCE = 1e-5  # max |logit difference|, relative to the largest |logit|


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """A logits SavedModel that runs images at their own size."""
    path = to_saved_model(model, tmp_path_factory.mktemp("sm") / "1", labels=tiny.LABELS)
    return path, tf.saved_model.load(str(path))


def _assert_close(exported, reference):
    scale = max(1.0, np.abs(reference).max())
    assert np.abs(np.asarray(exported) - reference).max() <= TOLERANCE * scale


def test_uint8_any_size_matches_keras(model, exported):
    _, loaded = exported
    serve = loaded.signatures["serving_default"]
    for size in ((64, 64), (45, 71)):
        images = tiny.images(batch=2, size=size)
        outputs = serve(images=tf.constant(images))
        assert list(outputs) == ["logits"]
        _assert_close(outputs["logits"], model.predict(images.astype("float32"), verbose=0))


def test_float32_signature(model, exported):
    _, loaded = exported
    images = tiny.images(batch=1).astype("float32")
    outputs = loaded.signatures["serve_float32"](images=tf.constant(images))
    _assert_close(outputs["logits"], model.predict(images, verbose=0))


def test_metadata(exported):
    path, _ = exported
    metadata = read_metadata(path)
    assert metadata["labels"] == list(tiny.LABELS)
    assert metadata["signatures"] == ["serving_default", "serve_float32"]
    assert metadata["input"]["dtype"] == "uint8"


def test_fixed_size_resizes_in_and_logits_back(model, tmp_path):
    path = to_saved_model(model, tmp_path / "sm", output="labels", image_size=(32, 32))
    images = tiny.images(batch=1, size=(48, 80))
    labels = tf.saved_model.load(str(path)).signatures["serving_default"](
        images=tf.constant(images))["labels"]
    # The independent reference: resize, Keras, resize logits back, argmax.
    small = tf.image.resize(images.astype("float32"), (32, 32))
    logits = tf.image.resize(model.predict(small, verbose=0), (48, 80))
    assert labels.dtype == tf.int32 and labels.shape == (1, 48, 80)
    assert np.mean(labels.numpy() == np.argmax(logits, -1)) >= 0.999


def test_probabilities(model, tmp_path):
    path = to_saved_model(model, tmp_path / "sm", output="probabilities")
    images = tiny.images(batch=1)
    probabilities = tf.saved_model.load(str(path)).signatures["serving_default"](
        images=tf.constant(images))["probabilities"]
    expected = tf.nn.softmax(model.predict(images.astype("float32"), verbose=0))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


class DenseCRF(keras.layers.Layer):
    """Stand-in CRF (matched by class name): [logits, image] -> changed logits."""

    def call(self, inputs):
        logits, image = inputs
        return logits + tf.reduce_mean(image, axis=-1, keepdims=True) / 255.0


def test_keeps_crf_and_exports_dict_outputs(model, tmp_path):
    image = model.inputs[0]
    refined = DenseCRF(name="crf")([model.outputs[0], image])
    with_crf = keras.Model(image, refined)
    images = tiny.images(batch=1)
    loaded = tf.saved_model.load(str(to_saved_model(with_crf, tmp_path / "crf")))
    _assert_close(loaded.signatures["serving_default"](images=tf.constant(images))["logits"],
                  with_crf.predict(images.astype("float32"), verbose=0))

    # Several outputs (LPSNet-like): exported under their own names, unchanged.
    pooled = keras.layers.GlobalAveragePooling2D(name="scores")(model.outputs[0])
    two = keras.Model(image, {"semantic": model.outputs[0], "scores": pooled})
    loaded = tf.saved_model.load(str(to_saved_model(two, tmp_path / "two")))
    outputs = loaded.signatures["serving_default"](images=tf.constant(images))
    expected = two.predict(images.astype("float32"), verbose=0)
    assert sorted(outputs) == ["scores", "semantic"]
    for name in expected:
        _assert_close(outputs[name], expected[name])
    with pytest.raises(ValueError, match="`output` must be 'logits' for a model with several"):
        to_saved_model(two, tmp_path / "x", output="labels")


def test_real_crf_kept_here_and_dropped_from_onnx(model, tmp_path):
    import kerasseg

    with_crf = kerasseg.with_crf(model, num_iterations=2)
    images = tiny.images(batch=1)
    reference = with_crf.predict(images.astype("float32"), verbose=0)
    loaded = tf.saved_model.load(str(to_saved_model(with_crf, tmp_path / "crf")))
    _assert_close(loaded.signatures["serving_default"](images=tf.constant(images))["logits"],
                  reference)
    from kerasseg.export import to_onnx
    from kerasseg.runtime import Segmenter

    with pytest.warns(UserWarning, match=r"Dropping CRF layer\(s\) \['crf'\]"):
        path = to_onnx(with_crf, tmp_path / "crf.onnx", (64, 64))
    _assert_close(Segmenter.load(path).predict_logits(images[0]),
                  model.predict(images.astype("float32"), verbose=0)[0])
