"""Phone-sized configurations of every builder exported to LiteRT: size, latency, int8 agreement.

It first prints the CPU it runs on and the instruction sets that decide
which kernels LiteRT's XNNPACK picks (AVX2 only, AVX-512, VNNI, ARM dot
product): int8's speed-up over fp32 is 2.65x on an AVX-512 VNNI CPU and
about 1.2x on an AVX2 one, so a table means little without that line.

For each builder's phone configuration and input size, the model (random
weights: size and latency do not depend on them) is converted with
`kerasseg.export.to_tflite` to fp32, fp16, dynamic-range (int8 weights,
float activations) and int8 (uint8 input, calibrated on synthetic scenes)
and the four files are timed interleaved, round after
round, at 1 and 2 LiteRT threads: the fastest round counts, one thread in
thread CPU time (`benchmarks/litert_profile.py`'s `cpu_clock`: on a shared
machine wall-clock minima varied 2x between runs). The int8 speed-up is fp32
ms / int8 ms.

int8 agreement is measured on trained models: each builder's tiny
configuration with the parity tests' checked-in weights
(`tests/export/trained.py`, 64x64) and, with `--quickstart-model`, the model
`kerasseg quickstart` trains. Both int8 routes (TFLite uint8 I/O and the ONNX
Q/DQ graph) are exported with the default guarantee (`min_agreement` 0.98 on
a quarter of the calibration scenes held out) and scored on other, unseen
scenes; the table also says how many layers the guarantee kept in float.

The peer row times Google's quantized DeepLabv3 MobileNetV2 for PASCAL VOC
(`deeplabv3_mnv2_pascal_quant.tflite`, uint8 513x513 in, labels out; from
the repository google-coral/test_data, Apache-2.0) against our reference
DeepLabv3 MobileNetV2 (`deeplabv3(21, backbone="mobilenetv2")`) in int8 at
513x513, in the same interleaved rounds. Pass its path with --peer-model or
put it in the cache folder (`~/.cache/kerasseg/peers/`); nothing is
downloaded.

    python benchmarks/export.py                                  # everything, 512x512
    python benchmarks/export.py --archs deeplabv3 unet --sizes 256 512 --rounds 20
    python benchmarks/export.py --quickstart-model runs/qs/model.keras --peer-model PATH
    python benchmarks/export.py --skip-timing                    # agreement only

Absolute times drift between machines: read the ratios.
"""

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.litert_profile import set_random_inputs, time_interpreters  # noqa: E402
from tests.export import trained  # noqa: E402

MOBILE = {"backbone": "mobilenetv2"}
# builder -> (module, function, phone-sized configuration)
PHONE = {
    "fcn8s": ("kerasseg.models.fcn", "fcn8s", {**MOBILE, "dropout": 0.0}),
    "segnet": ("kerasseg.models.segnet", "segnet", {"base_filters": 16}),
    "unet": ("kerasseg.models.unet", "unet", {"base_filters": 16, "dropout": 0.0}),
    "pspnet": ("kerasseg.models.pspnet", "pspnet", {**MOBILE, "output_stride": 16}),
    "deeplabv3": ("kerasseg.models.deeplab", "deeplabv3", MOBILE),
    "deeplabv3plus": ("kerasseg.models.deeplab", "deeplabv3plus", MOBILE),
    "lraspp": ("kerasseg.models.lraspp", "lraspp", {}),
    "lpsnet": ("kerasseg.models.lpsnet", "lpsnet", {
        **MOBILE, "fpn_filters": 64, "semantic_filters": 64, "head_convs": 2,
        "thing_classes": (4, 5, 6)}),
}
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
NUM_CLASSES = 7
PEER_FILE = "deeplabv3_mnv2_pascal_quant.tflite"
PEER_SIZE = 513
CALIBRATION = 16  # synthetic scenes calibrating the timed (untrained) int8 files
QUICKSTART_CALIBRATION, QUICKSTART_TEST = 64, 24  # as in issue 16


def build(arch, size, num_classes=NUM_CLASSES):
    module, function, config = PHONE[arch]
    builder = getattr(importlib.import_module(module), function)
    return builder(num_classes, input_shape=(size, size, 3), **config)


def scenes(size, count, first=0):
    import numpy as np

    from kerasseg.data.synthetic import make_scene

    return np.stack([make_scene(first + i, size, size)["image"] for i in range(count)])


def export_all(model, size, directory, tag, **options):
    """{precision: path} of `model` at `size`, one file per PRECISIONS."""
    from kerasseg.export import to_tflite

    paths = {}
    for name in PRECISIONS:
        paths[name] = to_tflite(
            model, os.path.join(directory, f"{tag}_{name}.tflite"), (size, size),
            precision=name,
            calibration_data=scenes(size, CALIBRATION), calibration_steps=CALIBRATION,
            io_dtype="uint8", min_agreement=None, **options)
    return paths


