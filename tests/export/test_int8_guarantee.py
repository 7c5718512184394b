"""The int8 agreement guarantee of `to_tflite` and `to_onnx`: a model built to
break per-tensor int8 (`tiny.hostile`) falls back to float where it must and
ends above the target, an unreachable target raises, and the sidecar records
what was kept in float; plus `resize_logits=False` and the shared helpers."""

import keras
import numpy as np
import pytest

from kerasseg.export import Int8AgreementError, to_onnx, to_tflite
from kerasseg.export.int8 import (
    Agreement,
    _Stop,
    agreement,
    guarantee,
    mean_iou,
    noise_to_signal,
    split_held_out,
)
from kerasseg.runtime import Segmenter, read_metadata
from tests.export import tiny

SIZE = (64, 64)
TARGET = 0.98


@pytest.fixture(scope="module")
def hostile(model):
    # An outlier of 3000 moves 14 % of the clear-margin pixels in plain int8
    # (1000 moved 1.7 %: most of its damage was on near-ties, which the
    # agreement no longer counts).
    return tiny.hostile(model, outlier=3000.0)


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
    path = to_tflite(hostile, tmp_path / "plain.tflite", SIZE, precision="int8",
                     calibration_data=calibration, io_dtype="uint8", min_agreement=None)
    assert _agreement(path, evaluation) < 0.97
    record = read_metadata(path)["quantization"]
    assert record.pop("measured_on")["runtime"].startswith("LiteRT")
    assert record == {
        "mode": "int8", "calibration_images": 16, "coverage": 1.0, "float_layers": [],
        "float_nodes": 0, "float_ops": ["HARD_SWISH"], "per_channel": True}


@pytest.mark.parametrize("io_dtype", ["uint8", "float32"])
def test_tflite_keeps_the_outlier_in_float(hostile, calibration, evaluation, io_dtype, tmp_path):
    path = to_tflite(hostile, tmp_path / "checked.tflite", SIZE, precision="int8",
                     calibration_data=calibration, io_dtype=io_dtype)
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
    # 7-bit weights (no AVX2 saturation), and the sidecar says where it was measured.
    assert record["calibration"]["reduce_range"] is True
    assert record["measured_on"]["runtime"].startswith("ONNX Runtime")
    assert "reduce_range" in record["measured_on"]["kernels"] and "isa" in record["measured_on"]
    assert 0.8 <= record["coverage"] < 1.0
    assert record["steps"][0][1] < TARGET <= record["agreement"]
    assert _agreement(path, evaluation) >= TARGET


@pytest.mark.parametrize("export", [to_tflite, to_onnx])
def test_mostly_float_fallback_raises_instead_of_writing_the_file(export, tmp_path):
    # Every conv but the first reads an outlier tensor: the fallback would keep
    # most multiply-adds in float. Before, that float file was written as
    # "int8" (issue 26: "kept in float: <every layer>").
    model = tiny.hostile_everywhere(SIZE)
    path = tmp_path / ("m.tflite" if export is to_tflite else "m.onnx")
    with pytest.raises(Int8AgreementError, match=r"reaches \d+\.\d+% label agreement on 4 "
                       r"held-out images, under the target min_agreement=0\.98 on clear-margin "
                       r"pixels; keeping \d+ layers in float leaves \d+% of the multiply-adds "
                       r"in int8, under 80%: the file would be mostly float.*export fp16") as info:
        export(model, path, SIZE, precision="int8",
               calibration_data=tiny.images(batch=16, seed=5).astype("float32"))
    assert info.value.steps[0][1] < 0.98 and info.value.steps[-1][2] < 0.8
    assert not path.exists()


def test_validation_data_is_the_held_out_set(model, calibration, tmp_path):
    validation = tiny.images(batch=3, seed=7)
    path = to_tflite(model, tmp_path / "m.tflite", SIZE, precision="int8",
                     calibration_data=calibration, validation_data=validation,
                     calibration_steps=10)
    record = read_metadata(path)["quantization"]
    assert (record["calibration_images"], record["held_out_images"]) == (10, 3)
    assert record["float_layers"] == [] and record["steps"] == [[0, record["agreement"], 1.0]]
    path = to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                   calibration_data=calibration, validation_data=validation)
    assert read_metadata(path)["quantization"]["held_out_images"] == 3


