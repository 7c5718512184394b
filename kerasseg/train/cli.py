"""`kerasseg train`, `kerasseg evaluate` and `kerasseg predict`.

    kerasseg train --config run.yaml --set training.epochs=5 --output-dir runs/a
    kerasseg evaluate --model runs/a/model.keras --tile-size 96 96 --scales 0.75 1 1.25 --flip
    kerasseg predict --model runs/a/model.keras photos/ --output-dir predictions

`evaluate` reads its dataset from the run's `config.yaml` next to the model
(or `--config`), prints the metrics table and writes `metrics.json`,
`confusion.png` and overlays into `--output-dir`. For a panoptic model (a
dict of outputs, as LPSNet) it runs the panoptic head and prints PQ, SQ, RQ
(all, things, stuff, per class) and the semantic output's scores; its
overlays show image | ground truth | panoptic prediction, instances in shades
of their category's colour. `predict` writes, per input
image, `<name>_labels.png` (class ids) and `<name>_overlay.png`.

The three commands share this module: `kerasseg.cli` gives each its own
sub-parser, whose `prog` ends with the command name.
"""

import json
import os

import numpy as np
import yaml

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def add_arguments(parser):
    command = parser.prog.split()[-1]
    if command == "train":
        parser.add_argument("--config", help="YAML or JSON config file (defaults if omitted)")
        parser.add_argument("--output-dir", help="run directory (overrides training.output_dir)")
        parser.add_argument("--epochs", type=int, help="overrides training.epochs")
        parser.add_argument(
            "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
            help="override one config value (YAML syntax), e.g. --set optimizer.name=adamw",
        )
        return
    parser.add_argument("--model", required=True, help="trained model (.keras)")
    if command == "evaluate":
        parser.add_argument("--config", help="run config (default: config.yaml beside --model)")
        parser.add_argument("--split", help="split to evaluate (default: data.val_split)")
        parser.add_argument("--num-overlays", type=int, default=8,
                            help="overlay pictures to save")
        parser.add_argument("--score-threshold", type=float,
                            help="panoptic models: detection score threshold of the merge")
    else:
        parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--output-dir", default="predictions" if command == "predict"
                        else None, help="where pictures and metrics go")
    parser.add_argument("--tile-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="sliding-window inference with tiles of this size")
    parser.add_argument("--overlap", type=float, default=1 / 3, help="tile overlap fraction")
    parser.add_argument("--weighting", default="gaussian", choices=("gaussian", "uniform"),
                        help="tile blending window")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0],
                        help="multi-scale inference: resize factors to average over")
    parser.add_argument("--flip", action="store_true", help="also average the mirrored image")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")


def run(args):
    return {"train": _train, "evaluate": _evaluate, "predict": _predict}[args.command](args)


def inference_options(args):
    return {
        "tile_size": tuple(args.tile_size) if args.tile_size else None,
        "overlap": args.overlap,
        "weighting": args.weighting,
        "scales": tuple(args.scales),
        "flip": args.flip,
    }


def load_model(path):
    """Loads a kerasseg `.keras` model (safe mode, not compiled)."""
    from kerasseg.saving import load_model as load_kerasseg_model

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--model: no such file: {path}")
    return load_kerasseg_model(path)


def save_evaluation(result, output_dir):
    """Writes the scores of `kerasseg.train.evaluate` as `metrics.json` (NaN as null)
    and the confusion matrix as `confusion.png` into `output_dir`."""
    from kerasseg import visualize

    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w") as file:
        json.dump(_jsonable(result), file, indent=1)
    class_names = list(result["per_class_iou"])
    visualize.save_image(os.path.join(output_dir, "confusion.png"),
                         visualize.confusion_matrix_image(result["confusion"], class_names))


def save_overlays(model, dataset, output_dir, count, palette=None, alpha=0.5, **options):
    """Saves `count` pictures image | ground truth | prediction overlay; returns their paths."""
    from kerasseg import inference, visualize

    paths = []
    for image, mask in dataset.unbatch().take(count) if _is_batched(dataset) else (
            dataset.take(count)):
        image, mask = np.asarray(image), np.asarray(mask)
        labels = inference.predict(model, image, **options).argmax(-1)
        picture = visualize.side_by_side(
            image.astype(np.uint8),
            visualize.overlay(image, mask, palette, alpha),
            visualize.overlay(image, labels, palette, alpha),
        )
        path = os.path.join(output_dir, "overlays", f"{len(paths):03d}.png")
        paths.append(visualize.save_image(path, picture))
    return paths