def time_files(paths, threads, rounds):
    """{path: ms}: the fastest of `rounds` interleaved invokes of each file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for path in paths:
        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        set_random_inputs(interpreter)
        interpreters[path] = interpreter
    return time_interpreters(interpreters, threads, rounds)


def int8_agreement(model, calibration, test_images, directory):
    """{"tflite"/"onnx": (agreement on `test_images`, layers kept in float)}."""
    import numpy as np

    from kerasseg.export import to_onnx, to_tflite
    from kerasseg.export.int8 import exported_labels, reference_labels
    from kerasseg.runtime import read_metadata

    reference, size = reference_labels(model, test_images), tuple(test_images.shape[1:3])
    paths = {
        "tflite": to_tflite(model, os.path.join(directory, "agree.tflite"), size,
                            precision="int8", calibration_data=calibration,
                            io_dtype="uint8"),
        "onnx": to_onnx(model, os.path.join(directory, "agree.onnx"), size, precision="int8",
                        calibration_data=calibration),
    }
    return {route: (float(np.mean(exported_labels(path, test_images) == reference)),
                    len(read_metadata(path)["quantization"]["float_layers"]))
            for route, path in paths.items()}


def agreement_cell(name, directory):
    """"TFLite% (n float) / ONNX% (n float)" for the trained tiny `name`."""
    if name not in trained.BUILDERS or not (trained.WEIGHTS_DIR / f"{name}.npz").exists():
        return "-"
    calibration, _ = trained.scenes(0, trained.CALIBRATION_SCENES)
    test_images, _ = trained.scenes(trained.TEST_SEED, trained.TEST_SCENES)
    return _cell(int8_agreement(trained.load(name), calibration, test_images, directory))


def _cell(results):
    return " / ".join(f"{100 * value:.2f}% ({kept} fl)" for value, kept in results.values())


def timing_rows(tag, params, paths, rounds, threads=(1, 2)):
    """Markdown cells: params, MB per file, ms per file per thread count, speed-ups."""
    megabytes = [os.path.getsize(paths[name]) / 1e6 for name in PRECISIONS]
    cells = [tag, f"{params / 1e6:.2f}M", *(f"{mb:.2f}" for mb in megabytes)]
    for count in threads:
        ms = time_files(list(paths.values()), count, rounds)
        cells += [f"{ms[paths[name]]:.1f}" for name in PRECISIONS]
        cells.append(f"{ms[paths['fp32']] / ms[paths['int8']]:.2f}x")
    return cells


HEADER = ("| config | params | MB fp32 | MB fp16 | MB dynamic | MB int8 | 1 thr fp32 ms | fp16 "
          "| dynamic | int8 | int8 speed-up | 2 thr fp32 ms | fp16 | dynamic | int8 "
          "| int8 speed-up |")


def print_header(extra=""):
    header = HEADER + (f" {extra} |" if extra else "")
    print(header + "\n|" + "---|" * (header.count("|") - 1))


def time_builders(args, directory):
    """One row per builder and size; the trained tiny model's int8 agreement."""
    import keras

    print("\n## Phone configurations (random weights; agreement: trained tiny model, 64x64)\n")
    print_header("int8 agreement TFLite / ONNX (layers kept float)")
    for arch in args.archs:
        agreement = "not measured" if args.skip_agreement else agreement_cell(arch, directory)
        for size in args.sizes:
            keras.backend.clear_session()
            model = build(arch, size)
            options = {"resize_logits": False} if args.low_res_logits and _has_resize(model) else {}
            paths = export_all(model, size, directory, f"{arch}{size}", **options)
            cells = timing_rows(f"{arch} {size}", model.count_params(), paths, args.rounds)
            print("| " + " | ".join([*cells, agreement]) + " |", flush=True)


def _has_resize(model):
    return "upsample_logits" in {layer.name for layer in model.layers}


def quickstart(args, directory):
    """The quickstart model at its training size and at each --sizes: timing,
    and its int8 agreement (64 training scenes, 24 unseen ones, as in issue 16)."""
    import keras

    from kerasseg.saving import load_model

    model = load_model(args.quickstart_model)
    trained_size = int(model.input.shape[1] or 128)
    calibration = scenes(trained_size, QUICKSTART_CALIBRATION).astype("float32")
    test_images = scenes(trained_size, QUICKSTART_TEST, first=trained.TEST_SEED).astype("float32")
    print(f"\n## Quickstart model ({args.quickstart_model})\n")
    if not args.skip_agreement:
        results = int8_agreement(model, calibration, test_images, directory)
        print(f"int8 agreement on {QUICKSTART_TEST} unseen {trained_size}x{trained_size} scenes "
              f"(TFLite / ONNX, layers kept float): {_cell(results)}\n")
    print_header()
    for size in sorted({trained_size, *args.sizes}):
        keras.backend.clear_session()
        model = load_model(args.quickstart_model)
        options = {"resize_logits": False} if args.low_res_logits else {}
        paths = export_all(model, size, directory, f"quickstart{size}", **options)
        cells = timing_rows(f"quickstart {size}", model.count_params(), paths, args.rounds)
        print("| " + " | ".join(cells) + " |", flush=True)
        if size == trained_size and not args.skip_agreement:
            guaranteed = os.path.join(directory, "agree.tflite")  # from int8_agreement
            ms = time_files([paths["fp32"], guaranteed], 1, args.rounds)
            print(f"\nThe guaranteed int8 TFLite file at {size} (layers kept float as above): "
                  f"{ms[guaranteed]:.2f} ms, {ms[paths['fp32']] / ms[guaranteed]:.2f}x fp32 "
                  "(1 thread)\n")


