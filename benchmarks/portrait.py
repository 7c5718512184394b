"""Portrait-mode models against MediaPipe's selfie segmentation, in one run.

For each input size (256x256 square, 144x256 landscape) it converts portrait
models to `.tflite` (fp16 and int8, builtin ops only): trained `.keras` files
(`--models`, e.g. the `best.keras` of `kerasseg train --config portrait_lraspp`)
or, without them, the untrained presets of
`kerasseg.models.portrait.PORTRAIT_CONFIGS`. It times them with LiteRT at 1
and 2 threads next to MediaPipe's model of the same size, interleaved round by
round so that load from other processes hits every model alike (one thread in
thread CPU time: `benchmarks/litert_profile.py`'s `time_interpreters`, which
`benchmarks/export.py` uses too), and checks that every graph of ours is
builtin-only with no ARG_MAX.

Quality on real photos (`--people-root`, the VikramShenoy97/Human-Segmentation-
Dataset folder, read by `kerasseg.data.people_dataset`): the mean over photos
of each photo's person IoU on the `--split` (default "test", photos 231-300,
never trained or tuned on; choose models on "val"), for every exported model
of ours through `kerasseg.runtime.Segmenter` and for MediaPipe's model on the
same photos in the same run. Both see a photo resized (bilinear) to their
input size, and their person probability, resized back to the photo, is cut
at 0.5. The int8 exports are calibrated on training photos (1-200).

It prints file size, IoU, latency (best round by default) and the ratios to
MediaPipe. Goal (issue 15): IoU at least MediaPipe's, no larger, no slower.

MediaPipe's files ship in the `mediapipe==0.10.21` wheel (later wheels drop
them). Without --mediapipe-model the script downloads that wheel only
(`pip download --no-deps`, never installed: it needs numpy<2) into a cache
folder and extracts the two `.tflite` files with zipfile.

MediaPipe's graph ends in its custom op Convolution2DTransposeBias. The
LiteRT Python interpreter runs it through its default XNNPACK delegate,
which implements that MediaPipe op; with the default delegates turned off
the op is unresolved. The script reports which of the two worked.

Usage:
    python benchmarks/portrait.py                       # untrained presets: timing only
    python benchmarks/portrait.py --models runs/portrait_lraspp/best.keras \\
        --people-root data/Human-Segmentation-Dataset
    python benchmarks/portrait.py --sizes 256x256 --quantizations fp16 --rounds 5 \\
        --mediapipe-model selfie_segmentation.tflite --models a.keras b.keras \\
        --people-root data/Human-Segmentation-Dataset --split val
"""

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.litert_profile import set_random_inputs, time_interpreters  # noqa: E402

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


DEFAULT_CONFIGS = ("lraspp_mobilenetv3small,lraspp_mobilenetv3small_035,"
                   "lraspp_mobilenetv3large,deeplabv3plus_mobilenetv2")
THRESHOLD = 0.5  # a pixel is a person where the probability exceeds it


@dataclasses.dataclass
class Row:
    """One model of the table: a `.tflite` file at one input size."""

    size: tuple
    name: str
    path: str
    params: int | None = None  # None: a file not made here (MediaPipe's, Google's)
    scored: bool = True  # quality is measured (trained models and MediaPipe)
    kind: str = "kerasseg"  # how it is run: "kerasseg", "mediapipe", "voc_labels"

    @property
    def is_mediapipe(self):
        return self.kind == "mediapipe"


# === Exports ===


def export_preset(config, size, quantization, folder):
    """Converts one untrained portrait configuration; returns (path, params)."""
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
              calibration_steps=16, output="probabilities", min_agreement=None)
    return path, model.count_params()