def _train(args):
    from kerasseg.train import Config, train

    config = Config.load(args.config) if args.config else Config()
    changes = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set expects SECTION.KEY=VALUE. Received: {item!r}")
        changes.setdefault(section, {})[field] = yaml.safe_load(value)
    if args.output_dir:
        changes.setdefault("training", {})["output_dir"] = args.output_dir
    if args.epochs:
        changes.setdefault("training", {})["epochs"] = args.epochs
    result = train(config.replace(**changes) if changes else config)
    print(f"Run directory: {result.run_dir}")
    return 0


def _evaluate(args):
    from kerasseg.metrics import scores_table
    from kerasseg.train import Config, evaluate, resolve_num_classes, split_dataset

    config_path = args.config or os.path.join(os.path.dirname(args.model), "config.yaml")
    config = Config.load(config_path) if os.path.isfile(config_path) else Config()
    model = load_model(args.model)
    split = args.split or config.data.val_split
    if isinstance(model.output, dict):
        return _evaluate_panoptic(args, config, model, split)
    num_classes = resolve_num_classes(config)
    dataset = split_dataset(config, split)
    options = inference_options(args)
    class_names, palette = _names_and_palette(config, num_classes)
    result = evaluate(model, dataset, num_classes, config.data.ignore_label, class_names,
                      **options)
    print(scores_table(result))
    output_dir = args.output_dir or os.path.join(os.path.dirname(args.model), f"eval_{split}")
    save_evaluation(result, output_dir)
    save_overlays(model, dataset, output_dir, args.num_overlays, palette, args.alpha, **options)
    print(f"Wrote metrics.json, confusion.png and overlays/ to {output_dir}")
    return 0


def _evaluate_panoptic(args, config, model, split):
    from kerasseg.metrics import scores_table
    from kerasseg.panoptic.data import evaluate_panoptic
    from kerasseg.train import _panoptic_split

    if config.task != "panoptic":
        raise ValueError(f"--model is a panoptic model but its config trains model.name="
                         f"{config.model.name!r}; pass the run's config with --config.")
    if args.tile_size or list(args.scales) != [1.0] or args.flip:
        raise ValueError("--tile-size, --scales and --flip apply to semantic models only; "
                         f"{args.model} is panoptic.")
    dataset, num_classes, thing_classes = _panoptic_split(config, split)
    channels = model.output["class_logits"].shape[-1]
    if channels != len(thing_classes):
        raise ValueError(f"--model has {channels} thing classes, the {config.data.dataset!r} data "
                         f"{len(thing_classes)} ({thing_classes}).")
    class_names, palette = _names_and_palette(config, num_classes)
    options = {} if args.score_threshold is None else {"score_threshold": args.score_threshold}
    result = evaluate_panoptic(model, dataset, num_classes, thing_classes,
                               class_names=class_names, **options)
    print(panoptic_table(result, thing_classes, class_names))
    print(scores_table(result["semantic"]))
    output_dir = args.output_dir or os.path.join(os.path.dirname(args.model), f"eval_{split}")
    save_evaluation(result["semantic"], output_dir)
    # metrics.json again, with the panoptic scores around the semantic ones.
    with open(os.path.join(output_dir, "metrics.json"), "w") as file:
        json.dump(_jsonable(result), file, indent=1)
    save_panoptic_overlays(model, dataset, output_dir, args.num_overlays, thing_classes,
                           palette, args.alpha, **options)
    print(f"Wrote metrics.json, confusion.png and overlays/ to {output_dir}")
    return 0


def panoptic_table(result, thing_classes, class_names=None):
    """A plain-text table of `kerasseg.panoptic.evaluate_panoptic` output."""
    lines = [f"{'panoptic':<24}{'PQ':>8}{'SQ':>8}{'RQ':>8}"]
    for suffix, label in (("", "all"), ("_things", "things"), ("_stuff", "stuff")):
        lines.append(f"{label:<24}" + "".join(f"{result[k + suffix]:>8.4f}"
                                              for k in ("pq", "sq", "rq")))
    lines.append(f"{'class':<24}{'PQ':>8}{'SQ':>8}{'RQ':>8}{'kind':>8}")
    for index in range(len(result["per_class_pq"])):
        name = class_names[index] if class_names else str(index)
        kind = "thing" if index in thing_classes else "stuff"
        lines.append(f"{name:<24}" + "".join(
            f"{result['per_class_' + k][index]:>8.4f}" for k in ("pq", "sq", "rq")) + f"{kind:>8}")
    return "\n".join(lines)


