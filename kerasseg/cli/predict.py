"""`kerasseg predict`: segment images; write label maps and overlays.

    kerasseg predict --model runs/a/model.keras photos/ --output-dir predictions
    kerasseg predict --model model.tflite photos/*.jpg --tile-size 256 256

Writes, per input image, `<name>_labels.png` (class ids) and
`<name>_overlay.png`. `--model` is a `.keras` file or an exported file, run
through the same inference path as `kerasseg evaluate`.
"""

import os

import numpy as np

from kerasseg.cli.options import (
    add_inference_arguments,
    inference_options,
    is_panoptic,
    load_predictor,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def add_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="trained model (.keras) or exported file (.tflite, .onnx, .engine)")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--output-dir", default="predictions", help="where pictures go")
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


def run(args):
    import cv2

    from kerasseg import visualize
    from kerasseg.data.labels import voc_palette
    from kerasseg.train.evaluate import probabilities

    paths = image_paths(args.inputs)
    model = load_predictor(args.model)
    if is_panoptic(model):
        raise ValueError(f"{args.model} is a panoptic model: `predict` writes semantic label "
                         "maps; use `kerasseg evaluate` or kerasseg.panoptic.panoptic_merge.")
    options = inference_options(args)
    os.makedirs(args.output_dir, exist_ok=True)
    palette = getattr(model, "palette", None)
    for path in paths:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"Cannot read image {path}: not an image file, or corrupt")
        image = bgr[..., ::-1].astype(np.float32)
        scores = probabilities(model, image, options)
        labels = scores.argmax(-1).astype(np.uint8)
        if palette is None:
            palette = voc_palette(max(scores.shape[-1], 2))
        stem = os.path.splitext(os.path.basename(path))[0]
        cv2.imwrite(os.path.join(args.output_dir, f"{stem}_labels.png"), labels)
        visualize.save_image(os.path.join(args.output_dir, f"{stem}_overlay.png"),
                             visualize.overlay(image, labels, palette, args.alpha))
    print(f"Wrote {len(paths)} label maps and overlays to {args.output_dir}")
    return 0
