"""Every builder, exported five ways, against its own Keras output.

Each builder's tiny configuration gets weights trained on the synthetic street
scenes (`tests/export/trained.py` says how, and why they are checked in), is
converted once per module, and is checked on held-out scenes through
`kerasseg.runtime` (TFLite, ONNX) or `tf.saved_model.load` (SavedModel):

- float TFLite (builtin ops only), ONNX, SavedModel: max |logit difference|
  <= FLOAT_TOLERANCE * max(1, max |Keras logit|), argmax agreement >= 99.9 %;
- int8, calibrated on training scenes: full-integer TFLite (uint8 in/out) and
  the Q/DQ ONNX that TensorRT builds INT8 engines from, argmax agreement >= 98 %.
"""

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.export import to_onnx, to_saved_model, to_tflite
from kerasseg.runtime import Segmenter
from tests.export import trained

# Six architectures converted five ways: a few minutes of CPU.
pytestmark = pytest.mark.slow

FLOAT_TOLERANCE = 1e-4  # relative to the largest |logit|
FLOAT_AGREEMENT = 0.999
INT8_AGREEMENT = 0.98
# An int8 agreement check means something only if the reference draws several classes.
MIN_PREDICTED_CLASSES = 3
# Measured shortfalls, kept visible until fixed (issue 6). SegNet's argmax
# unpooling is discontinuous: 8-bit activations move the maximum of near-tied
# 2x2 windows (3.9 % of the first pooling's indices), and the decoder then gets
# those values one pixel away. That accounts for all of the loss: the float
# model fed the 8-bit run's indices agrees 97.0 %, the 8-bit run fed the float
# indices 99.75 % (benchmarks/segnet_int8_indices.py). Measured with the Q/DQ
# ONNX, which pools in float: encoder blocks 1-2 in float 98.8 %, the whole
# encoder in float 99.5 %, the whole decoder in float 97.2 %.
_SEGNET = "96.8 % (TFLite), 97.1 % (Q/DQ ONNX): 8-bit activations move the unpooling indices"
INT8_KNOWN_FAILURES = {("segnet", "tflite"): _SEGNET, ("segnet", "onnx"): _SEGNET}


def _semantic(outputs):
    """The semantic logits of a model's outputs (LPSNet returns a dict)."""
    return outputs["semantic"] if isinstance(outputs, dict) else outputs


class Case:
    def __init__(self, name, tmp_path):
        self.name, self.dir = name, tmp_path
        self.model = trained.load(name)
        self.calibration, _ = trained.scenes(0, trained.CALIBRATION_SCENES)  # training scenes
        self.images, _ = trained.scenes(trained.TEST_SEED, trained.TEST_SCENES)
        self.reference = self.model.predict(self.images, verbose=0)


@pytest.fixture(scope="module", params=list(trained.BUILDERS))
def case(request, tmp_path_factory):
    return Case(request.param, tmp_path_factory.mktemp(request.param))


def _check_float(name, reference, exported, tolerance=FLOAT_TOLERANCE):
    scale = max(1.0, float(np.abs(reference).max()))
    error = float(np.abs(exported - reference).max())
    assert error <= tolerance * scale, f"{name}: max |diff| {error:.3g} (scale {scale:.3g})"


def _check_agreement(reference, labels, minimum):
    agreement = float(np.mean(np.argmax(reference, -1) == labels))
    assert agreement >= minimum, f"argmax agreement {agreement:.4f} < {minimum}"


def _runtime_outputs(segmenter, images):
    """Per-image raw outputs from the runtime, stacked: {name: (N, ...)}."""
    runs = [segmenter.run(image[None].astype(segmenter.input.dtype)) for image in images]
    return {name: np.concatenate([r[name] for r in runs]) for name in runs[0]}


def _compare_all(case, outputs):
    references = case.reference if isinstance(case.reference, dict) else {
        "logits": case.reference}
    for name, reference in references.items():
        _check_float(f"{case.name}/{name}", reference, outputs[name])
    semantic = _semantic(references) if len(references) > 1 else references["logits"]
    key = "semantic" if len(references) > 1 else "logits"
    _check_agreement(semantic, np.argmax(outputs[key], -1), FLOAT_AGREEMENT)


def test_tflite_float_builtins_only(case):
    path = to_tflite(case.model, case.dir / "float.tflite")  # builtins only by default
    _compare_all(case, _runtime_outputs(Segmenter.load(path, num_threads=2), case.images))


def test_onnx(case):
    path = to_onnx(case.model, case.dir / "model.onnx")
    _compare_all(case, _runtime_outputs(Segmenter.load(path, num_threads=2), case.images))


def test_saved_model(case):
    path = to_saved_model(case.model, case.dir / "saved_model")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    images = tf.constant(case.images.astype("uint8"))
    outputs = {k: v.numpy() for k, v in serve(images=images).items()}
    _compare_all(case, outputs)


def _check_int8(case, request, export, labels):
    if (case.name, export) in INT8_KNOWN_FAILURES:
        request.applymarker(pytest.mark.xfail(
            strict=False, reason=INT8_KNOWN_FAILURES[case.name, export]))
    reference = _semantic(case.reference)
    predicted = np.unique(np.argmax(reference, -1)).size
    assert predicted >= MIN_PREDICTED_CLASSES, (
        f"the Keras model predicts only {predicted} classes: agreement would not test int8")
    _check_agreement(reference, labels, INT8_AGREEMENT)


def test_tflite_int8(case, request):
    path = to_tflite(case.model, case.dir / "int8.tflite", quantization="int8",
                     representative_data=case.calibration, io_dtype="uint8")
    segmenter = Segmenter.load(path, num_threads=2)
    assert segmenter.input.dtype == np.uint8
    if isinstance(case.reference, dict):
        # argmax is unchanged by the affine dequantisation of the uint8 logits
        labels = np.argmax(_runtime_outputs(segmenter, case.images)["semantic"], -1)
    else:
        labels = segmenter.predict(case.images.astype("uint8"))
    _check_int8(case, request, "tflite", labels)


def test_onnx_int8(case, request):
    path = to_onnx(case.model, case.dir / "int8.onnx", precision="int8",
                   calibration_data=case.calibration)
    outputs = _runtime_outputs(Segmenter.load(path, num_threads=2), case.images)
    key = "semantic" if isinstance(case.reference, dict) else "logits"
    _check_int8(case, request, "onnx", np.argmax(outputs[key], -1))
