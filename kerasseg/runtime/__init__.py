"""Runs exported kerasseg models with LiteRT, ONNX Runtime or TensorRT.

Importing this package imports neither TensorFlow nor Keras, so it runs on
devices that have only `ai-edge-litert` or `onnxruntime` (and numpy).

Example:
    >>> from kerasseg.runtime import Segmenter
    >>> segmenter = Segmenter.load("model.tflite", num_threads=2)
    >>> labels = segmenter.predict(image)
"""

from kerasseg.runtime.backends import ModelLoadError, TensorInfo
from kerasseg.runtime.image import colorize, resize_bilinear, resize_nearest, softmax
from kerasseg.runtime.metadata import read_metadata, sidecar_path, write_metadata
from kerasseg.runtime.segmenter import Segmenter

load = Segmenter.load

__all__ = [
    "ModelLoadError",
    "Segmenter",
    "TensorInfo",
    "colorize",
    "load",
    "read_metadata",
    "resize_bilinear",
    "resize_nearest",
    "sidecar_path",
    "softmax",
    "write_metadata",
]
