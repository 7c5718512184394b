"""`kerasseg export`: a saved `.keras` model -> SavedModel, TFLite, ONNX or TensorRT.

int8 (and `--precision auto`) calibrate and validate on images at the export
size from the data the model was trained on: the splits of the run's
`config.yaml` beside the model (or `--config`), labelled validation images
making the guarantee a bound on the task metric's loss. `--calibration` and
`--validation` name other images.

Examples:
    kerasseg export run/model.keras m.tflite --image-size 512 512 --precision int8
    kerasseg export model.keras m.tflite --precision int8 --calibration synthetic
    kerasseg export model.keras m.tflite --image-size 256 256 --precision auto
    kerasseg export model.keras model.onnx --image-size 512 512 --nchw
    kerasseg export model.keras model_int8.onnx --image-size 512 512 --nchw --precision int8 \\
        --calibration calib_frames/ --validation labelled/
    kerasseg export model.keras exported/1 --format saved_model --output labels
"""

import os
import sys

from kerasseg.cli.options import add_options
from kerasseg.export import formats

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# Validation images read from a split (the guarantee's held-out set).
VALIDATION_IMAGES = 32
# The options of every format; each format's own come from its record.
OPTIONS = (
    ("--image-size", {"type": int, "nargs": 2, "metavar": ("HEIGHT", "WIDTH")}),
    ("--output", {"choices": ("logits", "probabilities", "labels"),
                  "help": "default: what the model returns (probabilities for a model ending "
                          "in an activation, such as a portrait model's sigmoid)"}),
    ("--quantization", {"choices": ("fp16", "dynamic", "int8"),
                        "help": "deprecated: use --precision"}),
    ("--calibration", {"metavar": "DIR|synthetic|SPLIT",
                       "help": "int8 calibration images: a folder of images, 'synthetic', or a "
                               "split of the run's dataset (default: its training split)"}),
    ("--validation", {"metavar": "DIR|synthetic|SPLIT",
                      "help": "labelled images the int8 guarantee is measured on (task "
                              "metric): a folder with images/ and masks/, 'synthetic', or a "
                              "split of the run's dataset (default: its validation split; "
                              "without a run, a quarter of the calibration images, by label "
                              "agreement)"}),
    ("--calibration-steps", {"type": int, "default": 100, "help": "calibration images read"}),
    ("--min-agreement", {"type": float, "default": 0.98, "metavar": "FRACTION",
                         "help": "int8 on unlabelled images: share of clear-margin pixels "
                                 "whose label must match the Keras model's (0: no check)"}),
    ("--max-metric-loss", {"type": float, "default": 0.5, "metavar": "POINTS",
                           "help": "int8 on labelled images: mIoU (IoU) points it may lose"}),
    ("--labels", {"help": "text file with one class name per line (default: the classes and "
                          "colours of the run's config)"}),
    ("--config", {"help": "run config naming the dataset (default: config.yaml beside the "
                          "model)"}),
)


def precisions():
    """Every `--precision` some format takes, in the table's order, "auto" last."""
    table = formats.EXPORT_FORMATS.values()
    names = tuple(dict.fromkeys(name for record in table for name in record.precisions))
    return names + (("auto",) if any(record.auto for record in table) else ())


def add_arguments(parser):
    table = formats.EXPORT_FORMATS
    endings = ", ".join(ending for record in table.values() for ending in record.extensions)
    folder = next(record.name for record in table.values() if record.folder)
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("output_path", help=f"{endings} or a directory")
    parser.add_argument("--format", choices=tuple(table),
                        help="default: from the output file's extension, in any case "
                             f"(directory: {folder})")
    per_format = "; ".join(f"{record.name}: " + ", ".join(
        f"{name} (default)" if name == record.default_precision else name
        for name in record.accepted_precisions) for record in table.values())
    parser.add_argument("--precision", choices=precisions(),
                        help=f"{per_format}; auto: the fastest on this machine that meets the "
                             "accuracy target")
    add_options(parser, OPTIONS)
    for option, names in formats.options():
        # The help names the formats that take the option.
        parser.add_argument(option.flag, **{**option.parser,
                                            "help": f"{', '.join(names)}: {option.parser['help']}"})


