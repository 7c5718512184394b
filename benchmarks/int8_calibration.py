"""int8 agreement with Keras as a function of the calibration choices.

For the parity tests' trained tiny models (`tests/export/trained.py`, 64x64)
and, with --quickstart-model, the model `kerasseg quickstart` trains, this
exports int8 without the agreement guarantee (`min_agreement=None`, so the
raw effect of each choice shows) and scores the labels on unseen scenes:

- number of calibration images (training scenes): TFLite and ONNX;
- ONNX only (its quantizer exposes them), against its default
  (`kerasseg.export.onnx.CALIBRATION`: 99.99th-percentile activation ranges,
  per-channel symmetric weights): min-max, 99.999th-percentile or entropy
  ranges, per-tensor weights, and asymmetric activations (which TensorRT
  cannot build).

TFLite's converter has per-channel weights, asymmetric activations and
min-max ranges, and no public switch for any of them.

With --saturation it measures instead what ONNX Runtime's fused int8 kernels
do on this CPU against the exact Q/DQ arithmetic (the same graph with graph
optimisations off, so QuantizeLinear / DequantizeLinear run as written and
the convolutions in float, as on a CPU with VNNI or in TensorRT): 8-bit
weights, 7-bit weights (reduce_range, kerasseg's default) and asymmetric
uint8 activations. On AVX2 without VNNI the fused u8 x s8 kernels saturate
their int16 pair sums with 8-bit weights; the gap "fused - exact" shows it.

    python benchmarks/int8_calibration.py --saturation --archs pspnet fcn8s

    python benchmarks/int8_calibration.py
    python benchmarks/int8_calibration.py --archs unet deeplabv3 --quickstart-model qs/model.keras
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.export import trained  # noqa: E402

COUNTS = (8, 16, 32, 64)
ONNX_VARIANTS = {
    "min-max": {"method": "MinMax"},
    "percentile 99.999": {"method": "Percentile", "percentile": 99.999},
    "entropy": {"method": "Entropy"},
    "per-tensor w": {"per_channel": False},
    "asymmetric act": {"symmetric": False},
}
VARIANT_IMAGES = 32  # calibration images of the ONNX variants


def agreements(model, calibration, test_images, directory):
    """{column: agreement on `test_images`} for every calibration choice."""
    import onnx

    from kerasseg.export import to_onnx, to_tflite
    from kerasseg.export.int8 import agreement, exported_labels, reference_labels
    from kerasseg.export.onnx import _to_int8

    reference = reference_labels(model, test_images)
    path, size = os.path.join(directory, "m"), tuple(test_images.shape[1:3])
    row = {}
    for count in COUNTS:
        exported = to_tflite(model, path + ".tflite", size, precision="int8",
                             calibration_data=calibration[:count], io_dtype="uint8",
                             min_agreement=None)
        row[f"TFLite {count}"] = agreement(reference, exported_labels(exported, test_images))
    proto = onnx.load(to_onnx(model, path + ".onnx", size))
    runs = {f"ONNX {count}": (count, {}) for count in COUNTS}
    runs.update({name: (VARIANT_IMAGES, settings) for name, settings in ONNX_VARIANTS.items()})
    for column, (count, settings) in runs.items():
        quantized = _to_int8(proto, calibration[:count], 1, calibration=settings)
        onnx.save(quantized, path + "_int8.onnx")
        row[column] = agreement(reference, exported_labels(path + "_int8.onnx", test_images))
    return row


SATURATION_VARIANTS = {
    "8-bit weights": {"reduce_range": False},
    "7-bit weights": {"reduce_range": True},
    "uint8 activations": {"reduce_range": False, "symmetric": False},
}


def saturation(model, calibration, test_images, directory):
    """{variant: (agreement with fused kernels, with exact Q/DQ arithmetic)}."""
    import numpy as np
    import onnx
    import onnxruntime

    from kerasseg.export import to_onnx
    from kerasseg.export.int8 import agreement, reference_labels
    from kerasseg.export.onnx import _to_int8

    reference = reference_labels(model, test_images)
    proto = onnx.load(to_onnx(model, os.path.join(directory, "m.onnx"),
                              tuple(test_images.shape[1:3])))

    def labels(quantized, exact):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        if exact:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(quantized.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([np.argmax(session.run(None, {name: image[None]})[0], -1)
                               for image in test_images])

    row = {}
    for variant, settings in SATURATION_VARIANTS.items():
        quantized = _to_int8(proto, calibration[:VARIANT_IMAGES], 1, calibration=settings)
        row[variant] = (agreement(reference, labels(quantized, False)),
                        agreement(reference, labels(quantized, True)))
    return row


def quickstart_case(path):
    """The quickstart model with 64 training-like and 32 unseen scenes at its size."""
    import numpy as np

    from kerasseg.data.synthetic import make_scene
    from kerasseg.saving import load_model

    model = load_model(path)
    size = int(model.input.shape[1] or 128)
    draw = [make_scene(seed, size, size)["image"] for seed in range(max(COUNTS))]
    test = [make_scene(trained.TEST_SEED + seed, size, size)["image"] for seed in range(32)]
    return model, np.stack(draw).astype("float32"), np.stack(test).astype("float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(trained.BUILDERS),
                        choices=list(trained.BUILDERS))
    parser.add_argument("--quickstart-model", help="model.keras from `kerasseg quickstart`")
    parser.add_argument("--saturation", action="store_true",
                        help="ONNX fused int8 kernels on this CPU against exact Q/DQ")
    args = parser.parse_args()
    if args.saturation:
        from kerasseg.export.common import cpu_description

        print(f"{cpu_description()}\nagreement with Keras, fused kernels / exact Q/DQ (%)")

    calibration, _ = trained.scenes(0, max(COUNTS))
    test_images, _ = trained.scenes(trained.TEST_SEED, trained.TEST_SCENES)
    cases = [(name, lambda name=name: (trained.load(name), calibration, test_images))
             for name in args.archs]
    if args.quickstart_model:
        cases.append(("quickstart", lambda: quickstart_case(args.quickstart_model)))
    header = None
    with tempfile.TemporaryDirectory(prefix="kerasseg_calibration_") as directory:
        for name, load in cases:
            row = (saturation if args.saturation else agreements)(*load(), directory)
            if header is None:
                header = ["model", *row]
                print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
            cells = [" / ".join(f"{100 * v:.2f}" for v in value) if isinstance(value, tuple)
                     else f"{100 * value:.2f}" for value in row.values()]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
