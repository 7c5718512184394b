"""`to_tflite` on a tiny trained model: parity per quantisation mode, output
kinds, metadata, builtin-only enforcement and CRF stripping."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg.export import UnsupportedOpsError, strip_crf, to_tflite
from kerasseg.export.tflite import short_tensor_names
from kerasseg.runtime import Segmenter, read_metadata
from tests.export import tiny

SIZE = (64, 64)
FLOAT_TOLERANCE = 1e-5  # relative to the largest |logit|
FP16_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def float_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite") / "float.tflite"
    return to_tflite(model, path, SIZE, labels=tiny.LABELS, palette=tiny.PALETTE)


def _max_relative_error(exported, reference):
    return np.abs(exported - reference).max() / max(1.0, np.abs(reference).max())


def test_float_matches_keras(float_path, images, reference):
    segmenter = Segmenter.load(float_path)
    assert _max_relative_error(segmenter.predict_logits(images), reference) < FLOAT_TOLERANCE
    assert np.mean(segmenter.predict(images) == reference.argmax(-1)) >= 0.999


def test_metadata_sidecar(float_path):
    with open(float_path + ".json") as f:
        metadata = json.load(f)
    assert metadata == read_metadata(float_path)
    assert metadata["labels"] == list(tiny.LABELS)
    assert metadata["palette"] == [list(c) for c in tiny.PALETTE]
    assert metadata["num_classes"] == tiny.NUM_CLASSES
    assert metadata["input"]["shape"] == [1, *SIZE, 3]
    assert metadata["input"]["layout"] == "NHWC"
    assert metadata["input"]["normalisation"] == {
        "inside_model": True, "mode": "tf", "channel_order": "RGB",
        "mean": [127.5] * 3, "std": [127.5] * 3,
    }
    assert metadata["outputs"] == [{
        "name": "logits", "kind": "logits", "layout": "NHWC", "shape": [1, *SIZE, 3],
        "dtype": "float32", "quantization": None,
    }]
    assert metadata["quantization"] == {"mode": "none"}


def _tensor_names_and_buffer_offsets(flatbuffer):
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(flatbuffer, 0)
    graph = model.Subgraphs(0)
    names = [graph.Tensors(i).Name() for i in range(graph.TensorsLength())]
    start = np.frombuffer(flatbuffer, np.uint8).ctypes.data
    offsets = [model.Buffers(i).DataAsNumpy().ctypes.data - start
               for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    return names, offsets


def test_tensor_names_shortened(model, images, tmp_path):
    """The converter's fused names ("a;b;c") shortened, unique, and nothing
    else changed: same outputs, constant buffers still on 16 bytes."""
    from ai_edge_litert.interpreter import Interpreter

    directory = tmp_path / "saved"
    model.export(directory, verbose=False)
    converted = tf.lite.TFLiteConverter.from_saved_model(str(directory)).convert()
    short = short_tensor_names(converted)
    long_names, _ = _tensor_names_and_buffer_offsets(converted)
    names, offsets = _tensor_names_and_buffer_offsets(short)
    assert any(b";" in name for name in long_names)
    assert len(set(names)) == len(names) == len(long_names)
    assert sum(map(len, names)) < sum(map(len, long_names)) and len(short) < len(converted)
    assert all(name == long[:len(name)] for name, long in zip(names, long_names))
    assert offsets and all(offset % 16 == 0 for offset in offsets)
    outputs = []
    for content in (converted, short):
        interpreter = Interpreter(model_content=content)
        interpreter.resize_tensor_input(0, [1, *images.shape[1:]])
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               images[:1].astype(np.float32))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("quantization", ["fp16", "dynamic"])
def test_weight_quantization_smaller_and_close(model, float_path, images, reference,
                                               quantization, tmp_path):
    path = to_tflite(model, tmp_path / "q.tflite", SIZE, precision=quantization)
    logits = Segmenter.load(path).predict_logits(images)
    tolerance = FP16_TOLERANCE if quantization == "fp16" else 0.1
    assert _max_relative_error(logits, reference) < tolerance
    assert np.mean(logits.argmax(-1) == reference.argmax(-1)) >= 0.99
    assert read_metadata(path)["quantization"] == {"mode": quantization}
    with open(path, "rb") as quantized, open(float_path, "rb") as full:
        assert len(quantized.read()) < len(full.read())


@pytest.mark.parametrize("io_dtype", ["uint8", "float32"])
def test_int8_full_integer(model, images, reference, io_dtype, tmp_path):
    calibration = tf.data.Dataset.from_tensor_slices(
        (tiny.images(batch=16, seed=5).astype("float32"), np.zeros((16, *SIZE), "int32"))
    ).batch(4)  # a tf.data pipeline of (image, mask) batches, as in training
    path = to_tflite(model, tmp_path / "int8.tflite", SIZE, precision="int8",
                     calibration_data=calibration, io_dtype=io_dtype)
    segmenter = Segmenter.load(path)
    assert segmenter.input.dtype == np.dtype(io_dtype)
    # A uint8 input is cast to float in the graph: camera bytes go in as they are.
    assert segmenter.input.quantization is None
    metadata = read_metadata(path)
    assert metadata["quantization"]["mode"] == "int8"
    assert metadata["quantization"]["agreement"] >= 0.98
    assert metadata["input"]["dtype"] == io_dtype
    output = segmenter.backend.outputs[0]
    if io_dtype == "uint8":  # the graph's own int8 logits, with their scale and zero point
        assert output.dtype == np.int8 and output.quantization is not None
        assert metadata["outputs"][0]["quantization"] == list(output.quantization)
    else:
        assert output.dtype == np.float32
    assert np.mean(segmenter.predict(images) == reference.argmax(-1)) >= 0.98


def _weight_scale_counts(path):
    """How many scales each int8 constant (weight) tensor of a .tflite file carries."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as file:
        graph = schema.ModelT.InitFromPackedBuf(file.read(), 0)
    buffers = graph.buffers
    return [len(tensor.quantization.scale) for tensor in graph.subgraphs[0].tensors
            if tensor.type == schema.TensorType.INT8 and buffers[tensor.buffer].data is not None
            and len(buffers[tensor.buffer].data)]


