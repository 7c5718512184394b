"""Arguments several commands share: the run config with overrides, the
inference options, and loading the model to run."""

import os

import yaml

from kerasseg.configs import list_recipes, recipe_path


def add_config_arguments(parser, required):
    """`--config FILE` and repeatable `--set SECTION.KEY=VALUE` overrides."""
    parser.add_argument("--config", required=required,
                        help="YAML or JSON config file, or a recipe name such as camvid_segnet"
                             + ("" if required else " (defaults if omitted)"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value (YAML syntax), e.g. --set optimizer.name=adamw; "
             "a mapping merges: --set 'model.args={decoder_filters: 32}' or "
             "--set model.args.decoder_filters=32",
    )


def recipe_or_path(config):
    """`--config`: a file, or the name of a shipped recipe (`kerasseg.configs`)."""
    if not os.path.exists(config) and config.removesuffix(".yaml") in list_recipes():
        return recipe_path(config)
    return config


def load_config(args):
    """The config of `--config` with `--set` (and, where the command has them,
    `--output-dir` and `--epochs`) applied."""
    from kerasseg.train import Config

    config = Config.load(recipe_or_path(args.config)) if args.config else Config()
    changes = parse_overrides(args.set, config.to_dict())
    if getattr(args, "output_dir", None):
        changes.setdefault("training", {})["output_dir"] = args.output_dir
    if getattr(args, "epochs", None):
        changes.setdefault("training", {})["epochs"] = args.epochs
    return config.replace(**changes) if changes else config


def parse_overrides(items, values):
    """{section: {key: value}} of `--set` items over the config `values` (a dict
    of sections). A mapping merges into the mapping it replaces, and a longer
    key reaches inside one: `--set 'model.args={decoder_filters: 32}'` and
    `--set model.args.decoder_filters=32` change one builder argument and keep
    the others."""
    changes = {}
    for item in items:
        key, sep, text = item.partition("=")
        path = key.split(".")
        if not sep or len(path) < 2 or not all(path):
            raise ValueError(f"--set expects SECTION.KEY=VALUE. Received: {item!r}")
        section, field, inner = path[0], path[1], path[2:]
        current = changes.get(section, {}).get(field, values.get(section, {}).get(field))
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"--set {item!r}: the value is not YAML ({error})") from None
        for name in reversed(inner):
            value = {name: value}
        changes.setdefault(section, {})[field] = _merged(current, value)
    return changes


def _merged(current, value):
    """`value` over `current`: mappings merge key by key, anything else replaces."""
    if not isinstance(current, dict) or not isinstance(value, dict):
        return value
    merged = dict(current)
    for key, item in value.items():
        merged[key] = _merged(current.get(key), item)
    return merged


def add_inference_arguments(parser):
    """The inference options `evaluate` and `predict` share."""
    parser.add_argument("--tile-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="sliding-window inference with tiles of this size")
    parser.add_argument("--overlap", type=float, default=1 / 3, help="tile overlap fraction")
    parser.add_argument("--weighting", default="gaussian", choices=("gaussian", "uniform"),
                        help="tile blending window")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0],
                        help="multi-scale inference: resize factors to average over")
    parser.add_argument("--flip", action="store_true", help="also average the mirrored image")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")


def inference_options(args):
    return {
        "tile_size": tuple(args.tile_size) if args.tile_size else None,
        "overlap": args.overlap,
        "weighting": args.weighting,
        "scales": tuple(args.scales),
        "flip": args.flip,
    }


def load_predictor(path):
    """A `.keras` model (safe mode, not compiled), a preset's Keras model by
    name (`kerasseg pretrained` lists them), or an exported file as a
    `kerasseg.runtime.Segmenter`."""
    from kerasseg.pretrained import is_preset
    from kerasseg.runtime import Segmenter
    from kerasseg.saving import check_model_file, load_model

    if not os.path.exists(path) and is_preset(path):
        from kerasseg.models.presets import from_preset

        return from_preset(path)
    check_model_file(path, "a .keras, .tflite, .onnx or .engine file, or a preset name "
                     "(kerasseg pretrained)")
    if path.lower().endswith(".keras"):
        return load_model(path)
    return Segmenter.load(path)


def is_panoptic(model):
    """Whether `model` is a Keras model with a dict of outputs (LPSNet)."""
    return isinstance(getattr(model, "output", None), dict)


def model_classes(model):
    """The classes `model` scores (a one-channel foreground model scores 2),
    or None when it does not say (a labels-only export without metadata)."""
    from kerasseg.runtime import Segmenter

    if isinstance(model, Segmenter):
        if model.output_kinds[model.backend.outputs[0].name] == "labels":
            return model.num_classes
        channels = model.output_channels
    else:
        shape = model.output_shape
        channels = shape[-1] if isinstance(shape, tuple) else None  # several outputs: unknown
    return max(channels, 2) if isinstance(channels, int) else None


def add_options(parser, options):
    """Adds `options`, (flag, `add_argument` keywords) pairs, to `parser`."""
    for flag, keywords in options:
        parser.add_argument(flag, **keywords)
