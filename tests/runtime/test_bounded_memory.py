"""`Segmenter.predict` assembles labels a band at a time: the same labels as
the full-resolution probabilities (`predict_proba(...).argmax(-1)`, the path
it used before), for every option, and without every class's probabilities
at full resolution."""

import numpy as np
import pytest

from kerasseg.export import to_onnx, to_tflite
from kerasseg.runtime import Segmenter, inference
from kerasseg.runtime.image import resize_bilinear, resized_rows
from tests.export import tiny

SIZE = (64, 64)
OPTIONS = [
    {},
    {"scales": (0.75, 1.0, 1.25), "flip": True},
    {"tile_size": (48, 40)},  # tiles overlap, the last ones shifted to the edge
    {"tile_size": (64, 64), "overlap": 0.5, "weighting": "uniform", "scales": (0.6, 1.1),
     "flip": True},
    {"tile_size": (128, 128)},  # images smaller than a tile are padded
]


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory):
    model = tiny.trained()
    directory = tmp_path_factory.mktemp("bounded")
    return {
        "tflite": Segmenter.load(to_tflite(model, directory / "m.tflite", SIZE), num_threads=1),
        "onnx": Segmenter.load(to_onnx(model, directory / "m.onnx", SIZE), num_threads=1),
    }


def test_resized_rows_equal_resize_bilinear():
    source = np.random.default_rng(0).uniform(0, 255, (2, 37, 23, 3)).astype(np.float32)
    for size in ((64, 50), (16, 9), (37, 23)):
        whole = resize_bilinear(source, size)
        for rows in (np.arange(size[0]), np.arange(3, min(11, size[0])), np.array([0, 5])):
            np.testing.assert_array_equal(
                resized_rows(lambda i: source[:, i], source.shape[1:3], size, rows),
                whole[:, rows])


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("shape", [(83, 101), SIZE])  # odd sizes; the model's (no resize)
@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_band_labels_equal_the_full_resolution_path(segmenters, kind, options, shape):
    segmenter = segmenters[kind]
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = segmenter.predict_proba(image, **options).argmax(-1)
    for band_rows in (7, 64):
        labels = inference.predict_labels(segmenter._probabilities, image,
                                          whole_view=segmenter._whole_view,
                                          band_rows=band_rows, **options)
        np.testing.assert_array_equal(labels, expected)
    labels = segmenter.predict(image, **options)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, expected)
    batch = np.stack([image, image[::-1]])
    np.testing.assert_array_equal(segmenter.predict(batch, **options),
                                  segmenter.predict_proba(batch, **options).argmax(-1))


def test_predict_never_holds_full_resolution_probabilities(segmenters, monkeypatch):
    # Every resized array is a band of rows (of the input, for the model's
    # rows, or of probabilities): none near H x W x classes floats, which
    # predict_proba, the path predict used to take, holds several times.
    segmenter = segmenters["tflite"]
    image = np.random.default_rng(2).integers(0, 256, (1200, 400, 3), dtype=np.uint8)
    largest = []

    def recording(rows_of, in_size, out_size, indices):
        result = resized_rows(rows_of, in_size, out_size, indices)
        largest.append(result.size)
        return result

    monkeypatch.setattr(inference, "resized_rows", recording)
    from kerasseg.runtime import segmenter as segmenter_module

    monkeypatch.setattr(segmenter_module.image_ops, "resized_rows", recording)
    labels = segmenter.predict(image, tile_size=(64, 64))
    labels_whole = segmenter.predict(image)
    assert labels.shape == labels_whole.shape == (1200, 400)
    assert max(largest) <= 1200 * 400 * len(tiny.LABELS) // 8
