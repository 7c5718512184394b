"""`to_onnx` (tf2onnx) run in ONNX Runtime against the Keras model, at fp32,
fp16 (fp16 tensors in the graph) and int8 (explicit Q/DQ, as TensorRT wants)."""

import json

import numpy as np
import onnx
import pytest

from kerasseg.export import to_onnx
from kerasseg.runtime import Segmenter, read_metadata
from tests.export import tiny

SIZE = (64, 64)
TOLERANCE = 1e-5  # max |logit difference|, relative to the largest |logit|
# fp16 rounds each tensor to 11 significant bits (relative error 2^-11 ~ 5e-4);
# a few layers accumulate that, measured 2.4e-4 of the largest |logit|.
FP16_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def nchw_path(model, tmp_path_factory):
    return to_onnx(model, tmp_path_factory.mktemp("onnx") / "nchw.onnx", SIZE, nchw=True)


def _assert_close(exported, reference):
    assert np.abs(exported - reference).max() <= TOLERANCE * max(1.0, np.abs(reference).max())


def test_nhwc_static_named_opset17(model, images, reference, tmp_path):
    path = to_onnx(model, tmp_path / "m.onnx", SIZE)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    segmenter = Segmenter.load(path, num_threads=1)
    assert segmenter.input.shape == (1, *SIZE, 3)
    raw = segmenter.run(images[:1].astype("float32"))["logits"]
    _assert_close(raw, reference[:1])
    assert np.mean(segmenter.predict(images) == reference.argmax(-1)) >= 0.999


def test_nchw_layout(nchw_path, images, reference):
    segmenter = Segmenter.load(nchw_path)
    assert segmenter.input.shape == (1, 3, *SIZE)
    assert segmenter.backend.outputs[0].shape == (1, tiny.NUM_CLASSES, *SIZE)
    raw = segmenter.run(images[:1].transpose(0, 3, 1, 2).astype("float32"))["logits"]
    _assert_close(raw, reference[:1].transpose(0, 3, 1, 2))
    metadata = read_metadata(nchw_path)
    assert metadata["input"]["layout"] == "NCHW" and metadata["input"]["shape"] == [1, 3, 64, 64]
    assert metadata["opset"] == 17
    _assert_close(segmenter.predict_logits(images), reference)  # the runtime transposes


def test_dynamic_shape_and_labels(model, tmp_path):
    path = to_onnx(model, tmp_path / "dynamic.onnx", static_shape=False)
    segmenter = Segmenter.load(path)
    assert segmenter.input.shape == (None, None, None, 3)
    for size in ((64, 64), (40, 56)):
        images = tiny.images(batch=3, size=size)
        _assert_close(segmenter.run(images.astype("float32"))["logits"],
                      model.predict(images.astype("float32"), verbose=0))
    labels_path = to_onnx(model, tmp_path / "labels.onnx", SIZE, output="labels")
    images = tiny.images(batch=1)
    labels = Segmenter.load(labels_path).run(images.astype("float32"))["labels"]
    assert labels.shape == (1, *SIZE) and labels.dtype.kind == "i"
    expected = model.predict(images.astype("float32"), verbose=0).argmax(-1)
    assert np.mean(labels == expected) >= 0.999


def _in_file_metadata(proto):
    return json.loads({p.key: p.value for p in proto.metadata_props}["kerasseg_metadata"])


def _initializer(proto, name):
    return next(t for t in proto.graph.initializer if t.name == name)


def test_fp16_graph_float32_io(model, images, reference, tmp_path):
    path = to_onnx(model, tmp_path / "fp16.onnx", SIZE, nchw=True, precision="fp16")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    float32, float16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [float32]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [float32]
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 3
    assert all(_initializer(proto, n.input[1]).data_type == float16 for n in convs)
    assert read_metadata(path)["quantization"] == {"mode": "fp16"}
    assert _in_file_metadata(proto)["quantization"] == {"mode": "fp16"}
    # ONNX Runtime's CPU provider has fp16 kernels for these ops (and for
    # pooling, Softmax, ArgMax, ConvTranspose, Concat: checked with ORT 1.31).
    segmenter = Segmenter.load(path, num_threads=1)
    logits = segmenter.predict_logits(images)
    assert np.abs(logits - reference).max() <= FP16_TOLERANCE * np.abs(reference).max()
    assert np.mean(logits.argmax(-1) == reference.argmax(-1)) >= 0.999


def test_int8_qdq_for_tensorrt(model, images, reference, tmp_path):
    calibration = tiny.images(batch=12, seed=5)  # other images than the evaluated ones
    path = to_onnx(model, tmp_path / "int8.onnx", SIZE, nchw=True, precision="int8",
                   calibration_data=calibration, calibration_steps=8)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    nodes = {n.output[0]: n for n in proto.graph.node}
    quantize = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    # 3 weights + 3 activations (conv inputs); the conv outputs and bias stay float.
    assert len(quantize) == 6
    assert sum(n.op_type == "DequantizeLinear" for n in proto.graph.node) == 6
    for node in quantize:  # TensorRT accepts only symmetric int8: zero point 0
        zero_point = onnx.numpy_helper.to_array(_initializer(proto, node.input[2]))
        assert zero_point.dtype == np.int8 and not zero_point.any()
    for conv in (n for n in proto.graph.node if n.op_type == "Conv"):
        activation, weight = nodes[conv.input[0]], nodes[conv.input[1]]
        assert activation.op_type == weight.op_type == "DequantizeLinear"
        # Q/DQ pair on the float weight, one scale per output channel
        assert nodes[weight.input[0]].op_type == "QuantizeLinear"
        scale = onnx.numpy_helper.to_array(_initializer(proto, weight.input[1]))
        kernel = _initializer(proto, nodes[weight.input[0]].input[0])
        assert kernel.data_type == onnx.TensorProto.FLOAT and scale.shape == (kernel.dims[0],)
        assert conv.input[2] not in nodes  # bias: a float initializer, no int32 DQ
    record = read_metadata(path)["quantization"]
    assert record["mode"] == "int8" and record["agreement"] >= 0.98
    assert (record["calibration_images"], record["held_out_images"]) == (6, 2)
    assert _in_file_metadata(proto)["quantization"] == record
    labels = Segmenter.load(path, num_threads=1).predict(images)
    assert np.mean(labels == reference.argmax(-1)) >= 0.98


def test_precision_errors(model, tmp_path):
    with pytest.raises(ValueError, match="`precision` must be one of"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int4")
    with pytest.raises(ValueError, match="`calibration_data` is required"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8")
    # Images of another size are resized, as for TFLite; other channel counts are not.
    with pytest.raises(ValueError, match=r"`calibration_data` must yield images \(H, W, 3\)"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                calibration_data=tiny.images(batch=2, size=(32, 32))[..., :1])
    with pytest.raises(ValueError, match="`calibration_steps` must be"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="int8",
                calibration_data=tiny.images(batch=2), calibration_steps=0)
    with pytest.raises(ValueError, match="used only with precision='int8'"):
        to_onnx(model, tmp_path / "m.onnx", SIZE, precision="fp16",
                calibration_data=tiny.images(batch=2))
    assert not (tmp_path / "m.onnx").exists()
