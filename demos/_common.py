"""Shared plumbing of the demos: frame sources, output writers, FPS, drawing,
the cache of fallback models, and a short time-capped training loop.

Only the public API of kerasseg is used here and in the demos.
"""

import argparse
import hashlib
import os
import time

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


def add_common_arguments(parser, default_output):
    """Arguments every demo takes."""
    parser.add_argument(
        "--input", default=None,
        help="image, folder of images, video file, or camera index (e.g. 0); "
        "default: a synthetic clip",
    )
    parser.add_argument(
        "--model", default=None,
        help="exported model file, or a pretrained preset (e.g. pascal_voc, cityscapes: "
        "`kerasseg pretrained` lists them; exported once to the cache); default: train (or "
        "reuse) a small model on synthetic data",
    )
    parser.add_argument(
        "--output", default=default_output,
        help="output video (.mp4: mp4v, .avi: MJPG) or a folder for PNG frames",
    )
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the runtime")
    parser.add_argument("--screenshot", default=None, help="also save the last frame as this PNG")
    parser.add_argument("--cache-dir", default=None, help="where fallback models are cached")
    parser.add_argument(
        "--fast", action="store_true",
        help="tiny fallback model and a short clip (for tests): runs in seconds, poor quality",
    )
    parser.add_argument("--show", action="store_true", help="also show frames in a window")
    parser.add_argument(
        "--train-seconds", type=float, default=150.0,
        help="budget of the fallback model's training, in CPU seconds of this process "
        "(about half that in wall time on an idle 2-core machine)",
    )
    return parser


def parse(parser, argv):
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be >= 1. Received: --frames={args.frames}")
    if args.fast and args.frames is None:
        args.frames = 4
    return args


def cache_dir(override=None):
    """The user cache folder of the fallback models (created if missing)."""
    root = override or os.environ.get("KERASSEG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kerasseg", "demos"
    )
    os.makedirs(root, exist_ok=True)
    return root


# === Frames in ===


def frames_from(source, max_frames=None):
    """Yields (RGB uint8 frame, source fps or None) from an image, a folder of
    images, a video file or a camera index."""
    if source is None:
        raise ValueError("`source` is None: the demo makes a synthetic clip instead.")
    count = 0
    if os.path.isdir(source):
        paths = sorted(
            os.path.join(source, name) for name in os.listdir(source)
            if name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not paths:
            raise ValueError(f"--input folder {source!r} holds no images ({IMAGE_EXTENSIONS}).")
        for path in paths[:max_frames]:
            yield _read_image(path), None
        return
    if source.lower().endswith(IMAGE_EXTENSIONS):
        yield _read_image(source), None
        return
    is_camera = source.isdigit()
    if not is_camera and not os.path.isfile(source):
        raise FileNotFoundError(f"--input {source!r} is not a file, folder or camera index.")
    capture = cv2.VideoCapture(int(source) if is_camera else source)
    if not capture.isOpened():
        raise ValueError(f"Cannot open --input {source!r} as a video or camera.")
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    try:
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), fps
    finally:
        capture.release()


def _read_image(path):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"Cannot read image {path!r}.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def panned_clip(scene, width, num_frames):
    """Frames of `width` columns sliding left to right across `scene` (H, W', ...)
    arrays, one clip per array in the tuple `scene`: a camera panning over it."""
    total = scene[0].shape[1]
    offsets = np.linspace(0, total - width, num_frames).round().astype(int)
    for offset in offsets:
        yield tuple(np.ascontiguousarray(a[:, offset:offset + width]) for a in scene)


def scene_clip(num_frames, height, width, first_seed, frames_per_scene=24):
    """Yields (frame, 15.0): pans across wide synthetic scenes, a new scene
    (seeds `first_seed`, `first_seed` + 1, ...) every `frames_per_scene` frames."""
    from kerasseg.data.synthetic import make_scene

    produced, seed = 0, first_seed
    while produced < num_frames:
        wide = make_scene(seed, height, width * 3 // 2)["image"]
        count = min(frames_per_scene, num_frames - produced)
        for (frame,) in panned_clip((wide,), width, max(count, 2)):
            if produced >= num_frames:
                break
            produced += 1
            yield frame, 15.0
        seed += 1


# === Frames out ===


class FrameWriter:
    """Writes RGB frames to a video (.mp4 mp4v, .avi MJPG, ...) or a PNG folder."""

    def __init__(self, path, fps=15.0):
        self.path, self.fps, self.video, self.count = path, fps or 15.0, None, 0
        extension = os.path.splitext(path)[1].lower()
        self.codec = VIDEO_EXTENSIONS.get(extension)
        if self.codec is None:
            if extension:
                raise ValueError(
                    f"--output must end with one of {', '.join(VIDEO_EXTENSIONS)} or be a "
                    f"folder for PNG frames. Received: --output={path!r}"
                )
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, frame):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if self.codec is None:
            cv2.imwrite(os.path.join(self.path, f"frame_{self.count:05d}.png"), bgr)
        else:
            if self.video is None:
                height, width = frame.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*self.codec)
                self.video = cv2.VideoWriter(self.path, fourcc, self.fps, (width, height))
                if not self.video.isOpened():
                    raise RuntimeError(f"OpenCV cannot write {self.codec} video {self.path!r}.")
            self.video.write(bgr)
        self.count += 1

    def close(self):
        if self.video is not None:
            self.video.release()


