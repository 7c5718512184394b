"""TensorRT engines: build one from an ONNX file and run it. No TensorFlow.

Needs TensorRT 10 (JetPack 6) or 11 (`pip install tensorrt`) and cuda-python
for device memory; engines are built strongly typed, the precision coming
from the ONNX file. Used by `kerasseg.export.to_tensorrt`, by
`kerasseg.runtime.Segmenter` for `.engine`/`.plan` files and by the Jetson kit
(`export/jetson/`).
"""

import os

import numpy as np

from kerasseg.runtime.tensors import ModelLoadError, TensorInfo


def _cuda_runtime():
    """cuda-python's runtime module, under its new or old import path."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError as error:
            raise ImportError(
                "TensorRT engines need cuda-python for device memory: pip install cuda-python"
            ) from error
    return runtime


def _check_cuda(result):
    status, *values = result
    if int(status) != 0:
        raise RuntimeError(f"CUDA call failed: {status}")
    return values[0] if len(values) == 1 else None


def visible_gpu_count():
    """How many NVIDIA GPUs CUDA sees here.

    Raises:
        ImportError: cuda-python is not installed.
        RuntimeError: the CUDA driver or runtime is not usable.
    """
    return _check_cuda(_cuda_runtime().cudaGetDeviceCount())


def _tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise ImportError(
            "TensorRT engines need the `tensorrt` Python package (JetPack ships it; on a "
            "desktop GPU: pip install tensorrt) and an NVIDIA GPU."
        ) from error
    return tensorrt


class TensorRTBackend:
    """A serialized TensorRT engine (`.engine` / `.plan`). Engines are tied to
    the GPU model and TensorRT version that built them."""

    format = "tensorrt"

    def __init__(self, path, num_threads=None):
        trt = _tensorrt()
        self._cuda = _cuda_runtime()
        logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as f:
            engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())
        if engine is None:
            raise ModelLoadError(
                f"Could not load {os.fspath(path)!r} as a TensorRT engine: corrupt, truncated, "
                "or built by another TensorRT version or GPU. Rebuild it on this device."
            )
        self._engine, self._context = engine, engine.create_execution_context()
        self.inputs, self.outputs, self._buffers = [], [], {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(int(s) for s in engine.get_tensor_shape(name))
            if any(s < 0 for s in shape):
                raise ModelLoadError(
                    f"TensorRT engine {os.fspath(path)!r} has dynamic shape {shape} for {name!r}; "
                    "build it from a static-shape ONNX (to_onnx(..., static_shape=True))."
                )
            info = TensorInfo(name, shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(info)
            nbytes = int(np.prod(shape)) * info.dtype.itemsize
            self._buffers[name] = _check_cuda(self._cuda.cudaMalloc(nbytes))
            self._context.set_tensor_address(name, int(self._buffers[name]))
        self._stream = _check_cuda(self._cuda.cudaStreamCreate())

    def run(self, feed):
        cuda, kind = self._cuda, self._cuda.cudaMemcpyKind
        hosts = {}
        for info in self.inputs:
            hosts[info.name] = np.ascontiguousarray(feed[info.name], dtype=info.dtype)
            _check_cuda(cuda.cudaMemcpyAsync(
                self._buffers[info.name], hosts[info.name].ctypes.data,
                hosts[info.name].nbytes, kind.cudaMemcpyHostToDevice, self._stream))
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execution failed")
        results = {}
        for info in self.outputs:
            results[info.name] = np.empty(info.shape, info.dtype)
            _check_cuda(cuda.cudaMemcpyAsync(
                results[info.name].ctypes.data, self._buffers[info.name],
                results[info.name].nbytes, kind.cudaMemcpyDeviceToHost, self._stream))
        _check_cuda(cuda.cudaStreamSynchronize(self._stream))
        return results

    def __del__(self):
        for pointer in getattr(self, "_buffers", {}).values():
            self._cuda.cudaFree(pointer)


def build_engine(onnx_path, engine_path, workspace_gb=2.0):
    """Builds a TensorRT engine from a static-shape ONNX file, strongly typed.

    The precision is the ONNX file's own: fp32, fp16 tensors or explicit
    int8 Q/DQ nodes (`kerasseg.export.to_onnx(..., precision=...)`). This is
    the only mode TensorRT 11 has (it removed the FP16/INT8 builder flags
    and the calibrators); TensorRT 10 gets the same with the STRONGLY_TYPED
    network flag, which TensorRT 11 accepts and ignores.

    Args:
        onnx_path: The ONNX file (from `kerasseg.export.to_onnx`).
        engine_path: Where to write the serialized engine.
        workspace_gb: Builder workspace memory limit in GiB.

    Returns:
        `engine_path`.

    Raises:
        ValueError: TensorRT cannot parse the ONNX file (its errors are in
            the message).
        RuntimeError: TensorRT older than 10, or the build failed.
    """
    trt = _tensorrt()
    onnx_path = os.fspath(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is None:
        raise RuntimeError(
            f"TensorRT {getattr(trt, '__version__', '(unknown version)')} has no strongly "
            "typed networks; kerasseg engines need TensorRT 10 (JetPack 6) or 11."
        )
    # Explicit batch is the only mode since TensorRT 10; TensorRT 11 accepts
    # STRONGLY_TYPED and ignores it (every network is strongly typed there).
    network = builder.create_network(1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT could not parse {onnx_path!r}:\n{errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine; see the log above.")
    with open(os.fspath(engine_path), "wb") as f:
        f.write(serialized)
    return engine_path
