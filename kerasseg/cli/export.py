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

FORMATS = ("saved_model", "tflite", "onnx", "tensorrt")
_EXTENSIONS = {".tflite": "tflite", ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt"}
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "auto")
# What `--precision auto` tries, per format.
AUTO_CANDIDATES = {"tflite": ("fp32", "fp16", "dynamic", "int8"), "onnx": ("fp32", "fp16", "int8")}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# Validation images read from a split (the guarantee's held-out set).
VALIDATION_IMAGES = 32


def add_arguments(parser):
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("output_path", help=".tflite, .onnx, .engine/.plan or a directory")
    parser.add_argument("--format", choices=FORMATS,
                        help="default: from the output file's extension, in any case "
                             "(directory: saved_model)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--output", choices=("logits", "probabilities", "labels"),
                        help="default: what the model returns (probabilities for a model "
                             "ending in an activation, such as a portrait model's sigmoid)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="default fp32 (TensorRT: fp16); dynamic: TFLite only; auto: the "
                             "fastest on this machine that meets the accuracy target")
    parser.add_argument("--quantization", choices=("fp16", "dynamic", "int8"),
                        help="deprecated: use --precision")
    parser.add_argument("--io-dtype", default="float32", choices=("float32", "uint8"),
                        help="TFLite input type (and output type with int8)")
    parser.add_argument("--calibration", metavar="DIR|synthetic|SPLIT",
                        help="int8 calibration images: a folder of images, 'synthetic', or a "
                             "split of the run's dataset (default: its training split)")
    parser.add_argument("--validation", metavar="DIR|synthetic|SPLIT",
                        help="labelled images the int8 guarantee is measured on (task metric): "
                             "a folder with images/ and masks/, 'synthetic', or a split of the "
                             "run's dataset (default: its validation split; without a run, a "
                             "quarter of the calibration images, by label agreement)")
    parser.add_argument("--calibration-steps", type=int, default=100,
                        help="calibration images read")
    parser.add_argument("--min-agreement", type=float, default=0.98, metavar="FRACTION",
                        help="int8 on unlabelled images: share of clear-margin pixels whose "
                             "label must match the Keras model's (0: no check)")
    parser.add_argument("--max-metric-loss", type=float, default=0.5, metavar="POINTS",
                        help="int8 on labelled images: mIoU (IoU) points it may lose")
    parser.add_argument("--per-tensor-weights", action="store_true",
                        help="TFLite int8: one scale per weight tensor instead of per channel "
                             "(a smaller file; the agreement check still applies)")
    parser.add_argument("--low-res-logits", action="store_true",
                        help="TFLite: output the logits at the network's output stride and "
                             "leave the resize to the image size to the runtime (faster)")
    parser.add_argument("--allow-flex-ops", action="store_true")
    parser.add_argument("--nchw", action="store_true", help="ONNX/TensorRT NCHW layout")
    parser.add_argument("--dynamic-shape", action="store_true", help="ONNX: dynamic batch/size")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--labels", help="text file with one class name per line (default: "
                                         "the classes and colours of the run's config)")
    parser.add_argument("--config", help="run config naming the dataset (default: config.yaml "
                                         "beside the model)")


def output_format(args):
    """The export format: --format, else the output path's extension, in any case."""
    extension = os.path.splitext(args.output_path)[1].lower()
    return args.format or _EXTENSIONS.get(extension, "saved_model")


def check_output_path(path, fmt):
    """Refuses, before any conversion, an output the export could not write."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ValueError(f"output path {path!r}: its folder {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"output path {path!r}: its folder {parent!r} is not writable")
    if fmt != "saved_model" and os.path.isdir(path):
        raise ValueError(f"output path {path!r} is a folder; a {fmt} export writes a file")


def _precision(args, fmt):
    if args.quantization:
        print("kerasseg export: --quantization is deprecated; use --precision "
              f"{args.quantization}", file=sys.stderr)
        if args.precision and args.precision != args.quantization:
            raise ValueError(f"--quantization {args.quantization} and --precision "
                             f"{args.precision} disagree; pass --precision only")
    precision = args.precision or args.quantization or ("fp16" if fmt == "tensorrt" else "fp32")
    allowed = {"tflite": PRECISIONS, "onnx": ("fp32", "fp16", "int8", "auto"),
               "tensorrt": ("fp32", "fp16", "int8"), "saved_model": ("fp32",)}[fmt]
    if precision not in allowed:
        raise ValueError(f"--precision {precision} is not available for {fmt}; choose one of "
                         f"{', '.join(allowed)}")
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
    """Runs the exporter of `fmt`; None when TensorRT is missing (the command is printed)."""
    from kerasseg import export

    path = path or args.output_path
    int8_options = {key: options[key] for key in ("calibration_data", "validation_data")
                    if key in options}
    checks = {"min_agreement": args.min_agreement or None,
              "max_metric_loss": args.max_metric_loss, "calibration_steps":
              args.calibration_steps} if precision == "int8" else {}
    common = {"image_size": options["image_size"], "labels": options["labels"],
              "palette": options["palette"]}
    if precision != "int8":
        int8_options = {}
    if fmt == "saved_model":
        return export.to_saved_model(model, path, output=options["output"], **common)
    if fmt == "tflite":
        return export.to_tflite(
            model, path, precision=precision, io_dtype=args.io_dtype, output=options["output"],
            allow_flex_ops=args.allow_flex_ops, resize_logits=not args.low_res_logits,
            per_channel=not args.per_tensor_weights, **common, **int8_options, **checks)
    if fmt == "onnx":
        return export.to_onnx(model, path, static_shape=not args.dynamic_shape, nchw=args.nchw,
                              opset=args.opset, output=options["output"], precision=precision,
                              **common, **int8_options, **checks)
    checks.pop("max_metric_loss", None)
    try:
        return export.to_tensorrt(
            model, path, precision, options["image_size"], nchw=args.nchw,
            calibration_data=options.get("calibration_data") if int8_options else None,
            labels=options["labels"], palette=options["palette"], **checks)
    except export.TensorRTUnavailableError as error:
        print(error)
        return None


def _auto(args, model, fmt, options):
    from kerasseg.export import auto, int8
    from kerasseg.export.common import cpu_description

    if fmt not in AUTO_CANDIDATES:
        raise ValueError(f"--precision auto is available for tflite and onnx, not {fmt}")
    size = options["image_size"] or tuple(model.inputs[0].shape[1:3])
    channels = int(model.inputs[0].shape[-1])
    images = int8.images(options["calibration_data"], options.get("validation_data"), size,
                         channels, args.calibration_steps, args.min_agreement or None)
    settings = int8.Check(args.min_agreement or None, args.max_metric_loss,
                          0.5 if options["output"] == "probabilities" else 0.0)
    cpu = cpu_description()
    print(f"precision auto: timing on {cpu['cpu']} ({' '.join(cpu['isa'])}), one thread")
    chosen, rows, measure = auto.fastest(
        lambda precision, path: _export(fmt, model, args, precision, options, path),
        args.output_path, AUTO_CANDIDATES[fmt], model, images, settings)
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
