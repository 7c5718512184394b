"""`kerasseg export`: a saved `.keras` model -> SavedModel, TFLite, ONNX or TensorRT.

Examples:
    kerasseg export model.keras model.tflite --image-size 256 256 --quantization int8 \\
        --calibration synthetic
    kerasseg export model.keras model.onnx --image-size 512 512 --nchw
    kerasseg export model.keras model_int8.onnx --image-size 512 512 --nchw --precision int8 \\
        --calibration calib_frames/
    kerasseg export model.keras exported/1 --format saved_model --output labels
"""

import os

FORMATS = ("saved_model", "tflite", "onnx", "tensorrt")
_EXTENSIONS = {".tflite": "tflite", ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt"}


def add_arguments(parser):
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("output_path", help=".tflite, .onnx, .engine/.plan or a directory")
    parser.add_argument("--format", choices=FORMATS,
                        help="default: from the output file's extension (directory: saved_model)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--output", choices=("logits", "probabilities", "labels"),
                        help="default: what the model returns (probabilities for a model "
                             "ending in an activation, such as a portrait model's sigmoid)")
    parser.add_argument("--quantization", choices=("fp16", "dynamic", "int8"),
                        help="TFLite only (default float32)")
    parser.add_argument("--io-dtype", default="float32", choices=("float32", "uint8"),
                        help="TFLite input type (and output type with int8)")
    parser.add_argument("--calibration", metavar="DIR|synthetic",
                        help="int8 calibration images: a folder of images or 'synthetic'")
    parser.add_argument("--calibration-steps", type=int, default=100,
                        help="calibration images read; a quarter are held out for the int8 "
                             "agreement check")
    parser.add_argument("--min-agreement", type=float, default=0.98, metavar="FRACTION",
                        help="int8: share of held-out pixels whose label must match the Keras "
                             "model's; the most sensitive layers stay float until it does "
                             "(0: no check)")
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
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                        help="ONNX/TensorRT precision, stored in the ONNX graph (default: fp32 "
                             "for ONNX, fp16 for TensorRT); int8 needs --calibration")
    parser.add_argument("--labels", help="text file with one class name per line (default: "
                                         "the classes and colours of the run's config)")
    parser.add_argument("--config", help="run config naming the dataset (default: config.yaml "
                                         "beside the model)")


def _calibration_images(source, image_size, steps):
    import numpy as np

    if source is None:
        return None
    if source == "synthetic":
        from kerasseg.data.synthetic import make_scene

        return np.stack([make_scene(i, *image_size)["image"] for i in range(steps)])
    import cv2

    from kerasseg.runtime.image import resize_bilinear

    names = sorted(n for n in os.listdir(source)
                   if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")))[:steps]
    if not names:
        raise ValueError(f"--calibration: no .png/.jpg images in {source!r}")
    images = [cv2.cvtColor(cv2.imread(os.path.join(source, n)), cv2.COLOR_BGR2RGB)
              for n in names]
    return np.concatenate([resize_bilinear(im[None].astype("float32"), image_size)
                           for im in images])


def _int8_calibration(args, model, image_size, flag):
    """Calibration images for an int8 export asked for by `flag`."""
    from kerasseg.export.common import fixed_image_size

    if args.calibration is None:
        raise ValueError(f"{flag} int8 needs --calibration DIR|synthetic: images like the "
                         "ones the model will see set the int8 scales")
    return _calibration_images(args.calibration, fixed_image_size(model, image_size),
                               args.calibration_steps)


def run(args):
    from kerasseg import export
    from kerasseg.inference import model_output_kind
    from kerasseg.saving import load_model

    fmt = args.format or _EXTENSIONS.get(os.path.splitext(args.output_path)[1], "saved_model")
    model = load_model(args.model)
    output = args.output or model_output_kind(model)
    labels, palette = _class_names_and_colours(args, model)
    image_size = tuple(args.image_size) if args.image_size else None
    if fmt == "saved_model":
        path = export.to_saved_model(model, args.output_path, output=output,
                                     image_size=image_size, labels=labels, palette=palette)
    elif fmt == "tflite":
        calibration = None
        if args.quantization == "int8":
            calibration = _int8_calibration(args, model, image_size, "--quantization")
        path = export.to_tflite(
            model, args.output_path, image_size, args.quantization, calibration,
            args.calibration_steps, args.io_dtype, output, args.allow_flex_ops, labels,
            palette, min_agreement=args.min_agreement or None,
            resize_logits=not args.low_res_logits, per_channel=not args.per_tensor_weights)
    elif fmt == "onnx":
        precision = args.precision or "fp32"
        calibration = (_int8_calibration(args, model, image_size, "--precision")
                       if precision == "int8" else None)
        path = export.to_onnx(model, args.output_path, image_size, not args.dynamic_shape,
                              args.nchw, args.opset, output, labels=labels,
                              palette=palette, precision=precision, calibration_data=calibration,
                              calibration_steps=args.calibration_steps,
                              min_agreement=args.min_agreement or None)
    else:
        precision = args.precision or "fp16"
        calibration = (_int8_calibration(args, model, image_size, "--precision")
                       if precision == "int8" else None)
        try:
            path = export.to_tensorrt(model, args.output_path, precision, image_size,
                                      args.nchw, calibration, args.calibration_steps,
                                      labels=labels, palette=palette,
                                      min_agreement=args.min_agreement or None)
        except export.TensorRTUnavailableError as error:
            print(error)
            return 1
    print(f"wrote {path} (metadata: {path.rstrip('/')}.json)")
    _print_int8_check(path)
    return 0


def _class_names_and_colours(args, model):
    """(names, colours) for the sidecar: --labels, or the classes of the dataset the
    run's config names (CamVid's names and SegNet's palette, ...); None if unknown."""
    if args.labels:
        with open(args.labels) as f:
            return [line.strip() for line in f if line.strip()], None
    config_path = args.config or os.path.join(os.path.dirname(args.model), "config.yaml")
    channels = int(model.outputs[0].shape[-1]) if len(model.outputs) == 1 else 0
    if not os.path.isfile(config_path) or channels < 2:
        return None, None  # no run config; a one-channel model is a foreground score
    from kerasseg.cli.reports import names_and_palette
    from kerasseg.train import Config

    names, palette = names_and_palette(Config.load(config_path), channels)
    return names, (None if names is None else palette[:channels])


def _print_int8_check(path):
    """The agreement an int8 export reached and what it kept in float, from its sidecar."""
    from kerasseg.export.int8 import describe
    from kerasseg.runtime.metadata import read_metadata

    metadata = read_metadata(path.rstrip("/"))
    record = (metadata or {}).get("quantization", {})
    if record.get("mode") == "int8":
        print(describe(record))