def test_int8_weights_per_tensor(model, images, reference, tmp_path):
    calibration = tiny.images(batch=16, seed=5).astype("float32")
    paths = {per_channel: to_tflite(model, tmp_path / f"{per_channel}.tflite", SIZE,
                                    precision="int8", calibration_data=calibration,
                                    io_dtype="uint8", per_channel=per_channel)
             for per_channel in (True, False)}
    assert max(_weight_scale_counts(paths[True])) > 1
    assert set(_weight_scale_counts(paths[False])) == {1}
    # A float32 scale and an int64 zero point fewer per output channel.
    assert os.path.getsize(paths[False]) < os.path.getsize(paths[True])
    record = read_metadata(paths[False])["quantization"]
    assert record["per_channel"] is False and record["agreement"] >= 0.98
    assert read_metadata(paths[True])["quantization"]["per_channel"] is True
    assert np.mean(Segmenter.load(paths[False]).predict(images) == reference.argmax(-1)) >= 0.98


def test_output_labels_and_probabilities(model, images, reference, tmp_path):
    labels_path = to_tflite(model, tmp_path / "labels.tflite", SIZE, output="labels",
                            io_dtype="uint8")
    segmenter = Segmenter.load(labels_path)
    assert segmenter.input.dtype == np.uint8
    raw = segmenter.run(images[:1])["labels"]
    assert raw.dtype == np.int32 and raw.shape == (1, *SIZE)
    np.testing.assert_array_equal(segmenter.predict(images), reference.argmax(-1))
    with pytest.raises(ValueError, match="labels only"):
        segmenter.predict_proba(images)

    proba_path = to_tflite(model, tmp_path / "proba.tflite", SIZE, output="probabilities")
    probabilities = Segmenter.load(proba_path).predict_proba(images)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(reference).numpy(), atol=1e-5)


