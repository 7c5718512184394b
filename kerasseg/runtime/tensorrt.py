"""TensorRT engines: build one from an ONNX file and run it. No TensorFlow.

Needs TensorRT >= 10 (`import tensorrt`, shipped with JetPack 6) and
cuda-python for device memory. Used by `kerasseg.export.to_tensorrt`, by
`kerasseg.runtime.Segmenter` for `.engine`/`.plan` files and by the Jetson kit
(`export/jetson/`).
"""

import os

import numpy as np

from kerasseg.runtime.backends import ModelLoadError, TensorInfo

PRECISIONS = ("fp32", "fp16", "int8")


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


def _calibrator(trt, images, cache_path):
    """An entropy calibrator fed one batch at a time from `images`
    (float32, already in the engine input's shape per batch)."""
    cuda = _cuda_runtime()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.index = 0
            self.batch = images.shape[1]
            self.memory = _check_cuda(cuda.cudaMalloc(images[0].nbytes))

        def get_batch_size(self):
            return self.batch

        def get_batch(self, names):
            if self.index >= len(images):
                return None
            batch = np.ascontiguousarray(images[self.index])
            _check_cuda(cuda.cudaMemcpy(self.memory, batch.ctypes.data, batch.nbytes,
                                        cuda.cudaMemcpyKind.cudaMemcpyHostToDevice))
            self.index += 1
            return [int(self.memory)]

        def read_calibration_cache(self):
            if cache_path and os.path.exists(cache_path):
                with open(cache_path, "rb") as f:
                    return f.read()
            return None

        def write_calibration_cache(self, cache):
            if cache_path:
                with open(cache_path, "wb") as f:
                    f.write(cache)

    return Calibrator()


def build_engine(onnx_path, engine_path, precision="fp16", calibration_images=None,
                 calibration_cache=None, workspace_gb=2.0):
    """Builds a TensorRT engine from a static-shape ONNX file.

    Args:
        onnx_path: The ONNX file (from `kerasseg.export.to_onnx`).
        engine_path: Where to write the serialized engine.
        precision: "fp32", "fp16" or "int8" (INT8 also enables FP16 for
            layers without INT8 kernels).
        calibration_images: For "int8": float32 raw-pixel images laid out
            like the ONNX input without its batch axis ((N, H, W, C) for NHWC,
            (N, C, H, W) for NCHW); or None with an existing `calibration_cache`.
        calibration_cache: Path to read/write the INT8 calibration cache.
        workspace_gb: Builder workspace memory limit in GiB.

    Returns:
        `engine_path`.
    """
    trt = _tensorrt()
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {PRECISIONS}. Received: precision={precision!r}"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT could not parse {os.fspath(onnx_path)!r}:\n{errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        batch_shape = tuple(network.get_input(0).shape)
        if calibration_images is None and not (
            calibration_cache and os.path.exists(calibration_cache)
        ):
            raise ValueError(
                "`calibration_images` (or an existing `calibration_cache`) is required for "
                "precision='int8'."
            )
        images = np.zeros((0, *batch_shape), np.float32)
        if calibration_images is not None:
            images = np.asarray(calibration_images, np.float32)
            per_batch = batch_shape[0]
            usable = len(images) // per_batch * per_batch
            images = images[:usable].reshape(-1, *batch_shape)
        config.int8_calibrator = _calibrator(trt, images, calibration_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine; see the log above.")
    with open(engine_path, "wb") as f:
        f.write(serialized)
    return engine_path
