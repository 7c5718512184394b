"""Exporters: SavedModel (TF Serving), TFLite / LiteRT, ONNX and TensorRT.

Every exporter writes a metadata sidecar (`<file>.json`: labels, palette,
input size and layout, normalisation, output kind, quantisation) that
`kerasseg.runtime.Segmenter` and the target kits in `export/` read. Every
exporter takes the same names: `precision` ("fp32", "fp16", "int8"; TFLite
also "dynamic"), `calibration_data`, `validation_data`, `min_agreement`,
`max_metric_loss`. int8 exports are held to the Keras model's accuracy in the
task metric (labelled validation images) or label agreement, and report
their int8 coverage (`kerasseg.export.int8`).

Example:
    >>> from kerasseg.export import to_tflite, to_onnx
    >>> to_tflite(model, "model.tflite", image_size=(256, 256), precision="fp16")
    >>> to_onnx(model, "model.onnx", image_size=(512, 512), nchw=True)
"""

from kerasseg.export.common import strip_crf
from kerasseg.export.int8 import Int8AgreementError
from kerasseg.export.onnx import to_onnx
from kerasseg.export.saved_model import to_saved_model
from kerasseg.export.tensorrt import TensorRTUnavailableError, to_tensorrt, trtexec_command
from kerasseg.export.tflite import UnsupportedOpsError, to_tflite

__all__ = [
    "Int8AgreementError",
    "TensorRTUnavailableError",
    "UnsupportedOpsError",
    "strip_crf",
    "to_onnx",
    "to_saved_model",
    "to_tensorrt",
    "to_tflite",
    "trtexec_command",
]
