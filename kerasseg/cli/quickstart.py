"""`kerasseg quickstart`: the first command to run.

Trains a small DeepLabv3+ (MobileNetV2 at width 0.35, the default model of
`kerasseg.train.ModelConfig`) on the embedded synthetic street scenes on the
CPU in a few minutes, evaluates it on the validation split, prints the
metrics table, saves overlays and the confusion matrix, and exports the model
to TFLite and checks the exported file against Keras.

    kerasseg quickstart --output-dir quickstart_output

Everything lands in the output directory: the training run (`config.yaml`,
`metrics.csv`, `metrics.json`, `logs/`, `model.keras`), `eval/` (metrics,
`confusion.png`, `overlays/`) and `model.tflite`.
"""

import os
import time

import numpy as np

STEPS = ("train", "evaluate", "export")


def quickstart_config(output_dir="quickstart_output", epochs=None, fast=False):
    """The quickstart's training config; `fast` is a seconds-long run for tests."""
    from kerasseg.train import Config

    if fast:
        data = {"image_size": [64, 64], "num_train_images": 32, "num_val_images": 8,
                "batch_size": 8}
        training = {"epochs": epochs or 1, "steps_per_epoch": 4, "validate": False}
    else:
        data = {"image_size": [128, 128], "num_train_images": 512, "num_val_images": 64,
                "batch_size": 16}
        training = {"epochs": epochs or 6}
    return Config.from_dict({
        "model": {"bn_momentum": 0.9},
        "data": {"dataset": "synthetic", **data},
        "optimizer": {"name": "adamw", "learning_rate": 3e-3, "weight_decay": 1e-4,
                      "warmup_steps": 20},
        "training": {"output_dir": os.fspath(output_dir), "checkpoint_every": 50,
                     "strategy": "default", "precision": "float32", **training},
    }, source="quickstart")


def quickstart(output_dir="quickstart_output", epochs=None, fast=False, num_overlays=8):
    """Runs the quickstart steps; returns a dict of what each produced.

    Args:
        output_dir: Folder for every output.
        epochs: Training epochs; None uses the quickstart default.
        fast: A tiny run (64x64 images, a few steps) for smoke tests.
        num_overlays: Number of overlay pictures to save.

    Returns:
        A dict with "train" (`TrainResult`), "evaluate" (scores) and
        "export" (TFLite path and label agreement with Keras),
        and "seconds" per step.
    """
    from kerasseg.cli.reports import baseline_verdict, save_evaluation, save_overlays
    from kerasseg.data.synthetic import CLASS_NAMES, PALETTE
    from kerasseg.metrics import scores_table
    from kerasseg.train import evaluate, split_dataset, train

    config = quickstart_config(output_dir, epochs, fast)
    results, seconds = {}, {}

    # === Train ===
    data, training = config.data, config.training
    print(f"kerasseg quickstart: 1/3 training {config.model.name} "
          f"({config.model.args['backbone']}) on {data.num_train_images} synthetic "
          f"{data.image_size[0]}x{data.image_size[1]} street scenes for {training.epochs} "
          f"epoch(s) into {output_dir}", flush=True)
    start = time.perf_counter()
    trained = train(config, overwrite=True)  # a rerun of the demo replaces its folder
    results["train"], seconds["train"] = trained, time.perf_counter() - start
    model = trained.model

    # === Evaluate ===
    print(f"kerasseg quickstart: 2/3 evaluating on {data.num_val_images} validation scenes",
          flush=True)
    start = time.perf_counter()
    dataset = split_dataset(config, config.data.val_split)
    scores = evaluate(model, dataset, len(CLASS_NAMES), config.data.ignore_label, CLASS_NAMES)
    eval_dir = os.path.join(output_dir, "eval")
    save_evaluation(scores, eval_dir)
    save_overlays(model, dataset, eval_dir, num_overlays, PALETTE)
    results["evaluate"], seconds["evaluate"] = scores, time.perf_counter() - start
    print(scores_table(scores))
    verdict = baseline_verdict(scores)
    if verdict:
        print(verdict)

    # === Export ===
    print("kerasseg quickstart: 3/3 exporting to TFLite and running the file without "
          "TensorFlow", flush=True)
    start = time.perf_counter()
    results["export"] = _export(model, dataset, config, output_dir, CLASS_NAMES, PALETTE)
    seconds["export"] = time.perf_counter() - start

    results["seconds"] = seconds
    print("Seconds: " + ", ".join(f"{step} {seconds[step]:.1f}" for step in STEPS))
    print(f"Outputs in {output_dir}: model.keras, eval/metrics.json, eval/confusion.png, "
          "eval/overlays/, model.tflite")
    return results


def _export(model, dataset, config, output_dir, class_names, palette):
    """TFLite export, then the exported file run by `kerasseg.runtime` vs Keras."""
    from kerasseg import export, runtime

    path = os.path.join(output_dir, "model.tflite")
    export.to_tflite(model, path, image_size=config.data.image_size,
                     labels=list(class_names), palette=np.asarray(palette).tolist())
    segmenter = runtime.Segmenter.load(path)
    images = np.stack([np.asarray(image) for image, _ in dataset.take(4)])
    exported = segmenter.predict(images)
    expected = np.argmax(np.asarray(model.predict(images, verbose=0)), -1)
    agreement = float(np.mean(exported == expected))
    print(f"Exported {path}: labels agree with Keras on {100 * agreement:.2f}% of pixels")
    return {"path": path, "agreement": agreement}


def add_arguments(parser):
    parser.add_argument("--output-dir", default="quickstart_output", help="where outputs go")
    parser.add_argument("--epochs", type=int, help="training epochs (default 6)")
    parser.add_argument("--fast", action="store_true", help="tiny run, for smoke tests")


def run(args):
    quickstart(args.output_dir, epochs=args.epochs, fast=args.fast)
    return 0
