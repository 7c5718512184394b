"""Inference engines behind `Segmenter`: LiteRT, ONNX Runtime and TensorRT.

Each backend loads one file and exposes `inputs` and `outputs` (lists of
`TensorInfo`) and `run(feed) -> {name: array}` on raw tensors. None of them
imports TensorFlow, and each imports its engine only when a file is loaded.
"""

import os

import numpy as np

from kerasseg.runtime.tensorrt import TensorRTBackend
from kerasseg.runtime.tensors import TensorInfo, load_error


class LiteRTBackend:
    """A `.tflite` file run by the LiteRT interpreter (`ai-edge-litert`)."""

    format = "tflite"

    def __init__(self, path, num_threads=None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ImportError(
                "Running .tflite files needs LiteRT: pip install 'kerasseg[export]'"
            ) from error
        try:
            self._interpreter = Interpreter(model_path=os.fspath(path), num_threads=num_threads)
            signatures = self._interpreter.get_signature_list()
            if signatures:  # named tensors; exporters write one signature
                runner = self._interpreter.get_signature_runner(next(iter(signatures)))
                inputs = runner.get_input_details()
                outputs = runner.get_output_details()
            else:
                inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
                outputs = {d["name"]: d for d in self._interpreter.get_output_details()}
        except (ValueError, RuntimeError) as error:
            raise load_error(path, "LiteRT", error) from error
        self._input_details, self._output_details = inputs, outputs
        self._allocated = False
        self.inputs = [self._info(name, d) for name, d in inputs.items()]
        self.outputs = [self._info(name, d) for name, d in outputs.items()]

    @staticmethod
    def _info(name, detail):
        scale, zero_point = detail["quantization"]
        quantization = (float(scale), int(zero_point)) if scale else None
        shape = tuple(None if s < 0 else int(s) for s in detail["shape_signature"])
        return TensorInfo(name, shape, np.dtype(detail["dtype"]), quantization)

    def run(self, feed):
        if not self._allocated:
            # Once, on first use (the signature runner would re-allocate on every call).
            try:
                self._interpreter.allocate_tensors()
            except RuntimeError as error:
                raise RuntimeError(
                    f"LiteRT cannot prepare this model: {error}. A model exported with "
                    "allow_flex_ops=True needs an interpreter linked with the Flex delegate."
                ) from error
            self._allocated = True
        for name, value in feed.items():
            self._interpreter.set_tensor(self._input_details[name]["index"], value)
        self._interpreter.invoke()
        return {
            name: self._interpreter.get_tensor(d["index"])
            for name, d in self._output_details.items()
        }


_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


class ONNXBackend:
    """An `.onnx` file run by ONNX Runtime on the CPU (or `providers`)."""

    format = "onnx"

    def __init__(self, path, num_threads=None, providers=None):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(
                "Running .onnx files needs ONNX Runtime: pip install 'onnxruntime>=1.18,<2'"
            ) from error
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                os.fspath(path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise load_error(path, "ONNX", error) from error
        self.inputs = [self._info(t) for t in self._session.get_inputs()]
        self.outputs = [self._info(t) for t in self._session.get_outputs()]

    @staticmethod
    def _info(tensor):
        shape = tuple(s if isinstance(s, int) else None for s in tensor.shape)
        return TensorInfo(tensor.name, shape, np.dtype(_ONNX_DTYPES.get(tensor.type, np.float32)))

    def run(self, feed):
        names = [t.name for t in self.outputs]
        return dict(zip(names, self._session.run(names, feed)))


BACKENDS = {
    ".tflite": LiteRTBackend,
    ".onnx": ONNXBackend,
    ".engine": TensorRTBackend,
    ".plan": TensorRTBackend,
}
