"""Panoptic view: LPSNet's panoptic map with instance colours and class labels.

Every pixel gets a class and, for "things" (person, car, ...), an instance:
stuff is drawn in its class colour, each instance in its own shade of its
class colour with an outline and a "class id" label. The panoptic map comes
from LPSNet's outputs through the parameter-free merge
`kerasseg.panoptic.panoptic_merge` (NumPy).

--model takes a `.keras` LPSNet file (run with Keras) or an exported
`.tflite` / `.onnx` whose outputs keep LPSNet's names (run with
`kerasseg.runtime`). With no --model it trains a small LPSNet on the
synthetic scenes (a minute or two, once; cached in the user cache folder);
with no --input it pans across synthetic scenes.

Examples:
    python demos/panoptic.py                                   # synthetic
    python demos/panoptic.py --input street.mp4 --model lpsnet.keras \\
        --labels sky,grass,road,wall,person,car,ball --thing-classes 4,5,6
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

DEFAULT_OUTPUT = "panoptic.mp4"
OUTPUT_NAMES = ("semantic", "class_logits", "boxes", "borderness")
TRAIN_SIZE = (128, 128)


def build_lpsnet(num_classes, thing_classes, input_shape=(None, None, 3), fast=False):
    """The small LPSNet of the synthetic fallback."""
    import kerasseg

    return kerasseg.lpsnet(
        num_classes, input_shape, backbone="mobilenetv3small", thing_classes=thing_classes,
        fpn_filters=16 if fast else 48, semantic_filters=16 if fast else 32,
        head_convs=1 if fast else 2, ppm=False,
        backbone_kwargs={"alpha": 0.35 if fast else 0.75},
    )


def fallback_model(cache, fast, train_seconds):
    """A small LPSNet `.keras` file trained on synthetic scenes, cached."""
    height, width = TRAIN_SIZE
    path = os.path.join(cache, f"lpsnet_mobilenetv3small_{height}x{width}"
                               f"{'_fast' if fast else ''}.keras")
    if _common.cached(path, "a small LPSNet (MobileNetV3-Small + FPN) on synthetic scenes",
                      ", a minute or two", fast):
        return path
    import keras
    import tensorflow as tf

    from kerasseg.data.synthetic import CLASS_NAMES, THING_CLASSES, make_scene
    from kerasseg.panoptic import compile_lpsnet, panoptic_dataset
    from kerasseg.train import recompute_batch_norm

    _common.seed_everything(0)
    count = 8 if fast else 320
    scenes = [make_scene(seed, *TRAIN_SIZE) for seed in range(count)]
    images = np.stack([s["image"] for s in scenes]).astype("float32")
    targets = {
        "semantic": np.stack([s["semantic"] for s in scenes]).astype("int32"),
        "instances": np.stack([s["instances"] for s in scenes]).astype("int32"),
    }
    data = panoptic_dataset(tf.data.Dataset.from_tensor_slices((images, targets)).shuffle(count),
                            THING_CLASSES, batch_size=8)
    model = build_lpsnet(len(CLASS_NAMES), THING_CLASSES, fast=fast)
    compile_lpsnet(model, optimizer=keras.optimizers.Adam(2e-3), preset="cityscapes")
    _common.fit_briefly(model, data, epochs=1 if fast else 40, cpu_seconds=train_seconds,
                        shuffle=False)  # the dataset shuffles itself
    recompute_batch_norm(model, images)
    partial = path + ".partial.keras"
    model.save(partial)
    os.replace(partial, path)
    return path


class LPSNetRunner:
    """LPSNet outputs for one frame, from a `.keras` model or an exported file."""

    def __init__(self, path, threads):
        self.keras_model = self.segmenter = None
        if path.endswith(".keras"):
            import kerasseg

            self.keras_model = kerasseg.load_model(path)
            self.input_size = None
        else:
            from kerasseg.runtime import Segmenter

            self.segmenter = Segmenter.load(path, num_threads=threads)
            names = {o.name for o in self.segmenter.backend.outputs}
            if not set(OUTPUT_NAMES) <= names:
                raise ValueError(
                    f"--model {path!r} must have LPSNet's outputs {OUTPUT_NAMES}; it has "
                    f"{sorted(names)}."
                )
            self.input_size = self.segmenter.input_size

    def __call__(self, frame):
        """Returns (the frame the model saw, {output name: array of one image})."""
        import cv2

        # Box outputs are in the pixels of the model input: run on a frame of
        # that size (multiples of 32 keep LPSNet's pyramid aligned).
        if self.input_size is not None:
            height, width = self.input_size
        else:
            height, width = (max(32, (s + 16) // 32 * 32) for s in frame.shape[:2])
        if (height, width) != frame.shape[:2]:
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        batch = frame[None].astype(np.float32)
        if self.keras_model is not None:
            outputs = self.keras_model.predict_on_batch(batch)
        else:
            outputs = self.segmenter.run(batch)
        return frame, {name: np.asarray(outputs[name])[0] for name in OUTPUT_NAMES}


def colour_panoptic(frame, panoptic, labels, palette, thing_classes, divisor, opacity=0.6):
    """Stuff in class colours, each instance a shade of its class colour, with
    outlines and labels. Returns the rendered frame (uint8 RGB)."""
    import cv2

    colours = np.zeros(frame.shape, np.float32)
    alpha = np.zeros(frame.shape[:2], np.float32)
    instances = []
    for segment in np.unique(panoptic):
        if segment < 0:
            continue
        category, instance = divmod(int(segment), divisor)
        mask = panoptic == segment
        colour = palette[category % len(palette)].astype(np.float32)
        if category in thing_classes and instance > 0:
            # A stable shade per instance: lighter or darker than the class colour.
            shade = np.random.default_rng(instance * 7919 + category).uniform(-70, 70, 3)
            colour = np.clip(colour + shade, 0, 255)
            instances.append((mask, category, instance, colour))
        colours[mask] = colour
        alpha[mask] = opacity
    out = (1 - alpha[..., None]) * frame.astype(np.float32) + alpha[..., None] * colours
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    scale = max(0.3, frame.shape[0] / 700)
    for mask, category, instance, colour in instances:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        name = labels[category] if category < len(labels) else str(category)
        origin = (int(xs.min()), max(10, int(ys.min()) - 2))
        _common.put_text(out, f"{name} {instance}", origin, scale,
                         background=tuple(int(c) for c in colour * 0.5))
    return out


def synthetic_clip(num_frames):
    """Pans across wide synthetic scenes, a new one every 24 frames."""
    return _common.scene_clip(num_frames, 256, 384, first_seed=21)


def _int_list(value):
    return [int(v) for v in value.split(",")] if value else None


def build_parser():
    parser = _common.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_arguments(parser, DEFAULT_OUTPUT)
    parser.add_argument("--labels", default=None,
                        help="comma-separated class names (default: the synthetic classes)")
    parser.add_argument("--thing-classes", default=None,
                        help="comma-separated thing class ids (default: the synthetic ones)")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="detection score threshold of the panoptic merge")
    return parser


def run(argv=None):
    from kerasseg.data.synthetic import CLASS_NAMES, PALETTE, THING_CLASSES
    from kerasseg.panoptic import LABEL_DIVISOR, panoptic_merge

    args = _common.parse(build_parser(), argv)
    labels = args.labels.split(",") if args.labels else list(CLASS_NAMES)
    thing_classes = tuple(_int_list(args.thing_classes) or THING_CLASSES)
    if any(not 0 <= t < len(labels) for t in thing_classes):
        raise ValueError(f"--thing-classes must be class ids in [0, {len(labels)}). "
                         f"Received: --thing-classes={args.thing_classes}")
    rng = np.random.default_rng(0)
    palette = PALETTE if len(labels) <= len(PALETTE) else np.concatenate(
        [PALETTE, rng.integers(0, 256, (len(labels) - len(PALETTE), 3), dtype=np.uint8)])
    model_path = args.model or fallback_model(
        _common.cache_dir(args.cache_dir), args.fast, args.train_seconds
    )
    runner = LPSNetRunner(model_path, args.threads)
    frames = _common.input_frames(args, synthetic_clip(args.frames or 48),
                                  "a synthetic clip (panning across synthetic scenes)")

    def step(frame):
        started = time.perf_counter()
        seen, outputs = runner(frame)
        panoptic = panoptic_merge(
            outputs["semantic"], outputs["class_logits"], outputs["boxes"],
            outputs["borderness"], thing_classes, score_threshold=args.score_threshold,
        )
        model_ms = 1000 * (time.perf_counter() - started)
        return colour_panoptic(seen, panoptic, labels, palette, thing_classes,
                               LABEL_DIVISOR), model_ms

    return _common.play(args, frames, "kerasseg panoptic", step, "model + merge",
                 os.path.basename(model_path))


main = _common.main_wrapper(run)

if __name__ == "__main__":
    sys.exit(main())