def peer_path(given):
    """Google's file: `given`, or from the cache folder; None (and how to get it)."""
    cached = Path.home() / ".cache" / "kerasseg" / "peers" / PEER_FILE
    path = Path(given) if given else cached
    if path.is_file():
        return str(path)
    print(f"\nPeer row skipped: {path} not found. Take {PEER_FILE} from the repository "
          f"google-coral/test_data (Apache-2.0) and pass --peer-model PATH or put it in "
          f"{cached.parent}.")
    return None


def peer(args, directory, path):
    """Our reference DeepLabv3 MobileNetV2 (21 classes) at 513x513 against Google's file."""
    from kerasseg.export import to_tflite

    model = build("deeplabv3", PEER_SIZE, num_classes=21)
    ours = {"int8 logits": {}, "int8 labels (ARG_MAX as Google's)": {"output": "labels"},
            "int8 logits at stride 16": {"resize_logits": False},
            "int8 logits, per-tensor weights": {"per_channel": False}}
    files = {"Google deeplabv3_mnv2_pascal_quant": path}
    for tag, options in ours.items():
        files[f"ours {tag}"] = to_tflite(
            model, os.path.join(directory, f"peer_{len(files)}.tflite"), precision="int8",
            calibration_data=scenes(PEER_SIZE, CALIBRATION), io_dtype="uint8",
            min_agreement=None, **options)
    print(f"\n## Peer: DeepLabv3 MobileNetV2 at {PEER_SIZE}x{PEER_SIZE}, 21 classes, uint8 in\n")
    print("| file | params | MB | 1 thr ms | 2 thr ms |\n|---|---|---|---|---|")
    times = {count: time_files(list(files.values()), count, args.rounds) for count in (1, 2)}
    for tag, file in files.items():
        params = f"{model.count_params() / 1e6:.2f}M" if tag.startswith("ours") else "-"
        print(f"| {tag} | {params} | {os.path.getsize(file) / 1e6:.2f} | "
              f"{times[1][file]:.1f} | {times[2][file]:.1f} |", flush=True)


def cpu_line():
    """The CPU, its kernel-deciding instruction sets and the LiteRT version."""
    from importlib.metadata import version

    from kerasseg.export.common import ISA_FLAGS, cpu_description

    cpu = cpu_description()
    missing = [flag for flag in ("avx512f", "avx512_vnni", "avx_vnni") if flag not in cpu["isa"]]
    return (f"CPU: {cpu['cpu']} ({cpu['machine']}), {os.cpu_count()} logical cores; ISA: "
            f"{' '.join(cpu['isa']) or 'none of ' + ' '.join(ISA_FLAGS)}"
            + (f" (no {', '.join(missing)})" if cpu["machine"] == "x86_64" and missing else "")
            + f"; LiteRT {version('ai-edge-litert')}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(PHONE), choices=list(PHONE))
    parser.add_argument("--sizes", nargs="+", type=int, default=[512])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--low-res-logits", action="store_true",
                        help="export with resize_logits=False where the model allows")
    parser.add_argument("--quickstart-model", help="model.keras from `kerasseg quickstart`")
    parser.add_argument("--peer-model", help=f"path of Google's {PEER_FILE}")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--skip-timing", action="store_true", help="agreement only")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    print(cpu_line())
    print(f"LiteRT, fastest of {args.rounds} interleaved rounds (1 thread: thread CPU time; "
          f"2 threads: wall clock); int8 files take uint8 pixels"
          f"{'; logits at the output stride' if args.low_res_logits else ''}.")
    with tempfile.TemporaryDirectory(prefix="kerasseg_bench_") as directory:
        if args.skip_timing:
            for arch in args.archs:
                print(f"{arch}: int8 agreement TFLite / ONNX {agreement_cell(arch, directory)}",
                      flush=True)
        else:
            time_builders(args, directory)
        if args.quickstart_model:
            quickstart(args, directory)
        path = None if args.skip_peer or args.skip_timing else peer_path(args.peer_model)
        if path:
            peer(args, directory, path)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
