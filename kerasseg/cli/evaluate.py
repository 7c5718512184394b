"""`kerasseg evaluate`: score a model on a split of its run's dataset.

    kerasseg evaluate --model runs/a/model.keras --tile-size 96 96 --scales 0.75 1 1.25 --flip
    kerasseg evaluate --model camvid_int8.tflite --config runs/camvid/config.yaml --split test

The dataset comes from the run's `config.yaml` next to the model (or
`--config`, which must exist); with neither, the built-in synthetic scenes,
as the first line says. A model whose class count differs from the data's is
refused. `--model` is a `.keras` file or an exported `.tflite`/`.onnx`/
`.engine` (run by `kerasseg.runtime.Segmenter`); both go through the same
sliding-window / multi-scale / flip inference. It prints the metrics table
(and says so when the model does no better than predicting the majority
class), and writes `metrics.json`, `confusion.png` and overlays into
`--output-dir`. For a panoptic model (a dict of outputs, as LPSNet) it runs
the panoptic head and prints PQ, SQ, RQ (all, things, stuff, per class) and
the semantic output's scores; its overlays show image | ground truth |
panoptic prediction, instances in shades of their category's colour.
"""

import os

from kerasseg.cli.options import (
    add_inference_arguments,
    inference_options,
    is_panoptic,
    load_predictor,
    model_classes,
)


def add_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="trained model (.keras) or exported file (.tflite, .onnx, .engine)")
    parser.add_argument("--config", help="run config (default: config.yaml beside --model)")
    parser.add_argument("--split", help="split to evaluate (default: data.val_split)")
    parser.add_argument("--num-overlays", type=int, default=8, help="overlay pictures to save")
    parser.add_argument("--score-threshold", type=float,
                        help="panoptic models: detection score threshold of the merge")
    parser.add_argument("--output-dir", help="where pictures and metrics go "
                                             "(default: eval_<split> beside --model)")
    add_inference_arguments(parser)


def run(args):
    from kerasseg.train import Config

    beside = os.path.join(os.path.dirname(args.model), "config.yaml")
    if args.config:  # a missing --config is an error (Config.load says so)
        config = Config.load(args.config)
    elif os.path.isfile(beside):
        config = Config.load(beside)
    else:
        config = Config()
        print(f"No --config and no config.yaml beside {args.model}: scoring the built-in "
              "synthetic scenes (pass the run's config with --config to score its data).")
    model = load_predictor(args.model)
    split = args.split or config.data.val_split
    output_dir = args.output_dir or os.path.join(os.path.dirname(args.model), f"eval_{split}")
    if is_panoptic(model):
        return _evaluate_panoptic(args, config, model, split, output_dir)
    return _evaluate_semantic(args, config, model, split, output_dir)


def _evaluate_semantic(args, config, model, split, output_dir):
    from kerasseg.cli import reports
    from kerasseg.metrics import scores_table
    from kerasseg.train import TASKS, evaluate

    task = TASKS[config.task]
    data = task.split(config, split)
    options = inference_options(args)
    classes = task.mask_classes(data)
    own = model_classes(model)
    if own is not None and own != classes:
        raise ValueError(
            f"--model scores {own} classes, the {config.data.dataset!r} data has {classes}: "
            "evaluate a model on the data it was trained for (--config: the run's config.yaml)."
        )
    class_names, palette = reports.names_and_palette(config, classes)
    result = evaluate(model, data.dataset, classes, config.data.ignore_label, class_names,
                      **options)
    print(scores_table(result))
    verdict = reports.baseline_verdict(result)
    if verdict:
        print(verdict)
    reports.save_evaluation(result, output_dir)
    reports.save_overlays(model, data.dataset, output_dir, args.num_overlays, palette,
                          args.alpha, **options)
    print(f"Wrote metrics.json, confusion.png and overlays/ to {output_dir}")
    return 0


def _evaluate_panoptic(args, config, model, split, output_dir):
    from kerasseg.cli import reports
    from kerasseg.metrics import scores_table
    from kerasseg.panoptic import evaluate_panoptic
    from kerasseg.train import load_split

    if config.task != "panoptic":
        raise ValueError(f"--model is a panoptic model but its config trains model.name="
                         f"{config.model.name!r}; pass the run's config with --config.")
    if args.tile_size or list(args.scales) != [1.0] or args.flip:
        raise ValueError("--tile-size, --scales and --flip apply to semantic models only; "
                         f"{args.model} is panoptic.")
    data = load_split(config, split)
    channels = model.output["class_logits"].shape[-1]
    if channels != len(data.thing_classes):
        raise ValueError(f"--model has {channels} thing classes, the {config.data.dataset!r} "
                         f"data {len(data.thing_classes)} ({data.thing_classes}).")
    class_names, palette = reports.names_and_palette(config, data.num_classes)
    options = {} if args.score_threshold is None else {"score_threshold": args.score_threshold}
    result = evaluate_panoptic(model, data.dataset, data.num_classes, data.thing_classes,
                               class_names=class_names, **options)
    print(reports.panoptic_table(result, data.thing_classes, class_names))
    print(scores_table(result["semantic"]))
    reports.save_evaluation(result["semantic"], output_dir)
    # metrics.json again, with the panoptic scores around the semantic ones.
    reports.write_json(os.path.join(output_dir, "metrics.json"), result)
    reports.save_panoptic_overlays(model, data.dataset, output_dir, args.num_overlays,
                                   data.thing_classes, palette, args.alpha, **options)
    print(f"Wrote metrics.json, confusion.png and overlays/ to {output_dir}")
    return 0