class FrameSink:
    """Where a demo's finished frames go: the output file, the window with
    --show, and the last frame for --screenshot."""

    def __init__(self, args, title):
        self.args, self.title, self.writer, self.last = args, title, None, None

    def add(self, frame, fps):
        """Writes one frame; returns False once the user closes the window."""
        if self.writer is None:
            self.writer = FrameWriter(self.args.output, fps)
        self.writer.write(frame)
        self.last = frame
        return not self.args.show or show(frame, self.title)

    def close(self, summary):
        """Finishes the output, says what was written, saves the screenshot."""
        if self.writer is None:
            raise ValueError(f"--input {self.args.input!r} gave no frames.")
        self.writer.close()
        print(f"Wrote {self.writer.count} frame(s) to {self.args.output} ({summary}).")
        if self.args.screenshot:
            save_screenshot(self.last, self.args.screenshot)


def preset_export(name, cache, size=513):
    """The path of an fp16 `.tflite` export of pretrained preset `name` at
    `size` x `size` (the published files' size), with its class names and
    palette; made once in `cache`. None when `name` is not a preset."""
    import kerasseg
    from kerasseg.pretrained import is_preset, resolve_preset

    if os.path.exists(name) or not is_preset(name):
        return None
    preset = resolve_preset(name)
    path = os.path.join(cache, f"{preset.name}_{size}_fp16.tflite")
    if os.path.exists(path) and os.path.exists(path + ".json"):
        print(f"--model {name}: using the cached export {path}")
        return path
    print(f"--model {name}: exporting preset {preset.name} (fp16, {size}x{size}) to {path}")
    from kerasseg.export import to_tflite

    model = kerasseg.from_preset(preset.name, input_shape=(size, size, 3))
    partial = path + ".partial.tflite"
    to_tflite(model, partial, precision="fp16", labels=list(preset.classes),
              palette=np.asarray(preset.palette).tolist())
    os.replace(partial + ".json", path + ".json")
    os.replace(partial, path)
    return path


def run_model(path):
    """The `.keras` file of a training run folder (best.keras, else
    model.keras) or `path` itself when it is a `.keras` file; None otherwise."""
    if path.endswith(".keras") and os.path.isfile(path):
        return path
    for name in ("best.keras", "model.keras"):
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    return None


def keras_export(path, cache, size):
    """An fp16 `.tflite` export at `size` of a trained `.keras` file (or of a
    run folder's model), labelled with the classes and colours of the dataset
    in the run's config.yaml; made once per model file in `cache`. None when
    `path` is neither."""
    import kerasseg
    from kerasseg.export import to_tflite
    from kerasseg.train import Config

    keras_path = run_model(path)
    if keras_path is None:
        return None
    stat = os.stat(keras_path)
    key = f"{os.path.abspath(keras_path)}:{stat.st_mtime_ns}:{size}".encode()
    export = os.path.join(cache, f"run_{hashlib.sha256(key).hexdigest()[:16]}_fp16.tflite")
    if os.path.exists(export) and os.path.exists(export + ".json"):
        print(f"{keras_path}: using the cached export {export}")
        return export
    print(f"{keras_path}: exporting it (fp16, {size[0]}x{size[1]}) to {export}")
    labels = palette = None
    config_path = os.path.join(os.path.dirname(keras_path), "config.yaml")
    if os.path.isfile(config_path):
        source = kerasseg.data.SOURCES.get(Config.load(config_path).data.dataset)
        if source is not None and source.classes and not source.binary:
            labels, palette = list(source.classes), np.asarray(source.palette).tolist()
    partial = export + ".partial.tflite"
    to_tflite(kerasseg.load_model(keras_path), partial, image_size=size, precision="fp16",
              labels=labels, palette=palette)
    os.replace(partial + ".json", export + ".json")
    os.replace(partial, export)
    return export


def model_file(args, fallback, run_dir=None, size=None):
    """The exported file a demo runs: --model (an exported file; a preset,
    a trained `.keras` file or a training run folder, exported once at
    `size`); without --model the run of the demo's recipe in `run_dir` when
    it has finished; else `fallback()`, the demo's own small model."""
    cache = cache_dir(args.cache_dir)
    if args.model is None and run_dir and run_model(run_dir):
        print(f"No --model given: using the fine-tuned model of {run_dir}")
        return keras_export(run_dir, cache, size)
    if args.model is None:
        return fallback()
    return (preset_export(args.model, cache) or keras_export(args.model, cache, size)
            or args.model)


