"""The TensorRT route without a GPU: `build_engine`, `to_tensorrt` and the
Jetson kit against a fake `tensorrt` module shaped like TensorRT 11 (no
BuilderFlag, no calibrators), and the message where TensorRT is absent."""

import enum
import importlib.util
import json
import sys
import types
from pathlib import Path

import onnx
import pytest

from kerasseg.export import TensorRTUnavailableError, to_onnx, to_tensorrt, trtexec_command
from kerasseg.export import tensorrt as export_tensorrt
from kerasseg.runtime import read_metadata
from kerasseg.runtime.tensorrt import build_engine
from tests.export import tiny

SIZE = (64, 64)
ENGINE_BYTES = b"fake serialized engine"
STRONGLY_TYPED = 5  # any bit: the test checks the flag word is built from the enum


def _fake_tensorrt():
    """A `tensorrt` module with only the TensorRT 11 names the builder may use;
    it records what the code under test asked for in `trt.calls`."""
    trt = types.ModuleType("tensorrt")
    trt.calls = {}
    trt.parse_errors = []

    class Logger:
        WARNING = "warning"

        def __init__(self, severity):
            self.severity = severity

    class Network:
        def __init__(self, flags):
            self.flags = flags

    class Config:
        def set_memory_pool_limit(self, pool, size):
            trt.calls["memory_pool_limit"] = (pool, size)

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            trt.calls["network_flags"] = flags
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            trt.calls["built"] = network.flags
            return ENGINE_BYTES

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse_from_file(self, path):
            trt.calls["parsed"] = path
            with open(path, "rb") as f:
                onnx.load_model_from_string(f.read())  # a real ONNX file was given
            self.num_errors = len(trt.parse_errors)
            return not trt.parse_errors

        def get_error(self, index):
            return trt.parse_errors[index]

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": STRONGLY_TYPED})
    return trt


@pytest.fixture
def trt(monkeypatch):
    """The fake TensorRT installed, with a GPU as far as `to_tensorrt` can tell."""
    fake = _fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(export_tensorrt, "_unavailable_reason", lambda: None)
    return fake


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    return to_onnx(model, tmp_path_factory.mktemp("trt") / "model.onnx", SIZE, nchw=True,
                   labels=tiny.LABELS)


def test_build_engine_strongly_typed(trt, onnx_path, tmp_path):
    engine = tmp_path / "model.engine"
    assert build_engine(onnx_path, engine, workspace_gb=1.5) == engine
    assert trt.calls["parsed"] == onnx_path
    assert trt.calls["network_flags"] == 1 << STRONGLY_TYPED == trt.calls["built"]
    assert trt.calls["memory_pool_limit"] == (trt.MemoryPoolType.WORKSPACE, int(1.5 * 2**30))
    assert engine.read_bytes() == ENGINE_BYTES


def test_build_engine_parse_errors(trt, onnx_path, tmp_path):
    trt.parse_errors = ["In node 3 (Resize): unsupported mode", "second error"]
    with pytest.raises(ValueError, match="could not parse") as info:
        build_engine(onnx_path, tmp_path / "model.engine")
    assert "In node 3 (Resize): unsupported mode\nsecond error" in str(info.value)
    assert not (tmp_path / "model.engine").exists()


def test_build_engine_needs_strong_typing(trt, onnx_path, tmp_path):
    trt.__version__ = "8.6.2"  # JetPack 5: no STRONGLY_TYPED network flag
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     {"EXPLICIT_BATCH": 0})
    with pytest.raises(RuntimeError, match="TensorRT 8.6.2 has no strongly typed networks"):
        build_engine(onnx_path, tmp_path / "model.engine")


def test_to_tensorrt_int8_from_keras(trt, model, tmp_path):
    engine = str(tmp_path / "model_int8.engine")
    calibration = tiny.images(batch=4, seed=5)
    assert to_tensorrt(model, engine, "int8", SIZE, calibration_data=calibration) == engine
    proto = onnx.load(tmp_path / "model_int8.onnx")  # the precision is in the ONNX graph
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert trt.calls["network_flags"] == 1 << STRONGLY_TYPED
    assert Path(engine).read_bytes() == ENGINE_BYTES
    metadata = read_metadata(engine)
    assert metadata["quantization"]["mode"] == "int8"
    assert metadata["quantization"]["held_out_images"] == 2  # of the 4 calibration images
    assert metadata["input"]["layout"] == "NCHW"
    with pytest.raises(ValueError, match="`calibration_data` is required"):
        to_tensorrt(model, engine, "int8", SIZE)


def test_to_tensorrt_onnx_precision_must_match(trt, onnx_path, tmp_path):
    engine = str(tmp_path / "model.engine")
    with pytest.raises(ValueError, match="exported as 'fp32'.*Received: precision='fp16'"):
        to_tensorrt(onnx_path, engine, "fp16")
    with pytest.raises(ValueError, match="`calibration_data` applies when exporting"):
        to_tensorrt(onnx_path, engine, "fp32", calibration_data=tiny.images())
    assert "built" not in trt.calls
    to_tensorrt(onnx_path, engine, "fp32")
    metadata = read_metadata(engine)
    assert metadata["quantization"] == {"mode": "none"}  # not quantized, as TFLite says
    assert metadata["labels"] == list(tiny.LABELS)


def test_jetson_kit_builds_from_the_onnx(trt, onnx_path, tmp_path, capsys):
    script = Path(__file__).resolve().parents[2] / "export" / "jetson" / "build_engine.py"
    spec = importlib.util.spec_from_file_location("jetson_build_engine", script)
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    engine = str(tmp_path / "model.engine")
    with pytest.raises(SystemExit, match="exported as fp32, not int8"):
        kit.main([onnx_path, engine, "--precision", "int8"])
    kit.main([onnx_path, engine, "--precision", "fp32", "--workspace-gb", "1"])
    assert trt.calls["network_flags"] == 1 << STRONGLY_TYPED
    assert trt.calls["memory_pool_limit"][1] == 2**30
    assert Path(engine).read_bytes() == ENGINE_BYTES
    with open(engine + ".json") as f:
        assert json.load(f)["quantization"] == {"mode": "none"}
    assert "wrote" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed: the fallback message is not shown")
def test_fallback_names_the_onnx_and_command(model, tmp_path):
    engine = str(tmp_path / "model.engine")
    with pytest.raises(TensorRTUnavailableError) as info:
        to_tensorrt(model, engine, precision="fp16", image_size=SIZE)
    onnx_file = str(tmp_path / "model.onnx")
    message = str(info.value)
    assert "`tensorrt` Python package is not installed" in message
    assert (f"trtexec --onnx={onnx_file} --saveEngine={engine} --stronglyTyped "
            "--memPoolSize=workspace:2048M") in message
    assert f"export/jetson/build_engine.py {onnx_file} {engine}" in message
    assert read_metadata(onnx_file)["quantization"] == {"mode": "fp16"}  # exported already
    assert trtexec_command("m.onnx", "m.engine", 0.5) == (
        "trtexec --onnx=m.onnx --saveEngine=m.engine --stronglyTyped "
        "--memPoolSize=workspace:512M")
    with pytest.raises(ValueError, match="`precision` must be one of"):
        to_tensorrt(onnx_file, engine, precision="int4")
    with pytest.raises(FileNotFoundError):
        to_tensorrt(str(tmp_path / "missing.onnx"), engine)