def model_label(path):
    """A short name for a trained model: `run/best` for `.../run/best.keras`."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}/{stem}"


def export_trained(keras_path, sizes, quantizations, folder, calibration, validation,
                   per_channel=True):
    """Exports a trained `.keras` model at every size and quantization; its rows.
    An int8 file is held to the export's agreement guarantee (98 % of the
    clear-margin pixels) on the `validation` photos when given; `per_channel`
    False stores one weight scale per tensor (12 bytes a channel less)."""
    from kerasseg.export import to_tflite
    from kerasseg.saving import load_model

    model, label, rows = load_model(keras_path), model_label(keras_path), []
    for size in sizes:
        for quantization in quantizations:
            print(f"Converting {label} {size[0]}x{size[1]} {quantization}...", flush=True)
            path = os.path.join(folder, f"{label.replace('/', '_')}_{size[0]}x{size[1]}_"
                                f"{quantization}.tflite")
            int8 = quantization == "int8"
            to_tflite(model, path, size, precision=quantization, output="probabilities",
                      calibration_data=calibration if int8 else None,
                      calibration_steps=len(calibration) if calibration else 100,
                      validation_data=validation if int8 else None,
                      per_channel=per_channel)
            rows.append(Row(size, f"{label} {quantization}", path, model.count_params()))
    return rows


def parse_model(text):
    """`PATH` or `PATH=HxW` (that model at that input size only)."""
    path, _, size = text.partition("=")
    return path, (parse_size(size) if size else None)


def preset_rows(names):
    """Google's VOC files as published (uint8 in, class ids out), zero-shot:
    a pixel is a person where the file says "person"."""
    from kerasseg.pretrained import preset_file, resolve_preset

    rows = []
    for name in names:
        preset = resolve_preset(name)
        path = preset_file(preset.name)
        size = tuple(load_interpreter(path, 1)[0].get_input_details()[0]["shape"][1:3])
        rows.append(Row(size, f"{preset.name} (Google's file, zero-shot)", path,
                        kind="voc_labels"))
    return rows


def build_rows(args, sizes, mediapipe, folder):
    """MediaPipe's model and ours (trained, or the untrained presets) per size."""
    rows = []
    for size in sizes:
        if size in mediapipe:
            label = "landscape" if size == (144, 256) else "general"
            rows.append(Row(size, f"MediaPipe selfie segmentation ({label})", mediapipe[size],
                            kind="mediapipe"))
    calibration = validation = None
    if args.models and "int8" in args.quantizations and args.people_root:
        calibration = [image for image, _ in people_photos(args.people_root, "train",
                                                           args.calibration_images)]
        validation = [image for image, _ in people_photos(args.people_root, "val")]
    for keras_path, size in map(parse_model, args.models):
        rows += export_trained(keras_path, [size] if size else sizes, args.quantizations,
                               folder, calibration, validation, not args.per_tensor_weights)
    rows += preset_rows(args.presets)
    for size in sizes:
        for config in args.configs:
            for quantization in args.quantizations:
                print(f"Converting {config} {size[0]}x{size[1]} {quantization}...", flush=True)
                path, params = export_preset(config, size, quantization, folder)
                rows.append(Row(size, f"{config} {quantization} (untrained)", path, params,
                                scored=False))
    order = list(dict.fromkeys([*sizes, *(row.size for row in rows)]))
    return sorted(rows, key=lambda row: order.index(row.size))


# === Graph checks and timing ===


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


def graph_check(path):
    """"yes" if the graph is builtin-only without ARG_MAX, else what is wrong."""
    from ai_edge_litert.interpreter import Interpreter

    ops = {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}
    custom = sorted(op for op in ops if not op.isupper())
    return "yes" if not custom and "ARG_MAX" not in ops else f"NO: {custom or 'ARG_MAX'}"


def time_rows(rows, threads, rounds, invocations, statistic):
    """({(path, threads): ms}, {path: note}): at each thread count every model
    is timed in the same interleaved rounds (`litert_profile.time_interpreters`)."""
    latency, notes, summary = {}, {}, min if statistic == "min" else statistics.median
    for count in threads:
        interpreters = {}
        for row in rows:
            interpreter, note = load_interpreter(row.path, count)
            set_random_inputs(interpreter)
            interpreters[row.path] = interpreter
            if note:
                notes[row.path] = note
        times = time_interpreters(interpreters, count, rounds, invocations, summary)
        latency.update({(path, count): ms for path, ms in times.items()})
    return latency, notes


# === Quality on real photos ===


def people_photos(root, split, limit=None):
    """[(image uint8 (H, W, 3), person mask bool (H, W))] of a people split."""
    from kerasseg.data.readers import people_dataset

    photos = []
    for image, mask in people_dataset(root, split).as_numpy_iterator():
        photos.append((image.astype(np.uint8), mask == 1))
        if limit and len(photos) >= limit:
            break
    return photos


def person_iou(prediction, truth):
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(prediction, truth).sum()
    return float(np.logical_and(prediction, truth).sum() / union) if union else 1.0


def mediapipe_person(path, threads=2):
    """image (H, W, 3) uint8 -> person probability (H, W) with MediaPipe's model:
    input resized to its size, scaled to [0, 1]; output resized back."""
    from kerasseg.runtime.image import resize_bilinear

    interpreter = load_interpreter(path, threads)[0]
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def person(image):
        x = resize_bilinear(image[None].astype(np.float32), tuple(source["shape"][1:3])) / 255
        interpreter.set_tensor(source["index"], x.astype(np.float32))
        interpreter.invoke()
        probability = interpreter.get_tensor(target["index"])[..., :1]
        return resize_bilinear(probability.astype(np.float32), image.shape[:2])[0, ..., 0]

    return person


