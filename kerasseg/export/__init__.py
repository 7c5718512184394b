"""Exporters: SavedModel (TF Serving), TFLite / LiteRT, ONNX and TensorRT.

Every exporter writes a metadata sidecar (`<file>.json`: labels, palette,
input size and layout, normalisation, output kind, quantisation) that
`kerasseg.runtime.Segmenter` and the target kits in `export/` read. Every
exporter takes the same names: `precision` ("fp32", "fp16", "int8"; TFLite
also "dynamic"), `calibration_data`, `validation_data`, `min_agreement`,
`max_metric_loss`. int8 exports are held to the Keras model's accuracy in the
task metric (labelled validation images) or label agreement, and report
their int8 coverage (`kerasseg.export.int8`). The formats, one record each
(converter, file endings, precisions, command-line options), are
`kerasseg.export.formats.EXPORT_FORMATS`.

Example:
    >>> from kerasseg.export import to_tflite, to_onnx
    >>> to_tflite(model, "model.tflite", image_size=(256, 256), precision="fp16")
    >>> to_onnx(model, "model.onnx", image_size=(512, 512), nchw=True)
"""

from kerasseg.utils import lazy_attributes

# Public name -> module that defines it. `import kerasseg.export` (and its
# `formats` table, which the CLI reads to build its options) loads no
# TensorFlow; a converter loads it on first use.
_LAZY_ATTRIBUTES = {
    "ExportFormat": "kerasseg.export.formats",
    "EXPORT_FORMATS": "kerasseg.export.formats",
    "ExporterUnavailableError": "kerasseg.export.formats",
    "Int8AgreementError": "kerasseg.export.int8",
    "TensorRTUnavailableError": "kerasseg.export.tensorrt",
    "UnsupportedOpsError": "kerasseg.export.tflite",
    "strip_crf": "kerasseg.export.common",
    "to_onnx": "kerasseg.export.onnx",
    "to_saved_model": "kerasseg.export.saved_model",
    "to_tensorrt": "kerasseg.export.tensorrt",
    "to_tflite": "kerasseg.export.tflite",
    "trtexec_command": "kerasseg.export.tensorrt",
}
_SUBMODULES = ("auto", "common", "formats", "int8", "onnx", "saved_model", "tensorrt", "tflite")
__all__ = sorted(_LAZY_ATTRIBUTES)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_ATTRIBUTES, _SUBMODULES)