def save_panoptic_overlays(model, dataset, output_dir, count, thing_classes, palette=None,
                           alpha=0.5, **merge_options):
    """Saves `count` pictures image | ground truth | panoptic prediction; returns their paths."""
    from kerasseg import visualize
    from kerasseg.panoptic import panoptic_merge

    paths = []
    for image, truth in dataset.take(count).as_numpy_iterator():
        outputs = {k: np.asarray(v)[0] for k, v in model(image[None], training=False).items()}
        prediction = panoptic_merge(outputs["semantic"], outputs["class_logits"],
                                    outputs["boxes"], outputs["borderness"], thing_classes,
                                    **merge_options)
        picture = visualize.side_by_side(
            image.astype(np.uint8),
            *(_panoptic_overlay(image, ids, palette, alpha) for ids in (truth, prediction)),
        )
        path = os.path.join(output_dir, "overlays", f"{len(paths):03d}.png")
        paths.append(visualize.save_image(path, picture))
    return paths


def _panoptic_overlay(image, panoptic, palette, alpha):
    """Category colours over `image`, each thing instance in its own shade; void uncoloured."""
    from kerasseg import visualize
    from kerasseg.panoptic import LABEL_DIVISOR

    panoptic = np.asarray(panoptic)
    categories = np.where(panoptic < 0, 255, panoptic // LABEL_DIVISOR)
    colours = visualize.colorize(categories, palette).astype(np.float32)
    # Instances 1, 2, 3, ... alternate between four brightness levels.
    instance = np.where(panoptic < 0, 0, panoptic % LABEL_DIVISOR)
    shade = np.where(instance > 0, 1.0 - 0.2 * ((instance - 1) % 4), 1.0)[..., None]
    blend = np.where((panoptic < 0)[..., None], 0.0, alpha)
    image = np.clip(np.asarray(image, np.float32), 0, 255)
    return np.rint(image * (1 - blend) + colours * shade * blend).astype(np.uint8)


def _predict(args):
    import cv2

    from kerasseg import inference, visualize

    paths = []
    for item in args.inputs:
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, name) for name in os.listdir(item)
                            if name.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"inputs: no such file or folder: {item}")
    if not paths:
        raise ValueError(f"inputs: no images ({', '.join(IMAGE_EXTENSIONS)}) in {args.inputs}")
    model = load_model(args.model)
    if isinstance(model.output, dict):
        raise ValueError(f"{args.model} is a panoptic model: `predict` writes semantic label "
                         "maps; use `kerasseg evaluate` or kerasseg.panoptic.panoptic_merge.")
    options = inference_options(args)
    os.makedirs(args.output_dir, exist_ok=True)
    palette = None
    for path in paths:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"Cannot read image {path}")
        image = bgr[..., ::-1].astype(np.float32)
        labels = inference.predict(model, image, **options).argmax(-1).astype(np.uint8)
        if palette is None:
            palette = visualize.voc_palette(max(int(model.output_shape[-1]), 2))
        stem = os.path.splitext(os.path.basename(path))[0]
        cv2.imwrite(os.path.join(args.output_dir, f"{stem}_labels.png"), labels)
        visualize.save_image(os.path.join(args.output_dir, f"{stem}_overlay.png"),
                             visualize.overlay(image, labels, palette, args.alpha))
    print(f"Wrote {len(paths)} label maps and overlays to {args.output_dir}")
    return 0


def _names_and_palette(config, num_classes):
    if config.data.dataset == "synthetic":
        from kerasseg.data.synthetic import CLASS_NAMES, PALETTE

        return list(CLASS_NAMES), PALETTE
    from kerasseg.visualize import voc_palette

    return None, voc_palette(num_classes)


def _is_batched(dataset):
    return len(dataset.element_spec[1].shape) == 3


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(item) for item in np.asarray(value).tolist()]
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
