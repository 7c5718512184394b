"""Portrait mode: blur or replace the background behind people.

Runs an exported person-mask model (`.tflite`, `.onnx` or a TensorRT engine)
through `kerasseg.runtime` on an image, a folder of images, a video file or a
webcam, smooths the mask over time (exponential moving average) and feathers
its edges before compositing. The frame rate is drawn on every frame.

With no --model it runs the distilled portrait student when its run has
finished in runs/portrait_student (`kerasseg train --config portrait_student`,
the folder the recipe writes; exported once to fp16 at the --model-size);
without it, it trains a small LR-ASPP MobileNetV3-Small on synthetic person
masks (about a minute, once; cached in the user cache folder). With no
--input it makes a synthetic clip. Everything runs headless and writes a
video (or PNG frames).

Examples:
    python demos/portrait_mode.py                          # synthetic, blur
    python demos/portrait_mode.py --input photos/          # the student, if trained
    python demos/portrait_mode.py --model runs/portrait_voc --input photos/  # the teacher
    python demos/portrait_mode.py --input 0 --model portrait.tflite --show
    python demos/portrait_mode.py --input clip.mp4 --mode replace --background beach.jpg
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

DEFAULT_OUTPUT = "portrait_mode.mp4"
MODEL_SIZES = {"square": (256, 256), "landscape": (144, 256)}
RECIPE_RUN = os.path.join("runs", "portrait_student")  # the portrait_student recipe's run


def fallback_model(cache, size, fast, train_seconds):
    """A portrait `.tflite` trained on synthetic scenes, cached by size."""
    tag = f"{size[0]}x{size[1]}{'_fast' if fast else ''}"
    path = os.path.join(cache, f"portrait_lraspp_mobilenetv3small_{tag}.tflite")
    if _common.cached(path, "a small portrait model (LR-ASPP, MobileNetV3-Small) on "
                      "synthetic person masks", ", about a minute", fast):
        return path
    import keras

    from kerasseg import portrait_model
    from kerasseg.data.synthetic import make_portrait_scene
    from kerasseg.export import to_tflite
    from kerasseg.train import recompute_batch_norm

    _common.seed_everything(0)
    count, train_size = (8, (64, 64)) if fast else (384, (128, 128))
    pairs = [make_portrait_scene(seed, *train_size) for seed in range(count)]
    images = np.stack([p[0] for p in pairs]).astype("float32")
    masks = np.stack([p[1] for p in pairs])[..., None].astype("float32")
    model = portrait_model("lraspp_mobilenetv3small", input_shape=(None, None, 3))
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.BinaryCrossentropy())
    _common.fit_briefly(model, images, epochs=1 if fast else 40, cpu_seconds=train_seconds,
                        y=masks, batch_size=16, shuffle=True)
    recompute_batch_norm(model, images)

    exported = portrait_model("lraspp_mobilenetv3small", input_shape=(*size, 3))
    exported.set_weights(model.get_weights())
    # Write beside the cache entry, then move: an interrupted run leaves no half file.
    partial = path + ".partial.tflite"
    to_tflite(exported, partial, quantization="fp16", output="probabilities",
              labels=["person"], palette=[[255, 255, 255]])
    os.replace(partial + ".json", path + ".json")
    os.replace(partial, path)
    return path


def synthetic_clip(num_frames, height=288, width=384, seed=7):
    """A camera panning across a synthetic scene framed around a person."""
    from kerasseg.data.synthetic import make_portrait_scene

    image, _ = make_portrait_scene(seed, height, width * 5 // 4)
    for (frame,) in _common.panned_clip((image,), width, num_frames):
        yield frame, 15.0


def person_probability(segmenter, frame):
    """(H, W) person probability from any segmenter: a one-channel (sigmoid)
    model, whose classes are background and person, or a multi-class model
    with a "person" label."""
    probabilities = segmenter.predict_proba(frame)
    if segmenter.output_channels == 1:
        return probabilities[..., 1]
    labels = segmenter.labels or []
    if "person" not in labels:
        raise ValueError(
            "--model must output one channel (person probability) or have a 'person' label "
            f"in its metadata. Its labels: {labels}"
        )
    return probabilities[..., labels.index("person")]


def parse_background(value, shape):
    """--background: an image file, or a colour "R,G,B"; default a soft gradient."""
    import cv2

    if value is None:
        height, width = shape[:2]
        t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        top, bottom = np.array([40, 90, 160], np.float32), np.array([230, 180, 120], np.float32)
        return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.uint8)
    if os.path.isfile(value):
        image = cv2.imread(value, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"Cannot read --background image {value!r}.")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    try:
        colour = [int(v) for v in value.split(",")]
    except ValueError:
        colour = []
    if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
        raise ValueError(
            f"--background must be an image file or a colour R,G,B. Received: {value!r}"
        )
    return np.array(colour, np.uint8)


def build_parser():
    parser = _common.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_common_arguments(parser, DEFAULT_OUTPUT)
    parser.add_argument("--mode", choices=("blur", "replace"), default="blur")
    parser.add_argument("--background", default=None,
                        help="replacement background: image file or R,G,B")
    parser.add_argument("--model-size", choices=tuple(MODEL_SIZES), default="square",
                        help="fallback model input: square 256x256 or landscape 144x256")
    parser.add_argument("--smoothing", type=float, default=0.6,
                        help="mask EMA momentum in [0, 1); 0 turns smoothing off")
    parser.add_argument("--feather", type=int, default=4, help="edge feather radius, pixels")
    parser.add_argument("--blur", type=int, default=15, help="background blur radius, pixels")
    parser.add_argument("--no-side-by-side", dest="side_by_side", action="store_false",
                        help="write only the result, not input | result")
    return parser


def run(argv=None):
    from kerasseg.runtime import MaskSmoother, Segmenter, blur_background, replace_background

    args = _common.parse(build_parser(), argv)
    model_path = _common.model_file(args, lambda: fallback_model(
        _common.cache_dir(args.cache_dir), MODEL_SIZES[args.model_size], args.fast,
        args.train_seconds,
    ), run_dir=RECIPE_RUN, size=MODEL_SIZES[args.model_size])
    segmenter = Segmenter.load(model_path, num_threads=args.threads)
    smoother = MaskSmoother(args.smoothing)
    frames = _common.input_frames(
        args, synthetic_clip(args.frames or 48),
        "a synthetic clip (a camera panning across a synthetic scene)")
    background = None

    def step(frame):
        nonlocal background
        started = time.perf_counter()
        mask = smoother(person_probability(segmenter, frame))
        model_ms = 1000 * (time.perf_counter() - started)
        if args.mode == "blur":
            picture = blur_background(frame, mask, blur_radius=args.blur,
                                      feather_radius=args.feather)
        else:
            if background is None:
                background = parse_background(args.background, frame.shape)
            picture = replace_background(frame, mask, background, feather_radius=args.feather)
        if args.side_by_side:
            picture = np.concatenate([frame, picture], axis=1)
        return picture, model_ms

    return _common.play(args, frames, "kerasseg portrait mode", step, "model + mask",
                 f"{os.path.basename(model_path)}, {args.threads} thread(s)")


main = _common.main_wrapper(run)

if __name__ == "__main__":
    sys.exit(main())
