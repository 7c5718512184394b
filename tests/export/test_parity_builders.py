"""Every builder, exported four ways, against its own Keras output.

Each model is trained for a few steps on synthetic scenes, its batch-norm
statistics re-estimated (so its logits carry meaning and int8 calibration has
a real range), then converted once per module and checked through
`kerasseg.runtime` (TFLite, ONNX) or `tf.saved_model.load` (SavedModel):

- float TFLite (builtin ops only), ONNX, SavedModel: max |logit difference|
  <= FLOAT_TOLERANCE * max(1, max |Keras logit|), argmax agreement >= 99.9 %;
- full-integer int8 TFLite (uint8 in/out): argmax agreement >= 98 %.
"""

import importlib

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.data.synthetic import NUM_CLASSES, make_scene
from kerasseg.export import to_onnx, to_saved_model, to_tflite
from kerasseg.runtime import Segmenter
from kerasseg.train import recompute_batch_norm

# Six architectures trained briefly and converted four ways: minutes of CPU.
pytestmark = pytest.mark.slow

SIZE = 64
FLOAT_TOLERANCE = 1e-4  # relative to the largest |logit|
FLOAT_AGREEMENT = 0.999
INT8_AGREEMENT = 0.98
TRAIN_STEPS = 12
# An int8 agreement check means something only if the reference draws several classes.
MIN_PREDICTED_CLASSES = 3
# Measured shortfalls, kept visible until fixed (issue 6 stays open for them):
# agreement over 3 seeds with the batch-norm statistics settled (before that,
# the BN models predicted one class everywhere and "passed" trivially). The
# causes, from per-tensor float/int8 comparisons: after 12 steps 10-25 % of
# pixels have a top-2 logit margin below 0.5, while 8-bit activations leave a
# relative logit error of 2-4 % (U-Net, FCN-8s) to 11 % (SegNet) plus the
# rounding of the uint8 logits themselves. Not strict: near-tie counts vary.
_NEAR_TIES = "of a briefly trained model's pixels have near-tied logits that int8 noise flips"
INT8_KNOWN_FAILURES = {
    "segnet": "79-86%: int8 rounding ties 3-5% of the 2x2 pooling windows at each level, so "
              "the argmax indices (and the unpooled positions) differ from float; 11% "
              "relative logit error even with float encoder convs only 97%",
    "unet": "88-99% (seed-dependent): many " + _NEAR_TIES
            + " (no batch norm: 12 steps barely train it)",
    "fcn8s": "95-97%: many " + _NEAR_TIES + "; MobileNetV2 blocks reach 20% relative error",
    "pspnet": "88-96%: many " + _NEAR_TIES,
    "deeplabv3plus": "85-86%: many " + _NEAR_TIES,
    "lpsnet": "84%: many " + _NEAR_TIES,
}
MOBILENET = {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35}}

# name -> (module, builder, tiny config)
BUILDERS = {
    "fcn8s": ("kerasseg.models.fcn", "fcn8s", {"backbone": "mobilenetv2", "dropout": 0.0}),
    "segnet": ("kerasseg.models.segnet", "segnet", {"base_filters": 8}),
    "unet": ("kerasseg.models.unet", "unet", {"base_filters": 8, "depth": 3, "dropout": 0.0}),
    "pspnet": ("kerasseg.models.pspnet", "pspnet", {
        **MOBILENET, "ppm_filters": 8, "head_filters": 16, "dropout": 0.0}),
    "deeplabv3plus": ("kerasseg.models.deeplab", "deeplabv3plus", {
        **MOBILENET, "aspp_filters": 16, "low_level_filters": 8, "decoder_filters": 16,
        "dropout": 0.0}),
    "lpsnet": ("kerasseg.models.lpsnet", "lpsnet", {
        **MOBILENET, "fpn_filters": 16, "semantic_filters": 8, "head_convs": 1,
        "thing_classes": (4, 5, 6)}),
}


def _scenes(first_seed, count):
    scenes = [make_scene(first_seed + i, SIZE, SIZE) for i in range(count)]
    return (np.stack([s["image"] for s in scenes]),
            np.stack([s["semantic"] for s in scenes]).astype("int32"))


def _semantic(outputs):
    """The semantic logits of a model's outputs (LPSNet returns a dict)."""
    return outputs["semantic"] if isinstance(outputs, dict) else outputs


class Case:
    def __init__(self, name, tmp_path):
        module_name, builder_name, config = BUILDERS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            pytest.skip(f"{module_name} does not exist yet")
        import keras

        self.name, self.dir = name, tmp_path
        self.model = getattr(module, builder_name)(
            NUM_CLASSES, input_shape=(SIZE, SIZE, 3), **config
        )
        images, masks = _scenes(0, 8)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        multi = isinstance(self.model.output, dict)
        self.model.compile(
            keras.optimizers.Adam(3e-3),
            loss={"semantic": loss} if multi else loss,
        )
        targets = {"semantic": masks} if multi else masks
        if multi:  # train the semantic head only; the box head keeps its init
            for key in self.model.output:
                if key != "semantic":
                    targets[key] = np.zeros([8, *self.model.output[key].shape[1:]], "float32")
            self.model.compile(keras.optimizers.Adam(3e-3),
                               loss={k: (loss if k == "semantic" else None)
                                     for k in self.model.output})
        self.model.fit(images.astype("float32"), targets, batch_size=4,
                       epochs=TRAIN_STEPS // 2, verbose=0)
        # 12 steps leave the moving statistics near their initial (0, 1): the
        # inference-mode model would predict one class everywhere, and an
        # agreement check on it could not fail. Re-estimate them from the images.
        recompute_batch_norm(self.model, images.astype("float32"), batch_size=len(images))
        self.calibration = images
        self.images, _ = _scenes(1000, 2)
        self.reference = self.model.predict(self.images.astype("float32"), verbose=0)


@pytest.fixture(scope="module", params=list(BUILDERS))
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
    outputs = {k: v.numpy() for k, v in serve(images=tf.constant(case.images)).items()}
    _compare_all(case, outputs)


def test_tflite_int8(case, request):
    if case.name in INT8_KNOWN_FAILURES:
        request.applymarker(pytest.mark.xfail(strict=False, reason=INT8_KNOWN_FAILURES[case.name]))
    path = to_tflite(case.model, case.dir / "int8.tflite", quantization="int8",
                     representative_data=case.calibration, io_dtype="uint8")
    segmenter = Segmenter.load(path, num_threads=2)
    assert segmenter.input.dtype == np.uint8
    if isinstance(case.reference, dict):
        outputs = _runtime_outputs(segmenter, case.images)
        # argmax is unchanged by the affine dequantisation of the uint8 logits
        labels = np.argmax(outputs["semantic"], -1)
    else:
        labels = segmenter.predict(case.images)
    reference = _semantic(case.reference)
    predicted = np.unique(np.argmax(reference, -1)).size
    assert predicted >= MIN_PREDICTED_CLASSES, (
        f"the Keras model predicts only {predicted} classes: agreement would not test int8")
    _check_agreement(reference, labels, INT8_AGREEMENT)
