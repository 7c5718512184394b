"""`to_onnx` (tf2onnx) run in ONNX Runtime against the Keras model, and the
TensorRT fallback message where TensorRT is absent."""

import importlib.util

import numpy as np
import onnx
import pytest

from kerasseg.export import TensorRTUnavailableError, to_onnx, to_tensorrt, trtexec_command
from kerasseg.runtime import Segmenter, read_metadata
from tests.export import tiny

SIZE = (64, 64)
TOLERANCE = 1e-5  # max |logit difference|, relative to the largest |logit|


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


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed: the fallback message is not shown")
def test_tensorrt_fallback_names_the_command(nchw_path, tmp_path):
    engine = str(tmp_path / "model.engine")
    with pytest.raises(TensorRTUnavailableError) as info:
        to_tensorrt(nchw_path, engine, precision="fp16")
    message = str(info.value)
    assert f"trtexec --onnx={nchw_path} --saveEngine={engine} --fp16" in message
    assert "export/jetson/build_engine.py" in message
    command = trtexec_command("m.onnx", "m.engine", "int8")
    assert "--int8" in command and "--calib=m.calib" in command
    with pytest.raises(ValueError, match="`precision` must be one of"):
        to_tensorrt(nchw_path, engine, precision="int4")
    with pytest.raises(FileNotFoundError):
        to_tensorrt(str(tmp_path / "missing.onnx"), engine)