def voc_person(path, threads=2):
    """image -> 1.0 where Google's VOC file labels a pixel "person" (class 15),
    its uint8 input resized to the file's size and its labels back (nearest)."""
    from kerasseg.runtime.image import resize_bilinear, resize_nearest

    interpreter = load_interpreter(path, threads)[0]
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def person(image):
        x = resize_bilinear(image[None].astype(np.float32), tuple(source["shape"][1:3]))
        interpreter.set_tensor(source["index"], np.clip(np.round(x), 0, 255).astype(np.uint8))
        interpreter.invoke()
        labels = interpreter.get_tensor(target["index"]).reshape(1, *source["shape"][1:3])
        return resize_nearest(labels, image.shape[:2])[0] == 15

    return person


def kerasseg_person(path, threads=2):
    """image -> person probability through `kerasseg.runtime.Segmenter` (the
    second of the [background, person] probabilities of a one-channel model)."""
    from kerasseg.runtime.segmenter import Segmenter

    segmenter = Segmenter.load(path, num_threads=threads)
    return lambda image: segmenter.predict_proba(image)[..., 1]


def mean_person_iou(person, photos):
    """Mean over photos of the per-photo person IoU at the photo's size."""
    return float(np.mean([person_iou(person(image) > THRESHOLD, truth)
                          for image, truth in photos]))


def score_rows(rows, photos):
    """{path: mean person IoU} of every scored row."""
    scores = {}
    for row in rows:
        if row.scored:
            print(f"Scoring {row.name} {row.size[0]}x{row.size[1]} on {len(photos)} photos...",
                  flush=True)
            person = {"mediapipe": mediapipe_person, "voc_labels": voc_person,
                      "kerasseg": kerasseg_person}[row.kind](row.path)
            scores[row.path] = mean_person_iou(person, photos)
    return scores


# === Report ===


def _ratio(numerator, denominator, digits=2):
    return f"{numerator / denominator:.{digits}f}" if numerator and denominator else "-"


def print_size_table(size, rows, latency, scores, checks, args):
    """One markdown table: our rows of `size` beside MediaPipe's (of that size,
    else its general 256x256 model, the one the ratios then refer to)."""
    reference = next((r for r in rows if r.size == size and r.is_mediapipe),
                     next((r for r in rows if r.is_mediapipe), None))
    base = os.path.getsize(reference.path) if reference else None
    quality = f" {args.split} IoU | IoU / MP |" if scores else ""
    columns = " | ".join(f"{t} thr ms | x MP" for t in args.threads)
    print(f"\n### {size[0]}x{size[1]}\n")
    print(f"| model | params | KB |{quality} size / MP | {columns} | builtin-only, no ARG_MAX |")
    print("|---|---|---|" + "---|---|" * bool(scores) + "---|" + "---|---|" * len(args.threads)
          + "---|")
    for row in (r for r in rows if r.size == size):
        iou = scores.get(row.path)
        cells = [f"{latency[(row.path, t)]:.2f} | " + _ratio(
            reference and latency[(reference.path, t)], latency[(row.path, t)])
            for t in args.threads]
        score = (f" {iou:.3f} | {_ratio(iou, reference and scores.get(reference.path), 3)} |"
                 if iou is not None else " - | - |") if scores else ""
        params = row.params or ("~106K (fp16)" if row.is_mediapipe else "-")
        print(f"| {row.name} | {params} | "
              f"{os.path.getsize(row.path) / 1024:.0f} |{score} "
              f"{_ratio(os.path.getsize(row.path), base)} | {' | '.join(cells)} | "
              f"{checks.get(row.path, 'custom op')} |")


def print_verdicts(rows, latency, scores, threads):
    """For each scored model of ours: is it as good, as small and as fast as MediaPipe?"""
    for row in rows:
        reference = next((r for r in rows if r.size == row.size and r.is_mediapipe), None)
        if row.kind != "kerasseg" or row.path not in scores or reference is None:
            continue
        misses = [what for what, ok in (
            ("IoU", scores[row.path] >= scores[reference.path]),
            ("size", os.path.getsize(row.path) <= os.path.getsize(reference.path)),
            ("latency", all(latency[(row.path, t)] <= latency[(reference.path, t)]
                            for t in threads))) if not ok]
        print(f"- {row.name} {row.size[0]}x{row.size[1]}: "
              + ("meets the aim" if not misses else f"short of MediaPipe on {', '.join(misses)}"))


