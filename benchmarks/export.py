"""Exported size and LiteRT latency of every architecture, against Keras in the same run.

For each architecture, input size and quantisation (fp32 / fp16 / int8), the
model is converted with `kerasseg.export.to_tflite` (builtin ops only), timed
with the LiteRT interpreter at 1 and 2 threads (median of `--runs` invokes
after one warm-up) and compared with the Keras model's latency measured in the
same process (`model(x, training=False)` on TensorFlow with
`--keras-threads` intra-op threads). Ratios > 1 mean LiteRT is faster.
Weights are random (latency and size do not depend on them); int8 is
calibrated on synthetic scenes.

    python benchmarks/export.py                               # every architecture, 256 and 512
    python benchmarks/export.py --archs deeplabv3plus --sizes 512 --runs 20
    python benchmarks/export.py --preset tiny --sizes 256     # quick smoke run

Absolute times drift between runs and machines: read the ratios.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.export import trained  # noqa: E402

MOBILE = {"backbone": "mobilenetv2"}
PRESETS = {
    # Deployable configurations (MobileNetV2 where the builder takes a backbone).
    "mobile": {
        "fcn8s": ("kerasseg.models.fcn", "fcn8s", {**MOBILE, "dropout": 0.0}),
        "segnet": ("kerasseg.models.segnet", "segnet", {"base_filters": 16}),
        "unet": ("kerasseg.models.unet", "unet", {"base_filters": 16, "dropout": 0.0}),
        "pspnet": ("kerasseg.models.pspnet", "pspnet", {**MOBILE, "output_stride": 16}),
        "deeplabv3plus": ("kerasseg.models.deeplab", "deeplabv3plus", MOBILE),
        "lpsnet": ("kerasseg.models.lpsnet", "lpsnet", {
            **MOBILE, "fpn_filters": 64, "semantic_filters": 64, "head_convs": 2,
            "thing_classes": (4, 5, 6)}),
    },
    # The parity tests' tiny configurations, for a smoke run.
    "tiny": trained.BUILDERS,
}
QUANTIZATIONS = {"fp32": None, "fp16": "fp16", "int8": "int8"}
NUM_CLASSES = 7


def _median_ms(function, runs):
    function()  # warm-up (allocations, XNNPACK packing, tf.function tracing)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _litert_ms(path, threads, runs):
    from kerasseg.runtime import Segmenter

    segmenter = Segmenter.load(path, num_threads=threads)
    import numpy as np

    x = np.random.default_rng(0).uniform(0, 255, segmenter.input.shape)
    x = segmenter.quantize_input(x)
    return _median_ms(lambda: segmenter.run(x), runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mobile", choices=tuple(PRESETS))
    parser.add_argument("--archs", nargs="+", default=None)
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--quantizations", nargs="+", default=list(QUANTIZATIONS),
                        choices=tuple(QUANTIZATIONS))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keras-threads", type=int, default=2)
    parser.add_argument("--calibration-images", type=int, default=8)
    args = parser.parse_args(argv)

    import importlib

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.keras_threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from kerasseg.data.synthetic import make_scene
    from kerasseg.export import to_tflite

    builders = PRESETS[args.preset]
    archs = args.archs or list(builders)
    header = (f"{'arch':<14} {'size':>4} {'quant':<5} {'params':>8} {'MB':>7} "
              f"{'keras ms':>9} {'litert1':>8} {'litert2':>8} {'k/l1':>6} {'k/l2':>6}")
    print(f"preset {args.preset}, Keras with {args.keras_threads} threads, "
          f"median of {args.runs} runs; k/lN = Keras ms / LiteRT ms at N threads")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as directory:
        for arch in archs:
            module_name, builder_name, config = builders[arch]
            try:
                builder = getattr(importlib.import_module(module_name), builder_name)
            except ModuleNotFoundError:
                print(f"{arch:<14} skipped: {module_name} does not exist")
                continue
            for size in args.sizes:
                keras.backend.clear_session()
                model = builder(NUM_CLASSES, input_shape=(size, size, 3), **config)
                x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)),
                                tf.float32)
                call = tf.function(lambda x, model=model: model(x, training=False))
                keras_ms = _median_ms(lambda call=call, x=x: tf.nest.map_structure(
                    lambda t: t.numpy(), call(x)), args.runs)
                calibration = np.stack([make_scene(i, size, size)["image"]
                                        for i in range(args.calibration_images)])
                for name in args.quantizations:
                    path = os.path.join(directory, f"{arch}_{size}_{name}.tflite")
                    to_tflite(model, path, quantization=QUANTIZATIONS[name],
                              representative_data=calibration,
                              calibration_steps=args.calibration_images)
                    megabytes = os.path.getsize(path) / 1e6
                    one, two = (_litert_ms(path, threads, args.runs) for threads in (1, 2))
                    print(f"{arch:<14} {size:>4} {name:<5} {model.count_params() / 1e6:>7.2f}M "
                          f"{megabytes:>7.2f} {keras_ms:>9.1f} {one:>8.1f} {two:>8.1f} "
                          f"{keras_ms / one:>6.2f} {keras_ms / two:>6.2f}", flush=True)
                    os.remove(path)


if __name__ == "__main__":
    main()
