"""`precision="auto"`: the fastest precision on this machine that meets the
accuracy target (of files within 5 % of the fastest, the smallest).

Each candidate precision is exported, scored on the validation images with
the int8 guarantee's measure (task metric with masks, clear-margin label
agreement without) and timed on one thread here; the fastest that meets the
target wins. int8 that misses its target (`Int8AgreementError`) is out.
Speed depends on the CPU (an int8 file is 2.65x fp32's speed on an AVX-512
VNNI CPU and 1.2x on an AVX2 one; benchmarks/export.py), so the choice is
made where the export runs, and the sidecar says where.
"""

import os
import shutil
import tempfile
import time

import numpy as np

from kerasseg.export import common, formats, int8

# Runs timed per candidate (the fastest counts: the others wait on a shared CPU).
RUNS = 10
# Times within this share of the fastest are a tie (timing noise between runs
# of one file is 2-5 % here): the smallest file among them wins.
TIE = 0.05


def time_file(path, image, runs=RUNS):
    """Fastest of `runs` one-thread runs of an exported file on `image`, in ms."""
    from kerasseg.runtime import Segmenter

    segmenter = Segmenter.load(path, num_threads=1)
    x = segmenter.quantize_input(image[None].astype(np.float32))
    segmenter.run(x)  # warm-up: delegate set-up, first-run allocations
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        segmenter.run(x)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best


def candidates(fmt):
    """The precisions "auto" tries for the format named `fmt`: its record's
    `auto` in `formats.EXPORT_FORMATS`."""
    tried = formats.EXPORT_FORMATS[fmt].auto
    if not tried:
        offered = [record.name for record in formats.EXPORT_FORMATS.values() if record.auto]
        raise ValueError(f"precision auto is available for {' and '.join(offered)}, not {fmt}")
    return tried


def fastest(export, path, fmt, model, images, settings):
    """Exports `path` at the fastest of the format's `candidates` that meets
    the target.

    Args:
        export: (precision, path) -> path, the exporter with every other
            argument bound (its int8 guarantee sees the same validation
            images).
        path: Where the chosen file goes (its sidecar beside it).
        fmt: The format's name in `formats.EXPORT_FORMATS`, e.g. "tflite".
        model: The Keras model (the reference).
        images: `int8.Images`: the held-out images (and masks) it is scored on.
        settings: `int8.Check`: the target.

    Returns:
        (chosen precision, rows, measure): a row per candidate
        {"precision", "ms", "score", "meets"}; the measure (None: unchecked).
    """
    from kerasseg.runtime import read_metadata, write_metadata

    measure = int8.measure_for(model, images, settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kerasseg_auto_") as directory:
        for precision in candidates(fmt):
            candidate = os.path.join(directory, precision + os.path.splitext(path)[1])
            try:
                export(precision, candidate)
            except int8.Int8AgreementError as error:
                rows.append({"precision": precision, "ms": None, "score": error.score,
                             "meets": False})
                continue
            score = None if measure is None else measure.score(int8.exported_labels(
                candidate, images.held_out, read_metadata(candidate)["input"]["layout"],
                settings.threshold))
            meets = measure is None or score >= measure.goal or precision == "fp32"
            rows.append({"precision": precision, "score": score, "meets": meets,
                         "ms": time_file(candidate, _nhwc_to_layout(images.held_out[0],
                                                                     candidate)),
                         "path": candidate})
        chosen = _choose(rows)
        shutil.copyfile(chosen["path"], path)
        metadata = read_metadata(chosen["path"])
        metadata["precision_choice"] = {
            "chosen": chosen["precision"], "measured_on": common.cpu_description(),
            "target": None if measure is None else measure.describe_target(),
            "candidates": [{key: row[key] for key in ("precision", "ms", "score", "meets")}
                           for row in rows]}
        write_metadata(path, metadata)
    for row in rows:
        row.pop("path", None)
    return chosen["precision"], rows, measure


def _choose(rows):
    """The smallest file among those that meet the target and are within TIE
    of the fastest of them."""
    meeting = [row for row in rows if row["meets"]]
    fastest = min(row["ms"] for row in meeting)
    tied = [row for row in meeting if row["ms"] <= fastest * (1 + TIE)]
    return min(tied, key=lambda row: os.path.getsize(row["path"]))


def _nhwc_to_layout(image, path):
    from kerasseg.runtime import read_metadata

    layout = read_metadata(path)["input"]["layout"]
    return image.transpose(2, 0, 1) if layout == "NCHW" else image


def describe(chosen, rows, measure):
    """Lines for the CLI: one per candidate, then the choice and why."""
    lines = []
    for row in rows:
        time_text = "   -    " if row["ms"] is None else f"{row['ms']:7.1f} ms"
        score = "" if row["score"] is None or measure is None else (
            f"  {measure.format(row['score'])}")
        status = "meets the target" if row["meets"] else "misses the target"
        lines.append(f"  {row['precision']:8s} {time_text}{score}  {status}")
    fp32 = next((row["ms"] for row in rows if row["precision"] == "fp32"), None)
    best = next(row for row in rows if row["precision"] == chosen)
    fastest = min(row["ms"] for row in rows if row["meets"])
    speed = f", {fp32 / best['ms']:.2f}x fp32's speed" if fp32 else ""
    lines.append(f"precision auto: {chosen}: meets the target and is the smallest file within "
                 f"{100 * TIE:.0f}% of the fastest that does ({fastest:.1f} ms){speed}")
    return "\n".join(lines)