def test_activation_model_has_no_logits(tmp_path):
    softmax_model = tiny.build(activation="softmax")
    with pytest.raises(ValueError, match="no logits"):
        to_tflite(softmax_model, tmp_path / "m.tflite", SIZE)
    path = to_tflite(softmax_model, tmp_path / "m.tflite", SIZE, output="probabilities")
    np.testing.assert_allclose(
        Segmenter.load(path).predict_proba(tiny.images(1))[..., :].sum(-1), 1.0, atol=1e-5)


class ArgmaxPool(keras.layers.Layer):
    """Uses tf.nn.max_pool_with_argmax, which has no TFLite builtin."""

    def call(self, x):
        pooled, _ = tf.nn.max_pool_with_argmax(x, 2, 2, "SAME")
        return pooled


def test_flex_ops_are_refused_and_named(tmp_path):
    image = keras.Input((32, 32, 3), name="image")
    x = ArgmaxPool()(image)
    x = keras.layers.Conv2D(2, 1, name="logits")(keras.layers.UpSampling2D()(x))
    model = keras.Model(image, x)
    with pytest.raises(UnsupportedOpsError, match="MaxPoolWithArgmax") as info:
        to_tflite(model, tmp_path / "flex.tflite")
    assert info.value.ops == ["MaxPoolWithArgmax"]
    path = to_tflite(model, tmp_path / "flex.tflite", allow_flex_ops=True)
    with open(path, "rb") as f:
        assert b"FlexMaxPoolWithArgmax" in f.read()


class DenseCRF(keras.layers.Layer):
    """Stands in for kerasseg.layers.crf.DenseCRF (the exporters match the class
    name): [logits, image] -> logits changed by the image."""

    def call(self, inputs):
        logits, image = inputs
        return logits + tf.reduce_mean(image, axis=-1, keepdims=True)


def test_crf_is_dropped_with_a_warning(model, images, reference, tmp_path):
    with_crf = keras.Model(model.inputs, DenseCRF(name="crf")([model.outputs[0],
                                                               model.inputs[0]]))
    with pytest.warns(UserWarning, match="Dropping CRF layer"):
        stripped = strip_crf(with_crf)
    assert "crf" not in [layer.name for layer in stripped.layers]
    np.testing.assert_allclose(stripped.predict(images.astype("float32"), verbose=0),
                               reference, atol=1e-5)
    with pytest.warns(UserWarning, match="Dropping CRF"):
        path = to_tflite(with_crf, tmp_path / "crf.tflite", SIZE)
    assert _max_relative_error(Segmenter.load(path).predict_logits(images), reference) < 1e-5


def test_argument_errors(model, tmp_path):
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match="`precision` must be one of.*precision='int4'"):
        to_tflite(model, path, SIZE, precision="int4")
    with pytest.raises(ValueError, match="`calibration_data` is required"):
        to_tflite(model, path, SIZE, precision="int8")
    with pytest.raises(ValueError, match="`image_size` is required"):
        to_tflite(model, path)
    with pytest.raises(ValueError, match="`io_dtype` must be one of"):
        to_tflite(model, path, SIZE, io_dtype="int16")
    with pytest.raises(ValueError, match="`output` must be one of"):
        to_tflite(model, path, SIZE, output="mask")
    with pytest.raises(ValueError, match="`labels` must have one name per class"):
        to_tflite(model, path, SIZE, labels=["a"])
    with pytest.raises(ValueError, match="`calibration_data` must yield images"):
        to_tflite(model, path, SIZE, precision="int8",
                  calibration_data=np.zeros((2, 64, 64, 1)))
