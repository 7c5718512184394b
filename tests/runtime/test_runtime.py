"""`kerasseg.runtime`: the TF-free `Segmenter` on LiteRT and ONNX Runtime,
its NumPy image ops against TensorFlow's, and its errors."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.export import to_onnx, to_tflite
from kerasseg.runtime import ModelLoadError, Segmenter, read_metadata, resize_bilinear
from tests.export import tiny

SIZE = (64, 64)
TOLERANCE = 1e-5  # relative to the largest |logit|


@pytest.fixture(scope="module")
def model():
    return tiny.trained()


@pytest.fixture(scope="module")
def artifacts(model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("runtime")
    return {
        "tflite": to_tflite(model, directory / "m.tflite", SIZE, labels=tiny.LABELS,
                            palette=tiny.PALETTE),
        "onnx": to_onnx(model, directory / "m.onnx", SIZE, labels=tiny.LABELS,
                        palette=tiny.PALETTE),
    }


def _keras_at_model_size(model, images):
    """The Keras path for an image of another size: resize to the model size,
    run, resize logits back (what the SavedModel signature does)."""
    small = tf.image.resize(images.astype("float32"), SIZE)
    return tf.image.resize(model.predict(small, verbose=0), images.shape[1:3]).numpy()


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_predictions_match_keras(model, artifacts, kind):
    segmenter = Segmenter.load(artifacts[kind], num_threads=2)
    assert segmenter.input_size == SIZE and segmenter.labels == list(tiny.LABELS)
    images = tiny.images(batch=3)  # a batch-1 model: the runtime loops
    reference = model.predict(images.astype("float32"), verbose=0)
    logits = segmenter.predict_logits(images)
    assert np.abs(logits - reference).max() <= TOLERANCE * max(1, np.abs(reference).max())
    np.testing.assert_allclose(segmenter.predict_proba(images[0]),
                               tf.nn.softmax(reference[0]).numpy(), atol=1e-5)
    labels = segmenter.predict(images[0])
    assert labels.shape == SIZE and labels.dtype == np.int32
    assert np.mean(labels == reference[0].argmax(-1)) >= 0.999
    colours = segmenter.colorize(labels)
    np.testing.assert_array_equal(colours, np.asarray(tiny.PALETTE, np.uint8)[labels])

    # Another size: resized in, logits resized back, as in the Keras path.
    other = tiny.images(batch=1, size=(50, 90), seed=3)
    expected = _keras_at_model_size(model, other)
    np.testing.assert_allclose(segmenter.predict_logits(other), expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_tiles_scales_and_flips_are_the_keras_paths(model, artifacts, kind):
    # One inference path: tiles of the model's own size go into the file
    # unresized, so the exported model and Keras must blend the same tiles.
    from kerasseg.inference import predict

    segmenter = Segmenter.load(artifacts[kind])
    image = tiny.images(batch=1, size=(90, 100), seed=5)[0]
    options = {"tile_size": SIZE, "overlap": 0.25, "scales": (0.75, 1.0), "flip": True}
    expected = predict(model, image, **options)
    np.testing.assert_allclose(segmenter.predict_proba(image, **options), expected, atol=1e-4)
    labels = segmenter.predict(image, **options)
    assert labels.shape == (90, 100) and np.mean(labels == expected.argmax(-1)) >= 0.999


def test_labels_output_refuses_averaging_options(model, tmp_path):
    path = to_tflite(model, tmp_path / "labels.tflite", SIZE, output="labels")
    segmenter = Segmenter.load(path)
    assert segmenter.predict(tiny.images(batch=1)[0]).shape == SIZE
    with pytest.raises(ValueError, match="outputs labels only.*'flip'"):
        segmenter.predict(tiny.images(batch=1)[0], flip=True)


def test_resize_bilinear_matches_tensorflow():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 13, 17, 3)).astype("float32")
    for size in ((13, 17), (40, 51), (5, 8), (13, 40)):
        np.testing.assert_allclose(resize_bilinear(x, size),
                                   tf.image.resize(x, size).numpy(), atol=1e-3)


def test_wrong_inputs_give_clear_errors(artifacts):
    segmenter = Segmenter.load(artifacts["tflite"])
    with pytest.raises(ValueError, match=r"must have shape \(1, 64, 64, 3\) and dtype float32.*"
                                         r"Received: shape \(1, 32, 32, 3\)"):
        segmenter.run(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="dtype float32.*dtype float64"):
        segmenter.run(np.zeros((1, 64, 64, 3), np.float64))
    with pytest.raises(ValueError, match=r"must have shape \(H, W, 3\)"):
        segmenter.predict(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="real pixel values"):
        segmenter.predict(np.zeros((64, 64, 3), np.complex64))
    with pytest.raises(ValueError, match="`num_threads` must be None or an integer >= 1"):
        Segmenter.load(artifacts["tflite"], num_threads=0)


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_corrupt_and_truncated_files(artifacts, kind, tmp_path):
    with open(artifacts[kind], "rb") as f:
        content = f.read()
    truncated = tmp_path / f"truncated.{kind}"
    truncated.write_bytes(content[: len(content) // 3])
    corrupt = tmp_path / f"corrupt.{kind}"
    corrupt.write_bytes(b"not a model " * 100)
    empty = tmp_path / f"empty.{kind}"
    empty.write_bytes(b"")
    for path in (truncated, corrupt, empty):
        with pytest.raises(ModelLoadError, match=str(path.name)):
            Segmenter.load(path)
    with pytest.raises(FileNotFoundError, match="missing"):
        Segmenter.load(tmp_path / f"missing.{kind}")


def test_unknown_extension_and_bad_metadata(artifacts, tmp_path):
    with pytest.raises(ValueError, match=r"`path` must end with one of \.tflite, \.onnx"):
        Segmenter.load(tmp_path / "model.pb")
    copy = tmp_path / "m.tflite"
    with open(artifacts["tflite"], "rb") as f:
        copy.write_bytes(f.read())
    (tmp_path / "m.tflite.json").write_text(json.dumps({"labels": []}))
    with pytest.raises(ValueError, match="not a kerasseg metadata file"):
        read_metadata(copy)
    segmenter = Segmenter.load(copy, metadata={})  # an explicit dict replaces the sidecar
    assert segmenter.labels is None
    with pytest.raises(ValueError, match="no palette"):
        segmenter.colorize(np.zeros((2, 2), int))


_BLOCKED_SCRIPT = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Block())
import numpy as np
import kerasseg.runtime
from kerasseg.runtime import Segmenter

images = np.load(sys.argv[3])
for path in sys.argv[1:3]:
    segmenter = Segmenter.load(path, num_threads=1)
    np.save(path + ".labels.npy", segmenter.predict(images))
    np.save(path + ".proba.npy", segmenter.predict_proba(images))
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules), "TF imported"
print("ok")
"""


def test_runs_with_tensorflow_blocked(model, artifacts, tmp_path):
    images = tiny.images(batch=2, size=(48, 48), seed=7)
    np.save(tmp_path / "images.npy", images)
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(_BLOCKED_SCRIPT))
    result = subprocess.run(
        [sys.executable, str(script), artifacts["tflite"], artifacts["onnx"],
         str(tmp_path / "images.npy")],
        capture_output=True, text=True, timeout=120,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
    expected = _keras_at_model_size(model, images)
    for kind in ("tflite", "onnx"):
        proba = np.load(artifacts[kind] + ".proba.npy")
        np.testing.assert_allclose(proba, tf.nn.softmax(expected).numpy(), atol=1e-4)
        labels = np.load(artifacts[kind] + ".labels.npy")
        assert np.mean(labels == expected.argmax(-1)) >= 0.999
