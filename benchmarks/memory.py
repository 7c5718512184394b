"""Peak memory of `Segmenter.predict` on camera frames, 12 MP and 48 MP.

Exports the default (quickstart) DeepLabv3+ at 256x256 to float TFLite, then,
in a fresh subprocess per row (TensorFlow never imported there: the runtime
does not need it), loads the file with `kerasseg.runtime.Segmenter`, makes a
random uint8 frame and segments it. Prints the process's resident memory
after loading the model (Python, NumPy, LiteRT and the model), the frame's
size, and the peak resident memory of the prediction, as the peak above the
loaded model in multiples of the uint8 frame ("x frame"; the aim is under 4:
the frame itself, the int32 labels it returns, 1.33, and the bands being
worked on). `--full-resolution` adds rows for the path `predict` took
before: `predict_proba(...).argmax(-1)`, every class's probabilities at full
resolution.

Usage:
    python benchmarks/memory.py [--frames 12 48] [--tiles] [--full-resolution]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODEL_SIZE = (256, 256)
CLASSES = 7
# Frames of 12 MP (4000x3000) and 48 MP (8000x6000), as phone cameras write them.
FRAMES = {12: (3000, 4000), 48: (6000, 8000)}


def export_model(directory):
    """The default model, untrained (memory does not depend on its weights), as TFLite."""
    from kerasseg.export import to_tflite
    from kerasseg.train import Config, build_model

    model = build_model(Config(), CLASSES)
    return str(to_tflite(model, os.path.join(directory, "model.tflite"), MODEL_SIZE))


def measure(path, megapixels, options, full_resolution):
    """Runs in the subprocess: one prediction; returns its figures."""
    import numpy as np

    from kerasseg.runtime import Segmenter

    def status_mib(key):
        # /proc, not getrusage: ru_maxrss keeps the parent's peak across exec.
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(key))
        return int(line.split()[1]) / 1024

    segmenter = Segmenter.load(path, num_threads=1)
    segmenter.predict(np.zeros((64, 64, 3), np.uint8))  # the interpreter's buffers
    loaded = status_mib("VmRSS:")
    frame = np.random.default_rng(0).integers(0, 256, (*FRAMES[megapixels], 3), np.uint8)
    start = time.perf_counter()
    if full_resolution:
        labels = segmenter.predict_proba(frame, **options).argmax(-1).astype(np.int32)
    else:
        labels = segmenter.predict(frame, **options)
    seconds = time.perf_counter() - start
    peak = status_mib("VmHWM:")
    return {"loaded_mib": loaded, "frame_mib": frame.nbytes / 2**20, "peak_mib": peak,
            "seconds": seconds, "labels": list(labels.shape)}


def run_row(path, megapixels, options, full_resolution):
    arguments = json.dumps([path, megapixels, options, full_resolution])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", arguments],
                            capture_output=True, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": root})
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[12, 48], choices=FRAMES)
    parser.add_argument("--tiles", action="store_true", help="also 256x256 tiles (slow)")
    parser.add_argument("--full-resolution", action="store_true",
                        help="also the full-resolution probabilities path (GBs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return
    modes = [("whole image", {})]
    if args.tiles:
        modes.append(("tiles 256x256", {"tile_size": list(MODEL_SIZE)}))
    with tempfile.TemporaryDirectory() as directory:
        path = export_model(directory)
        print(f"model: {os.path.getsize(path) / 2**20:.1f} MiB float TFLite, "
              f"{MODEL_SIZE[0]}x{MODEL_SIZE[1]}, {CLASSES} classes; one thread\n")
        print("| frame | inference | path | loaded model (MiB) | frame (MiB) | peak (MiB) "
              "| peak - loaded, x frame | seconds |")
        print("|---|---|---|---|---|---|---|---|")
        for megapixels in args.frames:
            for mode, options in modes:
                for full in (False, True) if args.full_resolution else (False,):
                    row = run_row(path, megapixels, options, full)
                    ratio = (row["peak_mib"] - row["loaded_mib"]) / row["frame_mib"]
                    print(f"| {megapixels} MP | {mode} | "
                          f"{'predict_proba().argmax()' if full else 'predict (bands)'} | "
                          f"{row['loaded_mib']:.0f} | {row['frame_mib']:.0f} | "
                          f"{row['peak_mib']:.0f} | {ratio:.2f} | {row['seconds']:.1f} |",
                          flush=True)


if __name__ == "__main__":
    main()
