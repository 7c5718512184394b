"""Build a TensorRT engine from a kerasseg ONNX file, on the Jetson itself.

Engines are specific to the GPU and TensorRT version, so build them on the
device that runs them. Needs TensorRT >= 10 (JetPack 6) with its Python
bindings, cuda-python, numpy and OpenCV; not TensorFlow.

    python3 export/jetson/build_engine.py model.onnx model.engine --precision fp16
    python3 export/jetson/build_engine.py model.onnx model_int8.engine --precision int8 \
        --calibration-images calib/ --calibration-count 200
"""

import argparse
import json
import os
import sys
from pathlib import Path

# Run from a checkout without installing kerasseg (its runtime needs no TensorFlow).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from kerasseg.runtime.tensorrt import PRECISIONS, build_engine  # noqa: E402


def load_calibration_images(directory, size, layout, count):
    """Raw RGB pixels (float32, [0, 255]) resized to the engine input, in its layout."""
    import cv2

    names = sorted(n for n in os.listdir(directory)
                   if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")))[:count]
    if not names:
        sys.exit(f"no .png/.jpg images in {directory!r}")
    height, width = size
    images = []
    for name in names:
        bgr = cv2.imread(os.path.join(directory, name))
        rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR),
                           cv2.COLOR_BGR2RGB)
        images.append(rgb.astype(np.float32))
    images = np.stack(images)
    return images.transpose(0, 3, 1, 2) if layout == "NCHW" else images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("engine")
    parser.add_argument("--precision", default="fp16", choices=PRECISIONS)
    parser.add_argument("--calibration-images", help="folder of representative images (int8)")
    parser.add_argument("--calibration-count", type=int, default=200)
    parser.add_argument("--workspace-gb", type=float, default=2.0)
    args = parser.parse_args(argv)

    sidecar = args.onnx + ".json"
    metadata = json.load(open(sidecar)) if os.path.exists(sidecar) else {}
    images = None
    if args.precision == "int8" and args.calibration_images:
        shape = metadata.get("input", {}).get("shape")
        layout = metadata.get("input", {}).get("layout", "NHWC")
        if not shape:
            sys.exit(f"{sidecar} (written by kerasseg.export.to_onnx) is needed for int8")
        size = shape[2:4] if layout == "NCHW" else shape[1:3]
        images = load_calibration_images(args.calibration_images, size, layout,
                                         args.calibration_count)
    cache = os.path.splitext(args.engine)[0] + ".calib"
    build_engine(args.onnx, args.engine, args.precision, images, cache, args.workspace_gb)
    if metadata:  # the engine gets the ONNX sidecar, so run_engine.py finds labels and layout
        metadata["quantization"] = {"mode": args.precision}
        with open(args.engine + ".json", "w") as f:
            json.dump(metadata, f, indent=2)
    print(f"wrote {args.engine}" + (f" (calibration cache {cache})"
                                    if args.precision == "int8" else ""))


if __name__ == "__main__":
    main()
