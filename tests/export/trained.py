"""Trained tiny models of every builder, for the export parity tests.

An int8 agreement check means something only for a trained model: a briefly
trained one leaves 10-25 % of its pixels with near-tied logits that any 8-bit
noise flips. Training each builder far enough (3000-6000 steps on the
synthetic street scenes) costs 2-8 CPU minutes per builder, more than CI can
spend six times over. So the weights are trained once by this module and
checked in (`tests/export/trained/<builder>.npz`, float16, 0.2-1.3 MB each,
6 MB in all); the tests only build the models and load them. Regenerate them
when a builder's layers change (loading then fails and says so):

    python -m tests.export.trained

The recipe (`train`, also used by `benchmarks/int8_agreement.py --steps N`):
Adam with cosine decay from 3e-3, batch 8, batch-norm momentum 0.9, 1024
scenes of `kerasseg.data.synthetic.make_scene` at 64x64, for STEPS steps
(SegNet, which learns slowest, twice as many); LPSNet trains its semantic
head.
"""

import argparse
import importlib
import os
from pathlib import Path

import numpy as np

from kerasseg.data.synthetic import NUM_CLASSES, make_scene

SIZE = 64
WEIGHTS_DIR = Path(__file__).resolve().parent / "trained"
TRAIN_SCENES = 1024
# Held-out scenes for the tests start here, far from the training seeds.
TEST_SEED = 100_000
# The int8 checks (parity tests and benchmarks alike) calibrate on the first
# CALIBRATION_SCENES training scenes and compare on TEST_SCENES held-out ones.
CALIBRATION_SCENES = 32
TEST_SCENES = 32
MOBILENET = {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35}}
STEPS = {"fcn8s": 3000, "segnet": 6000, "unet": 3000, "pspnet": 3000, "deeplabv3": 3000,
         "deeplabv3plus": 3000, "lraspp": 3000, "lpsnet": 3000}

# name -> (module, builder, tiny config)
BUILDERS = {
    "fcn8s": ("kerasseg.models.fcn", "fcn8s", {**MOBILENET, "dropout": 0.0}),
    # SegNet as one trains it for int8 (see `segnet`'s `index_dropout`): without
    # it, the pooling indices that 8-bit activations move (4 % of the first
    # pooling's) leave int8 agreeing on 96.7 % (benchmarks/segnet_int8_indices.py).
    "segnet": ("kerasseg.models.segnet", "segnet", {"base_filters": 8, "index_dropout": 0.5}),
    "unet": ("kerasseg.models.unet", "unet", {"base_filters": 8, "depth": 3, "dropout": 0.0}),
    "pspnet": ("kerasseg.models.pspnet", "pspnet", {
        **MOBILENET, "ppm_filters": 8, "head_filters": 16, "dropout": 0.0}),
    # The reference MobileNetV2 DeepLabv3 (no atrous branches), at stride 8 for 64x64 scenes.
    "deeplabv3": ("kerasseg.models.deeplab", "deeplabv3", {
        **MOBILENET, "aspp_filters": 16, "output_stride": 8, "dropout": 0.0}),
    "deeplabv3plus": ("kerasseg.models.deeplab", "deeplabv3plus", {
        **MOBILENET, "aspp_filters": 16, "low_level_filters": 8, "decoder_filters": 16,
        "dropout": 0.0}),
    # MobileNetV3 with hard-swish, which int8 TFLite keeps in float.
    "lraspp": ("kerasseg.models.lraspp", "lraspp", {
        "backbone": "mobilenetv3small", "backbone_kwargs": {"alpha": 0.35}, "head_filters": 16}),
    "lpsnet": ("kerasseg.models.lpsnet", "lpsnet", {
        **MOBILENET, "fpn_filters": 16, "semantic_filters": 8, "head_convs": 1,
        "thing_classes": (4, 5, 6)}),
}


def scenes(first_seed, count):
    """(images float32 (N, 64, 64, 3) raw pixels, semantic int32 (N, 64, 64))."""
    drawn = [make_scene(first_seed + i, SIZE, SIZE) for i in range(count)]
    return (np.stack([s["image"] for s in drawn]).astype("float32"),
            np.stack([s["semantic"] for s in drawn]).astype("int32"))


def build(name, **overrides):
    """The builder's tiny model; `overrides` replace entries of its config."""
    module, builder, config = BUILDERS[name]
    return getattr(importlib.import_module(module), builder)(
        NUM_CLASSES, input_shape=(SIZE, SIZE, 3), **{**config, **overrides})


def train(name, steps, seed=1, images=None, masks=None, **overrides):
    """A tiny `name` model trained `steps` steps with the recipe above."""
    import keras
    import tensorflow as tf

    from kerasseg.train import batch_norm_layers

    keras.utils.set_random_seed(seed)
    if images is None:
        images, masks = scenes(0, TRAIN_SCENES)
    model = build(name, **overrides)
    for layer in batch_norm_layers(model):
        layer.momentum = 0.9  # a short run: the moving statistics must follow
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps))
    targets = masks
    if isinstance(model.output, dict):  # LPSNet: the semantic head only
        model.compile(optimizer, loss={k: loss if k == "semantic" else None
                                       for k in model.output})
        targets = {k: masks if k == "semantic" else
                   np.zeros([len(masks), *model.output[k].shape[1:]], "float32")
                   for k in model.output}
    else:
        model.compile(optimizer, loss=loss)
    data = tf.data.Dataset.from_tensor_slices((images, targets))
    model.fit(data.repeat().shuffle(len(images), seed=seed).batch(8),
              steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return model


def save(model, path):
    """float16 halves the files; the rounding is harmless, since the tests take
    their reference from the model as loaded."""
    weights = model.get_weights()
    np.savez_compressed(path, *[w.astype(np.float16) for w in weights])


def load(name):
    """The builder's tiny model with its checked-in trained weights."""
    path = WEIGHTS_DIR / f"{name}.npz"
    model = build(name)
    with np.load(path) as stored:
        weights = [stored[f"arr_{i}"].astype(np.float32) for i in range(len(stored.files))]
    expected = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise AssertionError(
            f"{path} no longer matches the {name} builder's weights; regenerate it with "
            f"`python -m tests.export.trained --builders {name}`")
    model.set_weights(weights)
    return model


def main():
    parser = argparse.ArgumentParser(description="Train and save the tiny test models.")
    parser.add_argument("--steps", type=int, help="training steps (default: STEPS)")
    parser.add_argument("--builders", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    WEIGHTS_DIR.mkdir(exist_ok=True)
    images, masks = scenes(0, TRAIN_SCENES)
    for name in args.builders:
        steps = args.steps or STEPS[name]
        save(train(name, steps, images=images, masks=masks), WEIGHTS_DIR / f"{name}.npz")
        print(f"{name}: {WEIGHTS_DIR / name}.npz", flush=True)


if __name__ == "__main__":
    main()
