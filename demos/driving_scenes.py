"""Driving scenes: a street-scene segmentation overlay with a legend.

Runs an exported semantic model through `kerasseg.runtime`: a `.tflite` on
the CPU, an `.onnx` with ONNX Runtime, or a TensorRT `.engine` on a Jetson
(built with the `export/jetson/` kit). Input: a video file, a folder of
images, one image or a camera. Classes are drawn in the model's own colours
(its metadata sidecar's palette, as the CamVid and Cityscapes exports carry;
Cityscapes colours by label name otherwise) with a legend, and the frame
rate on every frame.

With no --model it runs the CamVid fine-tune when its run has finished in
runs/camvid_cityscapes (`kerasseg train --config camvid_cityscapes`, the
folder the recipe writes; exported once to fp16 at 360x480); without it, it
trains a small LR-ASPP MobileNetV3-Small on the synthetic street scenes
(about a minute, once; cached in the user cache folder). With no --input it
pans across synthetic street scenes, a stand-in for a dash-cam clip.

Examples:
    python demos/driving_scenes.py                                  # synthetic
    python demos/driving_scenes.py --input CamVid/test/   # the CamVid fine-tune, if trained
    python demos/driving_scenes.py --model runs/camvid_cityscapes --input CamVid/test/
    python demos/driving_scenes.py --model camvid.tflite --input CamVid/test/
    python demos/driving_scenes.py --input drive.mp4 --model cityscapes_fp16.engine
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

RECIPE_RUN = os.path.join("runs", "camvid_cityscapes")  # the camvid_cityscapes recipe's run
CAMVID_SIZE = (360, 480)

from kerasseg.data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, voc_palette  # noqa: E402

DEFAULT_OUTPUT = "driving_scenes.mp4"
TRAIN_SIZE = (128, 256)


def fallback_model(cache, fast, train_seconds):
    """A 7-class synthetic-scene `.tflite`, trained once and cached."""
    height, width = TRAIN_SIZE
    path = os.path.join(
        cache, f"driving_lraspp_mobilenetv3small_{height}x{width}{'_fast' if fast else ''}.tflite"
    )
    if _common.cached(path, "a small LR-ASPP MobileNetV3-Small on synthetic street scenes",
                      ", about a minute", fast):
        return path
    import keras

    import kerasseg
    from kerasseg.data.synthetic import CLASS_NAMES, PALETTE, make_scene
    from kerasseg.export import to_tflite
    from kerasseg.train import recompute_batch_norm

    _common.seed_everything(0)
    count, size = (8, (64, 128)) if fast else (320, TRAIN_SIZE)
    scenes = [make_scene(seed, *size) for seed in range(count)]
    images = np.stack([s["image"] for s in scenes]).astype("float32")
    labels = np.stack([s["semantic"] for s in scenes]).astype("int32")

    def build(input_shape):
        return kerasseg.lraspp(len(CLASS_NAMES), input_shape, backbone="mobilenetv3small",
                               backbone_kwargs={"alpha": 0.75})

    model = build((None, None, 3))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _common.fit_briefly(model, images, epochs=1 if fast else 40, cpu_seconds=train_seconds,
                        y=labels, batch_size=16, shuffle=True)
    recompute_batch_norm(model, images)
    exported = build((height, width, 3))
    exported.set_weights(model.get_weights())
    partial = path + ".partial.tflite"
    to_tflite(exported, partial, quantization="fp16", labels=list(CLASS_NAMES),
              palette=PALETTE)
    os.replace(partial + ".json", path + ".json")
    os.replace(partial, path)
    return path


def synthetic_clip(num_frames):
    """Pans across wide synthetic street scenes: a stand-in for a dash-cam video."""
    return _common.scene_clip(num_frames, 256, 512, first_seed=11)


def class_colours(labels, palette):
    """(names, (C, 3) colours) to draw a model's classes: its metadata's palette,
    else Cityscapes colours for Cityscapes names and the VOC colour map's for
    the rest."""
    if labels is None:
        raise ValueError(
            "--model has no labels in its metadata sidecar (<model>.json), so its classes "
            "cannot be named in the legend; export it with labels=[...]."
        )
    if palette is not None:
        return list(labels), np.asarray(palette, np.uint8)
    others = voc_palette(len(labels))
    return list(labels), np.stack([
        CITYSCAPES_PALETTE[CITYSCAPES_CLASSES.index(name)] if name in CITYSCAPES_CLASSES
        else others[index] for index, name in enumerate(labels)])


def overlay(frame, labels, palette, opacity):
    """Blends the colour of each pixel's class into the frame."""
    colours = palette[labels].astype(np.float32)
    blended = (1 - opacity) * frame.astype(np.float32) + opacity * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def legend(height, names, palette, present, scale):
    """A panel listing the classes with swatches; classes not in the frame are dimmed."""
    import cv2

    # Rows shrink (text with them) so that every class fits the frame's height.
    row = min(int(26 * scale / 0.5), height // (len(names) + 1))
    scale = row * 0.5 / 26
    width = int(130 * scale / 0.5)
    panel = np.full((height, width, 3), 32, np.uint8)
    _common.put_text(panel, "classes", (6, row - 8), scale, background=(32, 32, 32))
    for index, name in enumerate(names):
        y = (index + 1) * row
        colour = tuple(int(c) for c in palette[index])
        cv2.rectangle(panel, (6, y + 4), (6 + row - 8, y + row - 4), colour, -1)
        text_colour = (255, 255, 255) if index in present else (120, 120, 120)
        _common.put_text(panel, name, (row + 4, y + row - 8), scale, color=text_colour,
                         background=(32, 32, 32))
    return panel


def build_parser():
    parser = _common.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_arguments(parser, DEFAULT_OUTPUT)
    parser.add_argument("--opacity", type=float, default=0.55, help="overlay opacity in [0, 1]")
    return parser


def run(argv=None):
    from kerasseg.runtime import Segmenter

    args = _common.parse(build_parser(), argv)
    if not 0 <= args.opacity <= 1:
        raise ValueError(f"--opacity must be in [0, 1]. Received: --opacity={args.opacity}")
    model_path = _common.model_file(args, lambda: fallback_model(
        _common.cache_dir(args.cache_dir), args.fast, args.train_seconds
    ), run_dir=RECIPE_RUN, size=CAMVID_SIZE)
    segmenter = Segmenter.load(model_path, num_threads=args.threads)
    names, palette = class_colours(segmenter.labels, segmenter.palette)
    frames = _common.input_frames(
        args, synthetic_clip(args.frames or 72),
        "a synthetic driving clip (panning across synthetic street scenes)")

    def step(frame):
        started = time.perf_counter()
        labels = segmenter.predict(frame)
        model_ms = 1000 * (time.perf_counter() - started)
        picture = overlay(frame, labels, palette, args.opacity)
        present = set(np.unique(labels).tolist())
        panel = legend(picture.shape[0], names, palette, present, _common.text_scale(picture))
        return np.concatenate([picture, panel], axis=1), model_ms

    return _common.play(args, frames, "kerasseg driving scenes", step, "model",
                 os.path.basename(model_path))


main = _common.main_wrapper(run)

if __name__ == "__main__":
    sys.exit(main())