def print_report(rows, latency, notes, scores, args):
    checks = {row.path: graph_check(row.path) for row in rows if not row.is_mediapipe}
    print(f"\nLiteRT, ms per image: {args.statistic} over {args.rounds} interleaved rounds of "
          f"{args.invocations} invocations (1 thread: thread CPU time; more: wall clock); "
          "'x MP' = MediaPipe time / ours (> 1: faster); "
          "size / MP = ours / MediaPipe's file.")
    if scores:
        print(f"IoU: mean over the {args.split} photos of each photo's person IoU at its own "
              f"size (probability > {THRESHOLD}); IoU / MP = ours / MediaPipe's.")
    for size in dict.fromkeys(row.size for row in rows):
        print_size_table(size, rows, latency, scores, checks, args)
    for path, note in notes.items():
        print(f"\nNote: {os.path.basename(path)} {note}; timed with LiteRT's default delegate.")
    if scores:
        print("\nAim (IoU >= MediaPipe's, size and latency <= MediaPipe's):")
        print_verdicts(rows, latency, scores, args.threads)
    elif not any(row.scored and not row.is_mediapipe for row in rows):
        print("\nNo trained models (--models): quality on real photos cannot be scored; the "
              "untrained presets are timed only (weights do not change size or latency).")
    else:
        print("\nNo --people-root: quality on real photos not scored.")
    if not any(row.is_mediapipe for row in rows):
        print("\nMediaPipe's model was not available: no ratios.")


# === Command line ===


def parse_size(text):
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be HxW, e.g. 256x256. Received: {text!r}"
        ) from None
    return height, width


def _list(convert=str):
    return lambda text: [convert(v) for v in text.split(",") if v]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--models", nargs="+", default=[], help="trained portrait .keras files to export, "
        "each PATH (at every --sizes) or PATH=HxW (at that size only, e.g. a teacher)")
    add("--presets", nargs="*", default=[], help="Google's VOC files (kerasseg.pretrained "
        "presets, from KERASSEG_HOME) scored zero-shot: person where they say person")
    add("--people-root", default=None, help="the people dataset folder: scores quality")
    add("--split", default="test", choices=("test", "val"), help="photos scored")
    add("--calibration-images", type=int, default=64, help="training photos for int8")
    add("--per-tensor-weights", action="store_true", help="int8 weights with one scale per "
        "tensor, not per channel: smaller files, held to the same agreement guarantee")
    add("--configs", type=_list(), default=None, help="comma-separated PORTRAIT_CONFIGS "
        "(untrained, timed only); default: all four without --models, none with them")
    add("--sizes", type=_list(parse_size), default="256x256,144x256", help="comma-separated HxW")
    add("--quantizations", type=_list(), default="fp16,int8")
    add("--threads", type=_list(int), default="1,2")
    add("--rounds", type=int, default=15, help="interleaved timing rounds")
    add("--invocations", type=int, default=10, help="invocations per round")
    add("--statistic", choices=("min", "median"), default="min",
        help="per-model summary of the rounds: min (best round; robust to other processes on "
        "a shared machine) or median")
    add("--mediapipe-model", default=None,
        help="selfie_segmentation.tflite (256x256); default: from the wheel")
    add("--mediapipe-landscape-model", default=None,
        help="selfie_segmentation_landscape.tflite (144x256)")
    add("--cache-dir", default=None, help="where MediaPipe's files are kept")
    add("--keep", default=None, help="folder to keep our .tflite files in")
    return parser


def check_args(parser, args):
    """Fills defaults that depend on other arguments; `parser.error` on bad ones."""
    from kerasseg.models.portrait import PORTRAIT_CONFIGS

    if args.configs is None:
        args.configs = [] if args.models else _list()(DEFAULT_CONFIGS)
    for config in args.configs:
        if config not in PORTRAIT_CONFIGS:
            parser.error(f"--configs: unknown {config!r}; choose from {sorted(PORTRAIT_CONFIGS)}")
    for path in [*(parse_model(m)[0] for m in args.models), args.mediapipe_model,
                 args.mediapipe_landscape_model]:
        if path and not os.path.isfile(path):
            parser.error(f"file not found: {path!r}")
    if args.people_root and not os.path.isdir(args.people_root):
        parser.error(f"--people-root: no such folder {args.people_root!r}")


def resolve_mediapipe(args):
    """{size: MediaPipe .tflite}: the given files, else those of the wheel."""
    given = {(256, 256): args.mediapipe_model, (144, 256): args.mediapipe_landscape_model}
    mediapipe = {size: path for size, path in given.items() if path}
    if any(size in MEDIAPIPE_FILES and size not in mediapipe for size in args.sizes):
        mediapipe = {**fetch_mediapipe(cache_dir(args.cache_dir)), **mediapipe}
    return mediapipe


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    mediapipe = resolve_mediapipe(args)
    folder = args.keep or tempfile.mkdtemp(prefix="kerasseg_portrait_")
    os.makedirs(folder, exist_ok=True)
    rows = build_rows(args, args.sizes, mediapipe, folder)
    scores = {}
    if args.people_root and (args.models or args.presets):
        scores = score_rows(rows, people_photos(args.people_root, args.split))
    latency, notes = time_rows(rows, args.threads, args.rounds, args.invocations,
                               args.statistic)
    print_report(rows, latency, notes, scores, args)
    print(f"\nOur .tflite files: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
