"""Segment a camera stream, a video or images with a TensorRT engine.

    python3 export/jetson/run_engine.py model.engine --source 0                 # USB camera
    python3 export/jetson/run_engine.py model.engine --source "nvarguscamerasrc ! \
        video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! video/x-raw,format=BGRx ! \
        videoconvert ! video/x-raw,format=BGR ! appsink"                        # CSI camera
    python3 export/jetson/run_engine.py model.engine --source drive.mp4 --output out.mp4

Frames are resized to the engine's input size and the logits back to the
frame size exactly as `kerasseg.runtime.Segmenter` does on every backend.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kerasseg.runtime import Segmenter, colorize  # noqa: E402


def _capture(source):
    if source.isdigit():
        return cv2.VideoCapture(int(source))
    if "!" in source:  # a GStreamer pipeline (CSI cameras on Jetson)
        return cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
    return cv2.VideoCapture(source)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", help=".engine/.plan (also .onnx or .tflite for testing)")
    parser.add_argument("--source", default="0", help="camera index, video file or pipeline")
    parser.add_argument("--output", help="write the overlay video here")
    parser.add_argument("--show", action="store_true", help="display a window")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    args = parser.parse_args(argv)

    segmenter = Segmenter.load(args.engine)
    palette = segmenter.palette
    if palette is None:  # no sidecar: a fixed pseudo-random palette
        palette = np.random.default_rng(0).integers(0, 255, (256, 3), dtype=np.uint8)
    capture = _capture(args.source)
    if not capture.isOpened():
        sys.exit(f"cannot open source {args.source!r}")
    writer, frames, start = None, 0, time.perf_counter()
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        labels = segmenter.predict(rgb)
        overlay = cv2.cvtColor(colorize(labels, palette), cv2.COLOR_RGB2BGR)
        blended = cv2.addWeighted(bgr, 1 - args.alpha, overlay, args.alpha, 0)
        if args.output:
            if writer is None:
                fps = capture.get(cv2.CAP_PROP_FPS) or 30
                writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (bgr.shape[1], bgr.shape[0]))
            writer.write(blended)
        if args.show:
            cv2.imshow("kerasseg", blended)
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
        frames += 1
        if frames % 30 == 0:
            print(f"{frames} frames, {frames / (time.perf_counter() - start):.1f} FPS")
        if args.max_frames and frames >= args.max_frames:
            break
    if writer is not None:
        writer.release()
    capture.release()
    elapsed = time.perf_counter() - start
    print(f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} FPS)")


if __name__ == "__main__":
    main()
