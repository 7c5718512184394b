"""Why SegNet loses argmax agreement at int8, and what index dropout does to it.

SegNet's decoder puts each value back where the encoder's 2x2 max came
from. An 8-bit activation grid moves the maximum of any window whose top
two values are closer than a quantization step, so the decoder receives its
values one pixel away. This script separates that effect from the ordinary
noise on the values, on SegNets trained with the parity tests' recipe
(`tests/export/trained.py`) at several `index_dropout` rates (the share of
pooling indices replaced by a random window position in training), or on
the parity tests' checked-in SegNet (`--checked-in`):

- every ReLU output of the Keras model is rounded to an n-bit grid over its
  calibrated range [0, max] (TFLite's asymmetric activation quantization,
  weights left in float), which reproduces the real int8 exports' loss;
- the same run is repeated with the pooling indices of the float model
  ("float indices"), and the float model with the indices of the rounded
  run ("rounded indices").

For each model it prints the Keras accuracy, the accuracy when every pooling
index is random (how much the decoder relies on the indices), then per
activation width the argmax agreement with the float model of each run and
the share of pooling indices that move, and, as the yardstick, the agreement
of the real int8 exports (full-integer TFLite and the Q/DQ ONNX of the
TensorRT route).

    python benchmarks/segnet_int8_indices.py                      # rates 0 and 0.5, ~16 min
    python benchmarks/segnet_int8_indices.py --checked-in         # ~40 s
    python benchmarks/segnet_int8_indices.py --rates 0 0.25 0.5 --seed 2
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from int8_agreement import int8_labels  # noqa: E402

from kerasseg.layers import MaxPoolingWithArgmax2D  # noqa: E402
from tests.export import trained  # noqa: E402


class RoundedReLU(keras.layers.Layer):
    """ReLU whose output is rounded to `bits` bits over [0, top]."""

    def __init__(self, top, bits, **kwargs):
        super().__init__(**kwargs)
        self.step = top / (2**bits - 1)
        self.top = top

    def call(self, x):
        x = tf.clip_by_value(x, 0.0, self.top)
        return tf.round(x / self.step) * self.step


class IndexBook:
    """Pooling indices by layer name, and whether probes record or replay them."""

    def __init__(self):
        self.mode, self.indices = "record", {}


class IndexProbe(MaxPoolingWithArgmax2D):
    """Pooling that records its indices in `book`, or replays recorded ones."""

    def __init__(self, book, **kwargs):
        super().__init__(**kwargs)
        self.book = book

    def call(self, inputs):
        pooled, indices = super().call(inputs)
        if self.book.mode == "record":
            self.book.indices[self.name] = indices
        else:
            indices = self.book.indices[self.name]
        return [pooled, indices]


def variant(model, book, relu_ranges=None, bits=8):
    """A copy of `model` with probed pooling and, given `relu_ranges`, rounded ReLUs."""
    def clone(layer):
        if isinstance(layer, MaxPoolingWithArgmax2D):
            return IndexProbe(book, name=layer.name)
        if relu_ranges and isinstance(layer, keras.layers.ReLU):
            return RoundedReLU(relu_ranges[layer.name], bits, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def labels_of(model, images, book, replay=None):
    """`model`'s labels; with `replay`, its pooling uses those indices instead of its own."""
    book.mode = "record" if replay is None else "replay"
    book.indices = {} if replay is None else dict(replay)
    labels = np.argmax(model(images), -1)
    return labels, dict(book.indices)


def random_index_accuracy(model, images, masks, book, recorded):
    """Pixel accuracy when every pooling index is drawn at random (shaped like `recorded`)."""
    rng = np.random.default_rng(0)
    drawn = {name: tf.constant(rng.integers(0, 4, indices.shape), tf.int32)
             for name, indices in recorded.items()}
    return np.mean(labels_of(model, images, book, drawn)[0] == masks)


def report(title, model, calibration, images, masks):
    reference = model.predict(images, verbose=0).argmax(-1)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    outputs = keras.Model(model.input, [r.output for r in relus]).predict(calibration, verbose=0)
    relu_ranges = {r.name: float(o.max()) for r, o in zip(relus, outputs)}
    pools = [layer.name for layer in model.layers if isinstance(layer, MaxPoolingWithArgmax2D)]

    float_book, rounded_book = IndexBook(), IndexBook()
    floating = variant(model, float_book)
    _, float_indices = labels_of(floating, images, float_book)
    random_accuracy = random_index_accuracy(floating, images, masks, float_book, float_indices)
    print(f"\n{title}: accuracy {np.mean(reference == masks):.3f}, with random pooling "
          f"indices {random_accuracy:.3f}")
    header = f"{'activations':<14}{'own indices':>13}{'float indices':>15}{'rounded indices':>17}"
    print(header + "".join(f"{name.split('_')[0] + ' moved':>14}" for name in pools))
    for bits in (8, 10, 12):
        rounded = variant(model, rounded_book, relu_ranges, bits)
        own, rounded_indices = labels_of(rounded, images, rounded_book)
        moved = [np.mean(rounded_indices[p].numpy() != float_indices[p].numpy()) for p in pools]
        with_float_indices, _ = labels_of(rounded, images, rounded_book, float_indices)
        with_rounded_indices, _ = labels_of(floating, images, float_book, rounded_indices)
        print(f"{f'{bits}-bit':<14}{np.mean(own == reference):>13.4f}"
              f"{np.mean(with_float_indices == reference):>15.4f}"
              f"{np.mean(with_rounded_indices == reference):>17.4f}"
              + "".join(f"{share:>14.4f}" for share in moved))
    with tempfile.TemporaryDirectory() as directory:
        exported = int8_labels(model, calibration, images, directory)
    print("real int8 exports: " + ", ".join(
        f"{name} {np.mean(labels == reference):.4f}" for name, labels in exported.items()),
        flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.5],
                       help="index_dropout rates to train SegNet with")
    which.add_argument("--checked-in", action="store_true",
                       help="the parity tests' trained SegNet instead of training")
    parser.add_argument("--steps", type=int, default=trained.STEPS["segnet"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    calibration, _ = trained.scenes(0, trained.CALIBRATION_SCENES)
    images, masks = trained.scenes(trained.TEST_SEED, trained.TEST_SCENES)
    print(f"SegNet, {trained.TEST_SCENES} unseen {trained.SIZE}x{trained.SIZE} scenes: "
          "argmax agreement with the float model")
    if args.checked_in:
        config = trained.BUILDERS["segnet"][2]
        report(f"checked-in test weights {config}", trained.load("segnet"),
               calibration, images, masks)
        return
    for rate in args.rates:
        model = trained.train("segnet", args.steps, args.seed, index_dropout=rate)
        report(f"index_dropout {rate}, {args.steps} steps, seed {args.seed}", model,
               calibration, images, masks)


if __name__ == "__main__":
    main()