def test_argument_errors(model, calibration, tmp_path):
    with pytest.raises(ValueError, match="`min_agreement` must be None .*min_agreement=1.5"):
        to_tflite(model, tmp_path / "m.tflite", SIZE, precision="int8",
                  calibration_data=calibration, min_agreement=1.5)
    with pytest.raises(ValueError, match="needs held-out images.*Received 3 calibration"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                calibration_data=calibration[:3])
    with pytest.raises(ValueError, match=r"`validation_data` must yield images"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                calibration_data=calibration, validation_data=calibration[..., :1])


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

    def score(kept):  # grows with what is kept; 6 units reach the goal
        calls.append(len(kept))
        return min(10, 4 + len(kept)) / 10

    outcome = guarantee(lambda kept: list(kept), score, 1.0, lambda: list("abcdefghij"))
    assert calls == [0] + [1] * 10 + [1, 2, 3, 4, 6] and outcome.kept == list("abcdef")
    assert outcome.steps[-1] == (6, 1.0, 1.0)

    def decisive(kept):  # only "h" matters: found alone, in measured order
        return 1.0 if "h" in kept else 0.9

    outcome = guarantee(lambda kept: list(kept), decisive, 1.0, lambda: list("abcdefghij"))
    assert outcome.kept == ["h"] and outcome.steps == [(0, 0.9, 1.0), (1, 1.0, 1.0)]


def test_guarantee_stops_before_the_file_is_mostly_float():
    # Each unit kept in float takes 10 % of the multiply-adds out of int8.
    def coverage(kept):
        return 1.0 - 0.1 * len(kept)

    with pytest.raises(_Stop, match="keeping 3 layers in float leaves 70% .* under 80%") as info:
        guarantee(lambda kept: list(kept), lambda kept: 0.5 + 0.1 * len(kept), 1.0,
                  lambda: list("abcde"), coverage, measured=0)
    assert [step[0] for step in info.value.steps] == [0, 1, 2, 3]
    # A lone unit that reaches the goal but leaves the file mostly float is not taken.
    outcome = guarantee(lambda kept: list(kept), lambda kept: 1.0 if kept else 0.0, 1.0,
                        lambda: ["big", "small"],
                        lambda kept: 0.5 if kept == ["big"] else 0.95)
    assert outcome.kept == ["small"]


def test_agreement_counts_clear_margin_pixels_only():
    # Pixel 0 is a near-tie (gap 0.1) that int8 flipped; pixel 1 clear and kept.
    scores = np.array([[[[1.0, 1.1], [0.0, 3.0]]]])
    measure = Agreement(scores, 0.98, 0.0)
    assert measure.score(np.array([[[0, 1]]])) == 1.0
    assert measure.record()["clear_pixels"] == 0.5
    assert agreement(np.array([1, 1]), np.array([0, 1])) == 0.5  # all pixels: charged


def test_mean_iou_against_an_independent_count():
    masks = np.array([[0, 0, 1, 1, 255]])
    labels = np.array([[0, 1, 1, 1, 0]])
    # class 0: 1 / 2; class 1: 2 / 3; the ignored pixel counts nowhere.
    assert mean_iou(labels, masks, 3) == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    assert mean_iou(labels, masks, 1) == pytest.approx(100 * 2 / 3)  # foreground IoU


def test_split_held_out():
    calibration, held_out = split_held_out(np.zeros((16, 2)), None)
    assert (len(calibration), len(held_out)) == (12, 4)
    calibration, held_out = split_held_out(np.zeros((16, 2)), None, min_agreement=None)
    assert (len(calibration), len(held_out)) == (16, 0)


def test_old_argument_names_still_work_with_a_deprecation_warning(model, calibration, tmp_path):
    # One vocabulary for every exporter: precision= and calibration_data=.
    with pytest.warns(DeprecationWarning, match="`quantization` is deprecated; use `precision`"):
        path = to_tflite(model, tmp_path / "old.tflite", SIZE, quantization="fp16")
    assert read_metadata(path)["quantization"]["mode"] == "fp16"
    with pytest.warns(DeprecationWarning, match="`representative_data` is deprecated"):
        path = to_onnx(model, tmp_path / "old.onnx", SIZE, precision="int8",
                       representative_data=calibration, min_agreement=None)
    assert read_metadata(path)["quantization"]["calibration_images"] == 16
    with pytest.raises(TypeError, match="both `quantization` and `precision`"):
        to_tflite(model, tmp_path / "x.tflite", SIZE, precision="fp16", quantization="fp16")
    with pytest.raises(TypeError, match="unexpected keyword argument 'quantisation'"):
        to_tflite(model, tmp_path / "x.tflite", SIZE, quantisation="fp16")


def test_both_routes_take_the_same_calibration_inputs(model, calibration, tmp_path):
    # A tf.data pipeline of (image, mask) pairs at another size: ONNX took arrays
    # at the export size only.
    import tensorflow as tf

    pairs = tf.data.Dataset.from_tensor_slices(
        (tf.image.resize(calibration, (48, 48)), tf.zeros((16, 48, 48), tf.int32))).batch(4)
    for export, name in ((to_tflite, "m.tflite"), (to_onnx, "m.onnx")):
        path = export(model, tmp_path / name, SIZE, precision="int8", calibration_data=pairs,
                      min_agreement=None)
        assert read_metadata(path)["quantization"]["calibration_images"] == 16