def output_format(args):
    """The export format: --format, else the output path's extension, in any case."""
    return args.format or formats.format_of_path(args.output_path)


def check_output_path(path, fmt):
    """Refuses, before any conversion, an output the export could not write."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ValueError(f"output path {path!r}: its folder {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"output path {path!r}: its folder {parent!r} is not writable")
    if not formats.EXPORT_FORMATS[fmt].folder and os.path.isdir(path):
        raise ValueError(f"output path {path!r} is a folder; a {fmt} export writes a file")


def _precision(args, fmt):
    if args.quantization:
        print("kerasseg export: --quantization is deprecated; use --precision "
              f"{args.quantization}", file=sys.stderr)
        if args.precision and args.precision != args.quantization:
            raise ValueError(f"--quantization {args.quantization} and --precision "
                             f"{args.precision} disagree; pass --precision only")
    record = formats.EXPORT_FORMATS[fmt]
    precision = args.precision or args.quantization or record.default_precision
    if precision not in record.accepted_precisions:
        raise ValueError(f"--precision {precision} is not available for {fmt}; choose one of "
                         f"{', '.join(record.accepted_precisions)}")
    return precision


def run(args):
    from kerasseg.saving import load_model

    fmt = output_format(args)
    precision = _precision(args, fmt)
    check_output_path(args.output_path, fmt)
    model = load_model(args.model)
    config = _run_config(args)
    options = _common_options(args, model, config)
    if precision in ("int8", "auto"):
        options.update(_int8_data(args, model, config, fmt))
    if precision == "auto":
        return _auto(args, model, fmt, options)
    path = _export(fmt, model, args, precision, options)
    if path is None:
        return 1
    print(f"wrote {path} (metadata: {path.rstrip('/')}.json)")
    _print_int8_check(path)
    return 0


def _common_options(args, model, config):
    from kerasseg.inference import model_output_kind

    labels, palette = _class_names_and_colours(args, model, config)
    return {"output": args.output or model_output_kind(model), "labels": labels,
            "palette": palette, "image_size": tuple(args.image_size) if args.image_size else None}


def _export(fmt, model, args, precision, options, path=None):
    """Runs the converter of `fmt` with the keywords its record takes; None when
    it cannot run here (`ExporterUnavailableError`: its message is printed)."""
    record = formats.EXPORT_FORMATS[fmt]
    shared = {"image_size": options["image_size"], "output": options["output"],
              "labels": options["labels"], "palette": options["palette"],
              "precision": precision}
    if precision == "int8":
        shared.update(calibration_data=options["calibration_data"],
                      validation_data=options.get("validation_data"),
                      calibration_steps=args.calibration_steps,
                      min_agreement=args.min_agreement or None,
                      max_metric_loss=args.max_metric_loss)
    keywords = {key: shared[key] for key in record.takes if key in shared}
    keywords.update((option.keyword, option.value(args)) for option in record.options)
    try:
        return record.convert(model, path or args.output_path, **keywords)
    except formats.ExporterUnavailableError as error:
        print(error)
        return None


def _auto(args, model, fmt, options):
    from kerasseg.export import auto, int8
    from kerasseg.export.common import cpu_description

    size = options["image_size"] or tuple(model.inputs[0].shape[1:3])
    channels = int(model.inputs[0].shape[-1])
    images = int8.images(options["calibration_data"], options.get("validation_data"), size,
                         channels, args.calibration_steps, args.min_agreement or None)
    settings = int8.check_target(args.min_agreement or None, args.max_metric_loss,
                                 options["output"])
    cpu = cpu_description()
    print(f"precision auto: timing on {cpu['cpu']} ({' '.join(cpu['isa'])}), one thread")
    chosen, rows, measure = auto.fastest(
        lambda precision, path: _export(fmt, model, args, precision, options, path),
        args.output_path, fmt, model, images, settings)
    print(auto.describe(chosen, rows, measure))
    print(f"wrote {args.output_path} (metadata: {args.output_path}.json)")
    _print_int8_check(args.output_path)
    return 0


def _run_config(args):
    """The run's config (--config, else config.yaml beside the model), or None."""
    path = args.config or os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                       "config.yaml")
    if args.config and not os.path.isfile(path):
        raise FileNotFoundError(f"--config: no such file: {path}")
    if not os.path.isfile(path):
        return None
    from kerasseg.train import Config

    return Config.load(path)