def cached(path, model, training, fast):
    """True (saying so) when the fallback `model` is cached at `path` (with its
    sidecar, for exported files); else announces its training and returns False."""
    if os.path.exists(path) and (path.endswith(".keras") or os.path.exists(path + ".json")):
        print(f"No --model given: using the cached {model} {path}")
        return True
    print(f"No --model given: training {model}{' (--fast: a few steps)' if fast else training}; "
          f"cached at {path}")
    return False


def input_frames(args, synthetic_clip, description):
    """The frames of --input, or (saying so) the demo's synthetic clip."""
    if args.input is not None:
        return frames_from(args.input, args.frames)
    print(f"No --input given: {description}.")
    return synthetic_clip


def play(args, frames, title, step, timed, summary):
    """Runs the demo loop: `step(frame) -> (picture, milliseconds of the timed
    part)` on each frame, the frame rate and `timed`'s time drawn on the
    picture, into the output (and window, and screenshot). Returns 0."""
    sink, meter = FrameSink(args, title), FPSMeter()
    for index, (frame, fps) in enumerate(frames):
        if args.frames is not None and index >= args.frames:
            break
        meter.start()
        picture, milliseconds = step(frame)
        meter.stop()
        scale = text_scale(picture)
        put_text(picture, f"{meter.fps:.0f} FPS  ({timed} {milliseconds:.0f} ms)",
                 (6, int(22 * scale / 0.5)), scale)
        if not sink.add(picture, fps):
            break
    sink.close(f"{meter.fps:.1f} FPS, {summary}")
    return 0


class FPSMeter:
    """Frames per second of the processing loop, smoothed over recent frames."""

    def __init__(self, momentum=0.9):
        self.momentum, self.seconds, self.last = momentum, None, None

    def start(self):
        self.last = time.perf_counter()

    def stop(self):
        elapsed = time.perf_counter() - self.last
        self.seconds = elapsed if self.seconds is None else (
            self.momentum * self.seconds + (1 - self.momentum) * elapsed)
        return self.fps

    @property
    def fps(self):
        return 1.0 / self.seconds if self.seconds else 0.0


def put_text(frame, text, origin, scale=0.5, color=(255, 255, 255), background=(0, 0, 0)):
    """Text with a filled box behind it, so it reads on any image (in place)."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    x, y = origin
    cv2.rectangle(frame, (x - 2, y - height - 3), (x + width + 2, y + baseline + 1), background, -1)
    cv2.putText(frame, text, (x, y), font, scale, color, thickness, cv2.LINE_AA)
    return frame


def text_scale(frame):
    return max(0.35, frame.shape[0] / 600)


def show(frame, title):
    """Shows a frame; returns False when the user pressed q or Esc."""
    try:
        cv2.imshow(title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
    except cv2.error as error:
        raise SystemExit(
            "--show needs an OpenCV build with GUI support (opencv-python, not "
            f"opencv-python-headless): {error}"
        ) from None


def save_screenshot(frame, path, max_bytes=150_000):
    """Saves a PNG, scaled down until it fits in `max_bytes` (docs images stay small)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image, scale = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), 1.0
    while True:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        resized = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".png", resized, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if len(encoded) <= max_bytes or scale < 0.2:
            break
        scale *= 0.85
    with open(path, "wb") as f:
        f.write(encoded.tobytes())
    print(f"Screenshot: {path} ({resized.shape[1]}x{resized.shape[0]}, {len(encoded) // 1024} KB)")


# === Fallback models ===


def fit_briefly(model, data, epochs, cpu_seconds, **fit_arguments):
    """`model.fit` for `epochs` epochs or until `cpu_seconds` of this process's
    CPU time are spent, whichever comes first (the synthetic fallback must stay
    a short wait). CPU time, not wall time, so that a busy machine still
    trains the same model; the budget is checked after every batch."""
    import keras

    class _Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.process_time() - start > cpu_seconds:
                self.model.stop_training = True

    start, wall = time.process_time(), time.perf_counter()
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=[_Budget()], **fit_arguments)
    losses = history.history["loss"]
    print(f"  trained {len(losses)} epoch(s) in {time.perf_counter() - wall:.0f} s "
          f"({time.process_time() - start:.0f} CPU s), loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return model


def seed_everything(seed=0):
    import keras

    keras.utils.set_random_seed(seed)


def main_wrapper(run):
    """Runs `run(argv)`; turns bad input into a one-line error and exit code 2."""
    import sys

    def main(argv=None):
        try:
            return run(argv)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return main


ArgumentParser = argparse.ArgumentParser
