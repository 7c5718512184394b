"""LiteRT runner for embedded Linux: segment images or a video with a .tflite.

Needs numpy, opencv-python-headless and ai-edge-litert; not TensorFlow.

    python3 export/litert/run_litert.py model.tflite photo.jpg --output out/
    python3 export/litert/run_litert.py model.tflite street.mp4 --output out/ --threads 2
    python3 export/litert/run_litert.py model.tflite --benchmark 50 --threads 4

For every image it writes `<name>_labels.png` (class ids) and
`<name>_overlay.jpg` (palette over the image); for a video, an overlay video.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from kerasseg.runtime import Segmenter, colorize  # noqa: E402

VIDEO = (".mp4", ".avi", ".mov", ".mkv")


def _palette(segmenter):
    if segmenter.palette is not None:
        return segmenter.palette
    return np.random.default_rng(0).integers(0, 255, (256, 3), dtype=np.uint8)


def _segment_image(segmenter, path, output, alpha):
    import cv2

    bgr = cv2.imread(path)
    if bgr is None:
        sys.exit(f"cannot read image {path!r}")
    labels = segmenter.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    stem = os.path.join(output, Path(path).stem)
    cv2.imwrite(stem + "_labels.png", labels.astype(np.uint8))
    overlay = cv2.cvtColor(colorize(labels, _palette(segmenter)), cv2.COLOR_RGB2BGR)
    cv2.imwrite(stem + "_overlay.jpg", cv2.addWeighted(bgr, 1 - alpha, overlay, alpha, 0))
    names = segmenter.labels or [str(i) for i in range(int(labels.max()) + 1)]
    present = {names[c] if c < len(names) else str(c): int((labels == c).sum())
               for c in np.unique(labels)}
    print(f"{path}: {present}")


def _segment_video(segmenter, path, output, alpha):
    import cv2

    capture = cv2.VideoCapture(path)
    writer, frames, start = None, 0, time.perf_counter()
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        labels = segmenter.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        overlay = cv2.cvtColor(colorize(labels, _palette(segmenter)), cv2.COLOR_RGB2BGR)
        if writer is None:
            writer = cv2.VideoWriter(os.path.join(output, Path(path).stem + "_overlay.mp4"),
                                     cv2.VideoWriter_fourcc(*"mp4v"),
                                     capture.get(cv2.CAP_PROP_FPS) or 30,
                                     (bgr.shape[1], bgr.shape[0]))
        writer.write(cv2.addWeighted(bgr, 1 - alpha, overlay, alpha, 0))
        frames += 1
    if writer is not None:
        writer.release()
    elapsed = time.perf_counter() - start
    print(f"{path}: {frames} frames, {frames / max(elapsed, 1e-9):.1f} FPS")


def _benchmark(segmenter, runs):
    shape = tuple(s or 256 for s in segmenter.input.shape)
    x = np.random.default_rng(0).uniform(0, 255, shape)
    x = segmenter.quantize_input(x)  # the exact input tensor, so only the model is timed
    segmenter.run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        segmenter.run(x)
        times.append(time.perf_counter() - start)
    print(f"input {shape} {segmenter.input.dtype}: median {1e3 * np.median(times):.2f} ms, "
          f"min {1e3 * np.min(times):.2f} ms over {runs} runs")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .tflite file (its .json sidecar is read if present)")
    parser.add_argument("inputs", nargs="*", help="images and/or videos")
    parser.add_argument("--output", default=".", help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--benchmark", type=int, default=0, metavar="RUNS",
                        help="time RUNS invocations on a random input")
    args = parser.parse_args(argv)
    segmenter = Segmenter.load(args.model, num_threads=args.threads)
    os.makedirs(args.output, exist_ok=True)
    if args.benchmark:
        _benchmark(segmenter, args.benchmark)
    for path in args.inputs:
        if path.lower().endswith(VIDEO):
            _segment_video(segmenter, path, args.output, args.alpha)
        else:
            _segment_image(segmenter, path, args.output, args.alpha)
    if not args.inputs and not args.benchmark:
        parser.error("give images/videos to segment or --benchmark RUNS")


if __name__ == "__main__":
    main()
