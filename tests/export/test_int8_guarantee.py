"""The int8 agreement guarantee of `to_tflite` and `to_onnx`: a model built to
break per-tensor int8 (`tiny.hostile`) falls back to float where it must and
ends above the target, an unreachable target raises, and the sidecar records
what was kept in float; plus `resize_logits=False` and the shared helpers."""

import keras
import numpy as np
import pytest

from kerasseg.export import Int8AgreementError, to_onnx, to_tflite
from kerasseg.export.int8 import guarantee, noise_to_signal, split_held_out
from kerasseg.runtime import Segmenter, read_metadata
from tests.export import tiny

SIZE = (64, 64)
TARGET = 0.98


@pytest.fixture(scope="module")
def hostile(model):
    return tiny.hostile(model)


@pytest.fixture(scope="module")
def calibration():
    return tiny.images(batch=16, seed=5).astype("float32")


@pytest.fixture(scope="module")
def evaluation(hostile):
    """Images neither calibrated on nor held out by the exporters, and the labels."""
    images = tiny.images(batch=4, seed=11)
    return images, hostile.predict(images.astype("float32"), verbose=0).argmax(-1)


def _agreement(path, evaluation):
    images, expected = evaluation
    return float(np.mean(Segmenter.load(path).predict(images) == expected))


def test_hostile_model_is_float_exact_and_breaks_plain_int8(model, hostile, calibration,
                                                            evaluation, tmp_path):
    images, expected = evaluation
    np.testing.assert_array_equal(
        model.predict(images.astype("float32"), verbose=0).argmax(-1), expected)
    path = to_tflite(hostile, tmp_path / "plain.tflite", SIZE, quantization="int8",
                     representative_data=calibration, io_dtype="uint8", min_agreement=None)
    assert _agreement(path, evaluation) < 0.97
    assert read_metadata(path)["quantization"] == {
        "mode": "int8", "calibration_images": 16, "float_layers": [], "float_nodes": 0,
        "float_ops": ["HARD_SWISH"], "per_channel": True}


@pytest.mark.parametrize("io_dtype", ["uint8", "float32"])
def test_tflite_keeps_the_outlier_in_float(hostile, calibration, evaluation, io_dtype, tmp_path):
    path = to_tflite(hostile, tmp_path / "checked.tflite", SIZE, quantization="int8",
                     representative_data=calibration, io_dtype=io_dtype)
    record = read_metadata(path)["quantization"]
    assert record["mode"] == "int8" and record["min_agreement"] == TARGET
    assert (record["calibration_images"], record["held_out_images"]) == (12, 4)
    # The outlier tensor stays float: its producer and its consumer.
    assert record["float_layers"] == ["outlier", "classifier"]
    assert record["steps"][0][1] < TARGET <= record["steps"][-1][1] == record["agreement"]
    assert _agreement(path, evaluation) >= TARGET


@pytest.mark.parametrize("nchw", [False, True])
def test_onnx_keeps_the_outlier_in_float(hostile, calibration, evaluation, nchw, tmp_path):
    path = to_onnx(hostile, tmp_path / "checked.onnx", SIZE, nchw=nchw, precision="int8",
                   calibration_data=calibration)
    record = read_metadata(path)["quantization"]
    # Q/DQ sits on weighted layers' inputs: the classifier reads the outlier tensor.
    assert record["float_layers"] == ["classifier"]
    assert record["steps"][0][1] < TARGET <= record["agreement"]
    assert _agreement(path, evaluation) >= TARGET


def test_unreachable_target_raises_with_the_agreement(hostile, calibration, tmp_path):
    # The int8 output of a uint8-I/O file cannot match float logits at every near-tie.
    with pytest.raises(Int8AgreementError, match=r"agrees with the Keras model on \d+\.\d+% "
                       r"of the pixels of 4 held-out images, under min_agreement=1\.0") as info:
        to_tflite(hostile, tmp_path / "m.tflite", SIZE, quantization="int8",
                  representative_data=calibration, io_dtype="uint8", min_agreement=1.0)
    assert 0.98 <= info.value.agreement < 1.0 and info.value.kept
    assert not (tmp_path / "m.tflite").exists()


