"""Portrait-mode models against MediaPipe's selfie segmentation, in one run.

For each input size (256x256 square, 144x256 landscape) it converts our
portrait configurations (`kerasseg.models.portrait.PORTRAIT_CONFIGS`) to `.tflite`
(fp16 and int8, builtin ops only) and times them with LiteRT at 1 and 2
threads next to MediaPipe's model of the same size, interleaved round by
round so that load from other processes hits every model alike. It prints
file size, latency (median over rounds) and ratios to MediaPipe, and checks
that every graph of ours is builtin-only with no ARG_MAX.

Goal (issue 8): at least as fast as MediaPipe and no larger.

MediaPipe's files ship in the `mediapipe==0.10.21` wheel (later wheels drop
them). Without --mediapipe-model the script downloads that wheel only
(`pip download --no-deps`, never installed: it needs numpy<2) into a cache
folder and extracts the two `.tflite` files with zipfile.

MediaPipe's graph ends in its custom op Convolution2DTransposeBias. The
LiteRT Python interpreter runs it through its default XNNPACK delegate,
which implements that MediaPipe op; with the default delegates turned off
the op is unresolved. The script reports which of the two worked.

Weights do not change size or latency: the models are untrained.

Usage:
    python benchmarks/portrait.py
    python benchmarks/portrait.py --sizes 256x256 --quantizations fp16 --rounds 5
    python benchmarks/portrait.py --mediapipe-model selfie_segmentation.tflite \\
        --mediapipe-landscape-model selfie_segmentation_landscape.tflite
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

MEDIAPIPE_VERSION = "0.10.21"
MEDIAPIPE_FILES = {
    (256, 256): "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    (144, 256): "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
}
# The .tflite files are the same in every wheel; try common platform tags in turn.
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "macosx_11_0_universal2",
                   "win_amd64")


def cache_dir(override=None):
    root = override or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kerasseg",
        "mediapipe",
    )
    os.makedirs(root, exist_ok=True)
    return root


def fetch_mediapipe(cache):
    """Paths of MediaPipe's two selfie models by size, downloading the wheel
    once if needed. Returns {} (and says why) if that is not possible."""
    paths = {size: os.path.join(cache, os.path.basename(member))
             for size, member in MEDIAPIPE_FILES.items()}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    with tempfile.TemporaryDirectory() as download:
        errors = []
        for platform in WHEEL_PLATFORMS:
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps",
                f"mediapipe=={MEDIAPIPE_VERSION}", "-d", download, "--only-binary=:all:",
                "--python-version", "3.11", "--platform", platform, "--quiet",
            ]
            print(f"Downloading the mediapipe {MEDIAPIPE_VERSION} wheel ({platform}) to "
                  "extract its selfie segmentation models...")
            result = subprocess.run(command, capture_output=True, text=True)
            wheels = [f for f in os.listdir(download) if f.endswith(".whl")]
            if result.returncode == 0 and wheels:
                break
            errors.append(f"{platform}: {(result.stderr or result.stdout).strip()[-300:]}")
        else:
            print(
                "Could not get MediaPipe's model: `pip download mediapipe=="
                f"{MEDIAPIPE_VERSION}` failed for every platform tag "
                f"({'; '.join(errors)}). Pass --mediapipe-model (and "
                "--mediapipe-landscape-model) with the .tflite files from the wheel's "
                "mediapipe/modules/selfie_segmentation/. Timing our models only."
            )
            return {}
        with zipfile.ZipFile(os.path.join(download, wheels[0])) as wheel:
            for size, member in MEDIAPIPE_FILES.items():
                with open(paths[size], "wb") as f:
                    f.write(wheel.read(member))
    return paths


def load_interpreter(path, threads):
    """A LiteRT interpreter with its default (XNNPACK) delegate, and a note if
    the model cannot run without it (MediaPipe's custom op)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    note = ""
    try:
        plain = Interpreter(
            model_path=path, num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        plain.allocate_tensors()
    except RuntimeError as error:
        op = str(error).split("custom op: ")[-1].split(".")[0] if "custom op" in str(error) else ""
        note = f"needs the XNNPACK delegate (custom op {op})" if op else "needs a delegate"
    return interpreter, note


def graph_ops(path):
    from ai_edge_litert.interpreter import Interpreter

    return sorted({op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()})


def timed_invocations(interpreter, invocations):
    start = time.perf_counter()
    for _ in range(invocations):
        interpreter.invoke()
    return 1000 * (time.perf_counter() - start) / invocations


def export_ours(config, size, quantization, folder):
    """Converts one untrained portrait configuration; returns the file path."""
    from kerasseg.data.synthetic import make_portrait_scene
    from kerasseg.export import to_tflite
    from kerasseg.models.portrait import portrait_model

    model = portrait_model(config, input_shape=(*size, 3))
    calibration = None
    if quantization == "int8":
        calibration = np.stack([make_portrait_scene(seed, *size)[0] for seed in range(16)])
    path = os.path.join(folder, f"{config}_{size[0]}x{size[1]}_{quantization}.tflite")
    # Untrained weights: no agreement to hold an int8 export to.
    to_tflite(model, path, quantization=quantization, representative_data=calibration,
              calibration_steps=16, output="probabilities",
              min_agreement=None)
    return path, model.count_params()


def parse_size(text):
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be HxW, e.g. 256x256. Received: {text!r}"
        ) from None
    return height, width


def main(argv=None):
    from kerasseg.models.portrait import PORTRAIT_CONFIGS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="lraspp_mobilenetv3small,lraspp_mobilenetv3small_035,"
                        "lraspp_mobilenetv3large,deeplabv3plus_mobilenetv2",
                        help="comma-separated PORTRAIT_CONFIGS")
    parser.add_argument("--sizes", default="256x256,144x256", help="comma-separated HxW")
    parser.add_argument("--quantizations", default="fp16,int8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--invocations", type=int, default=10, help="invocations per round")
    parser.add_argument("--statistic", choices=("min", "median"), default="min",
                        help="per-model summary of the rounds: min (best round; robust to "
                        "other processes on a shared machine) or median")
    parser.add_argument("--mediapipe-model", default=None,
                        help="selfie_segmentation.tflite (256x256); default: from the wheel")
    parser.add_argument("--mediapipe-landscape-model", default=None,
                        help="selfie_segmentation_landscape.tflite (144x256)")
    parser.add_argument("--cache-dir", default=None, help="where MediaPipe's files are kept")
    parser.add_argument("--keep", default=None, help="folder to keep our .tflite files in")
    args = parser.parse_args(argv)
    configs = args.configs.split(",")
    for config in configs:
        if config not in PORTRAIT_CONFIGS:
            parser.error(f"--configs: unknown {config!r}; choose from {sorted(PORTRAIT_CONFIGS)}")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    quantizations = args.quantizations.split(",")
    threads = [int(t) for t in args.threads.split(",")]

    given = {(256, 256): args.mediapipe_model, (144, 256): args.mediapipe_landscape_model}
    mediapipe = {size: path for size, path in given.items() if path}
    for path in mediapipe.values():
        if not os.path.isfile(path):
            parser.error(f"MediaPipe model not found: {path!r}")
    if any(size in MEDIAPIPE_FILES and size not in mediapipe for size in sizes):
        fetched = fetch_mediapipe(cache_dir(args.cache_dir))
        mediapipe = {**fetched, **mediapipe}

    folder = args.keep or tempfile.mkdtemp(prefix="kerasseg_portrait_")
    os.makedirs(folder, exist_ok=True)
    rows = []  # (size, name, path, params)
    for size in sizes:
        if size in mediapipe:
            label = "landscape" if size == (144, 256) else "general"
            rows.append((size, f"MediaPipe selfie segmentation ({label})", mediapipe[size], None))
        for config in configs:
            for quantization in quantizations:
                print(f"Converting {config} {size[0]}x{size[1]} {quantization}...", flush=True)
                path, params = export_ours(config, size, quantization, folder)
                rows.append((size, f"{config} {quantization}", path, params))

    notes, checks = {}, {}
    for _, name, path, _ in rows:
        ops = graph_ops(path)
        if not name.startswith("MediaPipe"):
            custom = [op for op in ops if not op.isupper()]
            checks[path] = "yes" if not custom and "ARG_MAX" not in ops else f"NO: {custom}"

    # Interleaved timing: every round times every model once, per thread count.
    timings = {(path, t): [] for _, _, path, _ in rows for t in threads}
    interpreters = {}
    for _, _, path, _ in rows:
        for t in threads:
            interpreter, note = load_interpreter(path, t)
            detail = interpreter.get_input_details()[0]
            interpreter.set_tensor(
                detail["index"], np.random.default_rng(0).uniform(0, 255, detail["shape"]).astype(
                    detail["dtype"]))
            timed_invocations(interpreter, 5)  # warm-up
            interpreters[(path, t)] = interpreter
            if note:
                notes[path] = note
    for _ in range(args.rounds):
        for key, interpreter in interpreters.items():
            timings[key].append(timed_invocations(interpreter, args.invocations))
    summary = min if args.statistic == "min" else statistics.median
    latency = {key: summary(values) for key, values in timings.items()}

    thread_columns = " | ".join(f"{t} thr ms | x MP" for t in threads)
    print(f"\nLiteRT, ms per image: {args.statistic} over {args.rounds} interleaved rounds of "
          f"{args.invocations} invocations; "
          "'x MP' = MediaPipe time / ours (> 1: faster); size ratio = ours / MediaPipe.")
    for size in sizes:
        print(f"\n### {size[0]}x{size[1]}\n")
        print(f"| model | params | KB | size / MP | {thread_columns} | builtin-only, no ARG_MAX |")
        print("|---|---|---|---|" + "---|---|" * len(threads) + "---|")
        reference = next((r for r in rows if r[0] == size and r[1].startswith("MediaPipe")), None)
        for row_size, name, path, params in rows:
            if row_size != size:
                continue
            kilobytes = os.path.getsize(path) / 1024
            size_ratio = (f"{os.path.getsize(path) / os.path.getsize(reference[2]):.2f}"
                          if reference else "-")
            cells = []
            for t in threads:
                ms = latency[(path, t)]
                ratio = f"{latency[(reference[2], t)] / ms:.2f}" if reference else "-"
                cells.append(f"{ms:.2f} | {ratio}")
            check = checks.get(path, notes.get(path, "custom op"))
            print(f"| {name} | {params if params else '~106K (fp16)'} | {kilobytes:.0f} | "
                  f"{size_ratio} | {' | '.join(cells)} | {check} |")
    for path, note in notes.items():
        print(f"\nNote: {os.path.basename(path)} {note}; timed with LiteRT's default delegate.")
    if not mediapipe:
        print("\nMediaPipe's model was not available: no ratios.")
    print(f"\nOur .tflite files: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
