"""`kerasseg predict`: segment images; write label maps and overlays.

    kerasseg predict --model runs/a/model.keras photos/ --output-dir predictions
    kerasseg predict --model model.tflite photos/*.jpg --tile-size 256 256
    kerasseg predict --model model.tflite day/ night/ --keep-going

Writes, per input image, `<name>_labels.png` (class ids) and
`<name>_overlay.png`, at the image's path relative to the folder all inputs
share (`day/x.png` and `night/x.png` go to `day/` and `night/` under
`--output-dir`); two inputs that would write the same file are refused before
anything is written. `--keep-going` skips an image that cannot be read or
segmented with a one-line warning, and exits 2 at the end. `--model` is a
`.keras` file or an exported file, run through the same inference path as
`kerasseg evaluate`.
"""

import os
import sys

import numpy as np

from kerasseg.cli.options import (
    add_inference_arguments,
    inference_options,
    is_panoptic,
    load_predictor,
    model_classes,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def add_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="trained model (.keras) or exported file (.tflite, .onnx, .engine)")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--output-dir", default="predictions", help="where pictures go")
    parser.add_argument("--keep-going", action="store_true",
                        help="skip an image that cannot be read or segmented (one-line "
                             "warning), exit 2 at the end")
    add_inference_arguments(parser)


def image_paths(inputs):
    """Image files named by `inputs` (files, or folders searched one level deep)."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, name) for name in os.listdir(item)
                            if name.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"inputs: no such file or folder: {item}")
    if not paths:
        raise ValueError(f"inputs: no images ({', '.join(IMAGE_EXTENSIONS)}) in {inputs}")
    return paths


def output_stems(paths, output_dir):
    """{input path: output path without the `_labels.png` suffix}: each image's
    path relative to the folder all inputs share. Raises before anything is
    written if two inputs would write the same files."""
    absolute = [os.path.abspath(path) for path in paths]
    common = os.path.commonpath([os.path.dirname(path) for path in absolute])
    stems, writers = {}, {}
    for path, full in zip(paths, absolute, strict=True):
        stem = os.path.join(output_dir, os.path.splitext(os.path.relpath(full, common))[0])
        if stem in writers:
            raise ValueError(f"inputs: {writers[stem]} and {path} would both write "
                             f"{stem}_labels.png; rename one, or predict them separately.")
        writers[stem], stems[path] = path, stem
    return stems


def run(args):
    from kerasseg import visualize
    from kerasseg.cli import user_error

    paths = image_paths(args.inputs)
    stems = output_stems(paths, args.output_dir)
    model = load_predictor(args.model)
    if is_panoptic(model):
        raise ValueError(f"{args.model} is a panoptic model: `predict` writes semantic label "
                         "maps; use `kerasseg evaluate` or kerasseg.panoptic.panoptic_merge.")
    options = inference_options(args)
    palette = getattr(model, "palette", None)
    skipped = 0
    for path in paths:
        try:
            image, labels = _segment(model, path, options)
        except Exception as error:  # noqa: BLE001 - a bug is re-raised
            message = user_error(error)
            if not args.keep_going or message is None:
                raise
            print(f"kerasseg predict: warning: skipped {path}: {message.splitlines()[0]}",
                  file=sys.stderr)
            skipped += 1
            continue
        if palette is None:
            from kerasseg.data.labels import voc_palette

            palette = voc_palette(max(int(labels.max()) + 1, model_classes(model) or 2))
        visualize.save_image(f"{stems[path]}_labels.png", labels)
        visualize.save_image(f"{stems[path]}_overlay.png",
                             visualize.overlay(image, labels, palette, args.alpha))
    print(f"Wrote {len(paths) - skipped} label maps and overlays to {args.output_dir}"
          + (f"; skipped {skipped} image(s) (warnings above)" if skipped else ""))
    return 2 if skipped else 0


def _segment(model, path, options):
    """(RGB float32 image, uint8 label map) of the image file `path`."""
    import cv2

    from kerasseg.runtime import Segmenter
    from kerasseg.runtime.inference import check_options
    from kerasseg.train.evaluate import probabilities

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"Cannot read image {path}: not an image file, or corrupt")
    image = bgr[..., ::-1].astype(np.float32)
    if isinstance(model, Segmenter):  # labels assembled band by band: bounded memory
        # Only the options given: a labels-only model takes none.
        defaults = check_options()
        labels = model.predict(image, **{key: value for key, value in options.items()
                                         if value != defaults[key]})
    else:
        labels = probabilities(model, image, options).argmax(-1)
    return image, labels.astype(np.uint8)