def _int8_data(args, model, config, fmt):
    """{"calibration_data", "validation_data"} for an int8 (or auto) export."""
    from kerasseg.export.common import fixed_image_size

    source = args.calibration or (config.data.train_split if config else None)
    if source is None:
        raise ValueError("--precision int8 needs --calibration DIR|synthetic (no run config "
                         "beside the model names its data): images like the ones the model "
                         "will see set the int8 scales")
    size = fixed_image_size(model, tuple(args.image_size) if args.image_size else None)
    data = {"calibration_data": _images(source, "--calibration", config, size,
                                        args.calibration_steps, model)}
    validation = args.validation or (config.data.val_split if config else None)
    if validation is not None:
        data["validation_data"] = _images(validation, "--validation", config, size,
                                          VALIDATION_IMAGES, model, labelled=True)
    return data


def _images(source, flag, config, size, count, model, labelled=False):
    """Images (and masks, if `labelled`) at `size` from a folder, 'synthetic'
    or a split of the run's dataset."""
    import numpy as np

    if source == "synthetic":
        from kerasseg.data.synthetic import make_scene

        # Seeds far from the training scenes' for validation.
        first = 1_000_000 if labelled else 0
        scenes = [make_scene(first + i, *size) for i in range(count)]
        images = np.stack([scene["image"] for scene in scenes]).astype("float32")
        return (images, np.stack([scene["semantic"] for scene in scenes])) if labelled else images
    if os.path.isdir(source):
        if labelled:
            from kerasseg.data import folder_dataset

            classes = max(2, int(model.outputs[0].shape[-1]))
            return folder_dataset(source, None, classes).take(count)
        return _folder_images(source, size, count)
    if config is None:
        raise ValueError(f"{flag}: {source!r} is not a folder, 'synthetic' or a split of a run "
                         "config (no config.yaml beside the model; pass --config)")
    return _split(config, source, size, count)


def _split(config, split, size, count):
    """(image, mask) pairs of a split of the run's dataset; synthetic scenes are
    drawn at `size` (not resized from the training size)."""
    from kerasseg.train import split_dataset

    if config.data.dataset == "synthetic":
        config = config.replace(data={"image_size": list(size), "num_train_images": count,
                                      "num_val_images": count})
    return split_dataset(config, split).take(count)


def _folder_images(source, size, count):
    import cv2
    import numpy as np

    from kerasseg.runtime.image import resize_bilinear

    names = sorted(n for n in os.listdir(source) if n.lower().endswith(IMAGE_EXTENSIONS))[:count]
    if not names:
        raise ValueError(f"--calibration: no .png/.jpg/.bmp images in {source!r}")
    images = []
    for name in names:
        path = os.path.join(source, name)
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"--calibration: cannot read {path!r} as an image (corrupt or not "
                             "an image); remove it or replace it")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        images.append(resize_bilinear(rgb[None].astype("float32"), size))
    return np.concatenate(images)


def _class_names_and_colours(args, model, config):
    """(names, colours) for the sidecar: --labels, or the classes of the dataset the
    run's config names (CamVid's names and SegNet's palette, ...); None if unknown."""
    if args.labels:
        with open(args.labels) as f:
            return [line.strip() for line in f if line.strip()], None
    channels = int(model.outputs[0].shape[-1]) if len(model.outputs) == 1 else 0
    if config is None or channels < 2:
        return None, None  # no run config; a one-channel model is a foreground score
    from kerasseg.cli.reports import names_and_palette

    names, palette = names_and_palette(config, channels)
    return names, (None if names is None else palette[:channels])


def _print_int8_check(path):
    """The score an int8 export reached, its coverage and what it kept in float."""
    from kerasseg.export.int8 import describe
    from kerasseg.runtime.metadata import read_metadata

    metadata = read_metadata(path.rstrip("/"))
    record = (metadata or {}).get("quantization", {})
    if record.get("mode") == "int8":
        print(describe(record))