def test_onnx_all_float_reaches_any_target(hostile, calibration, tmp_path):
    # Float input and output: with every weighted node excluded the graph is float.
    path = to_onnx(hostile, tmp_path / "m.onnx", SIZE, precision="int8",
                   calibration_data=calibration, min_agreement=1.0)
    record = read_metadata(path)["quantization"]
    assert record["agreement"] == 1.0 and "classifier" in record["float_layers"]


def test_validation_data_is_the_held_out_set(model, calibration, tmp_path):
    validation = tiny.images(batch=3, seed=7)
    path = to_tflite(model, tmp_path / "m.tflite", SIZE, quantization="int8",
                     representative_data=calibration, validation_data=validation,
                     calibration_steps=10)
    record = read_metadata(path)["quantization"]
    assert (record["calibration_images"], record["held_out_images"]) == (10, 3)
    assert record["float_layers"] == [] and record["steps"] == [[0, record["agreement"]]]
    path = to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                   calibration_data=calibration, validation_data=validation)
    assert read_metadata(path)["quantization"]["held_out_images"] == 3


def test_argument_errors(model, calibration, tmp_path):
    with pytest.raises(ValueError, match="`min_agreement` must be None .*min_agreement=1.5"):
        to_tflite(model, tmp_path / "m.tflite", SIZE, quantization="int8",
                  representative_data=calibration, min_agreement=1.5)
    with pytest.raises(ValueError, match="needs held-out images.*Received 3 calibration"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                calibration_data=calibration[:3])
    with pytest.raises(ValueError, match=r"`validation_data` must be raw-pixel images"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                calibration_data=calibration, validation_data=calibration[:, :32])


def test_low_resolution_logits_resized_by_the_runtime(model, images, reference, tmp_path):
    path = to_tflite(model, tmp_path / "low.tflite", SIZE, resize_logits=False)
    segmenter = Segmenter.load(path)
    assert segmenter.backend.outputs[0].shape == (1, 32, 32, tiny.NUM_CLASSES)
    np.testing.assert_allclose(segmenter.predict_logits(images), reference, atol=1e-4)
    with pytest.raises(ValueError, match="needs output='logits'"):
        to_tflite(model, tmp_path / "x.tflite", SIZE, output="labels", resize_logits=False)
    plain = keras.Model(model.input, model.get_layer("classifier").output)
    with pytest.raises(ValueError, match="does not end that way"):
        to_tflite(plain, tmp_path / "x.tflite", (32, 32), resize_logits=False)


def test_noise_to_signal_is_per_channel():
    rng = np.random.default_rng(0)
    reference = np.concatenate([rng.normal(size=(100, 3)), np.full((100, 1), 1000.0)], 1)
    flattened = reference.copy()
    flattened[:, :3] = 0.0  # what a scale set by the loud channel does to the others
    # 3 of 4 channels lost: 0.75, where the whole-tensor ratio is 3e-6.
    assert noise_to_signal(reference, flattened) == pytest.approx(0.75)
    assert noise_to_signal(reference, reference) == 0.0
    assert noise_to_signal(np.zeros((5, 2)), np.ones((5, 2))) == 0.0  # no signal to lose


def test_guarantee_tries_units_alone_then_keeps_more_per_step():
    calls = []

    def labels(kept):  # agreement grows with what is kept; 6 units reach the target
        calls.append(len(kept))
        return np.arange(10) < min(10, 4 + len(kept))

    outcome = guarantee(lambda kept: list(kept), labels, np.ones(10, bool),
                        lambda: list("abcdefghij"), 1.0)
    assert calls == [0] + [1] * 10 + [1, 2, 3, 4, 6] and outcome.kept == list("abcdef")
    assert outcome.steps[-1] == (6, 1.0)

    def decisive(kept):  # only "h" matters: found alone, in measured order
        return np.arange(10) < (10 if "h" in kept else 9)

    outcome = guarantee(lambda kept: list(kept), decisive, np.ones(10, bool),
                        lambda: list("abcdefghij"), 1.0)
    assert outcome.kept == ["h"] and outcome.steps == [(0, 0.9), (1, 1.0)]


def test_split_held_out():
    calibration, held_out = split_held_out(np.zeros((16, 2)), None)
    assert (len(calibration), len(held_out)) == (12, 4)
    calibration, held_out = split_held_out(np.zeros((16, 2)), None, min_agreement=None)
    assert (len(calibration), len(held_out)) == (16, 0)
