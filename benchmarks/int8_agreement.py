"""int8 argmax agreement with Keras, TFLite and ONNX Q/DQ, as a function of training.

An int8 export flips the pixels whose top-2 logits are closer than its
8-bit noise, so agreement measures the exporter only on a trained model.
This script takes the tiny configurations of the parity tests
(`tests/export/trained.py`), either trains them for `--steps` with the tests'
recipe or loads the checked-in test weights (`--checked-in`), converts them
to full-integer TFLite (uint8 I/O) and to the Q/DQ ONNX that TensorRT builds
INT8 engines from (both calibrated on 32 training scenes, without the
exporters' agreement guarantee, `min_agreement=None`: this measures what
plain int8 gives; `benchmarks/export.py` reports the guaranteed exports),
and prints, on
unseen 64x64 scenes: Keras pixel accuracy, the share of pixels whose top-2
logit margin is below 0.5, and each export's argmax agreement with Keras.

    python benchmarks/int8_agreement.py --checked-in
    python benchmarks/int8_agreement.py --steps 600 --archs segnet unet
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.export import trained  # noqa: E402

NEAR_TIE = 0.5


def int8_labels(model, calibration, images, directory):
    """{"tflite": labels, "onnx": labels} of the two int8 exports on `images`."""
    import numpy as np

    from kerasseg.export import to_onnx, to_tflite
    from kerasseg.runtime import Segmenter

    key = "semantic" if isinstance(model.output, dict) else "logits"
    exports = {
        "tflite": to_tflite(model, os.path.join(directory, "int8.tflite"),
                            precision="int8", calibration_data=calibration,
                            io_dtype="uint8", min_agreement=None),
        "onnx": to_onnx(model, os.path.join(directory, "int8.onnx"), precision="int8",
                        calibration_data=calibration, min_agreement=None),
    }
    labels = {}
    for name, path in exports.items():
        segmenter = Segmenter.load(path)
        dtype = segmenter.input.dtype
        labels[name] = np.concatenate([segmenter.run(image[None].astype(dtype))[key]
                                       for image in images]).argmax(-1)
    return labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(trained.BUILDERS),
                        choices=list(trained.BUILDERS))
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--steps", type=int, default=600)
    which.add_argument("--checked-in", action="store_true",
                       help="load the parity tests' trained weights instead of training")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import numpy as np

    images, masks = trained.scenes(0, trained.TRAIN_SCENES)
    test_images, test_masks = trained.scenes(trained.TEST_SEED, trained.TEST_SCENES)
    source = "checked-in weights" if args.checked_in else f"{args.steps} steps, seed {args.seed}"
    print(f"{source}, {trained.SIZE}x{trained.SIZE}, {trained.TEST_SCENES} unseen scenes")
    print(f"{'builder':<15}{'train s':>9}{'accuracy':>10}{'near-tied':>11}"
          f"{'TFLite int8':>13}{'ONNX int8':>11}")
    for name in args.archs:
        start = time.perf_counter()
        if args.checked_in:
            model = trained.load(name)
        else:
            model = trained.train(name, args.steps, args.seed, images, masks)
        seconds = time.perf_counter() - start
        logits = model.predict(test_images, verbose=0)
        logits = logits["semantic"] if isinstance(logits, dict) else logits
        top2 = np.sort(logits, -1)[..., -2:]
        with tempfile.TemporaryDirectory() as directory:
            labels = int8_labels(model, images[:trained.CALIBRATION_SCENES], test_images, directory)
        reference = logits.argmax(-1)
        print(f"{name:<15}{seconds:>9.0f}{np.mean(reference == test_masks):>10.3f}"
              f"{np.mean(top2[..., 1] - top2[..., 0] < NEAR_TIE):>11.3f}"
              f"{np.mean(labels['tflite'] == reference):>13.4f}"
              f"{np.mean(labels['onnx'] == reference):>11.4f}", flush=True)


if __name__ == "__main__":
    main()
