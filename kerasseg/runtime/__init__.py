"""Runs exported kerasseg models with LiteRT, ONNX Runtime or TensorRT.

Importing this package imports neither TensorFlow nor Keras, so it runs on
devices that have only `ai-edge-litert` or `onnxruntime` (and numpy, OpenCV).
It holds what runs next to an exported model: `Segmenter` (one file plus the
Keras path's pre- and post-processing), the sliding-window / multi-scale /
flip inference shared with the Keras path (`kerasseg.runtime.inference`), and
portrait mode's compositing (`kerasseg.runtime.compositing`).

Example:
    >>> from kerasseg.runtime import Segmenter, blur_background
    >>> segmenter = Segmenter.load("model.tflite", num_threads=2)
    >>> labels = segmenter.predict(image, tile_size=(256, 256))
"""

from kerasseg.runtime.compositing import (
    MaskSmoother,
    blur_background,
    feather_mask,
    replace_background,
)
from kerasseg.runtime.image import colorize, resize_bilinear, resize_nearest, softmax
from kerasseg.runtime.metadata import read_metadata, sidecar_path, write_metadata
from kerasseg.runtime.segmenter import Segmenter
from kerasseg.runtime.tensors import ModelLoadError, TensorInfo

load = Segmenter.load

__all__ = [
    "MaskSmoother",
    "ModelLoadError",
    "Segmenter",
    "TensorInfo",
    "blur_background",
    "colorize",
    "feather_mask",
    "load",
    "read_metadata",
    "replace_background",
    "resize_bilinear",
    "resize_nearest",
    "sidecar_path",
    "softmax",
    "write_metadata",
]
