"""`kerasseg export`: int8 and auto precision from a run directory, and the
checks that happen before any conversion (issue 25 point 6, issue 26)."""

import os

import numpy as np
import pytest

from kerasseg.cli import main
from kerasseg.runtime import read_metadata


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli_int8") / "tiny.keras"
    model.save(path)
    return str(path)


def test_extension_is_case_insensitive(saved, tmp_path, capsys):
    out = str(tmp_path / "M.TFLITE")
    assert main(["export", saved, out, "--image-size", "64", "64"]) == 0
    assert os.path.isfile(out)  # a file, not a SavedModel folder
    assert read_metadata(out)["input"]["shape"] == [1, 64, 64, 3]


def test_output_path_checked_before_the_conversion(saved, tmp_path, capsys, monkeypatch):
    from kerasseg.export import tflite

    def never(*args, **kwargs):
        raise AssertionError("converted before checking the output path")

    monkeypatch.setattr(tflite, "to_tflite", never)  # the converter the tflite record names
    missing = str(tmp_path / "no_such_folder" / "m.tflite")
    assert main(["export", saved, missing, "--image-size", "64", "64"]) == 2
    error = capsys.readouterr().err
    assert "no_such_folder" in error and "does not exist" in error and len(
        error.strip().splitlines()) == 1
    folder = tmp_path / "m.tflite"
    folder.mkdir()
    assert main(["export", saved, str(folder), "--image-size", "64", "64"]) == 2
    assert "is a folder; a tflite export writes a file" in capsys.readouterr().err


def test_corrupt_calibration_image_names_the_file(saved, tmp_path, capsys):
    import cv2

    folder = tmp_path / "calibration"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 64, 3), 40 * i, np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = str(tmp_path / "m.tflite")
    assert main(["export", saved, out, "--image-size", "64", "64", "--precision", "int8",
                 "--calibration", str(folder)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "broken.jpg" in error and "cannot read" in error
    assert not os.path.exists(out)


def test_int8_from_the_run_config_is_checked_in_the_task_metric(tmp_path, capsys):
    # A run directory: the model and its config.yaml (synthetic scenes). The
    # export draws calibration and labelled validation scenes at the export
    # size from the run's splits and states the guarantee as mIoU loss.
    import keras

    from kerasseg.data.synthetic import NUM_CLASSES

    run = tmp_path / "run"
    run.mkdir()
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(
        keras.layers.Rescaling(1 / 255)(image))
    keras.Model(image, keras.layers.Conv2D(NUM_CLASSES, 1)(x)).save(run / "model.keras")
    (run / "config.yaml").write_text("data: {dataset: synthetic, image_size: [32, 32]}\n")
    out = str(tmp_path / "m.tflite")
    assert main(["export", str(run / "model.keras"), out, "--image-size", "64", "64",
                 "--precision", "int8", "--calibration-steps", "8",
                 "--max-metric-loss", "100"]) == 0
    record = read_metadata(out)["quantization"]
    assert record["measure"] == "mIoU" and record["held_out_images"] == 32
    assert record["calibration_images"] == 8 and 0 < record["coverage"] <= 1
    assert abs(record["float_score"] - record["int8_score"]) <= 100
    printed = capsys.readouterr().out
    assert (f"int8: mIoU {record['int8_score']:.2f} against Keras {record['float_score']:.2f} "
            "on 32 labelled images") in printed


def test_precision_auto_picks_the_fastest_that_meets_the_target(saved, tmp_path, capsys):
    out = str(tmp_path / "auto.tflite")
    assert main(["export", saved, out, "--image-size", "64", "64", "--precision", "auto",
                 "--calibration", "synthetic", "--validation", "synthetic",
                 "--calibration-steps", "8", "--max-metric-loss", "100"]) == 0
    choice = read_metadata(out)["precision_choice"]
    rows = {row["precision"]: row for row in choice["candidates"]}
    assert set(rows) == {"fp32", "fp16", "dynamic", "int8"}
    meeting = [row for row in rows.values() if row["meets"]]
    fastest = min(row["ms"] for row in meeting)
    assert rows[choice["chosen"]]["meets"] and rows[choice["chosen"]]["ms"] <= 1.05 * fastest
    assert read_metadata(out)["quantization"]["mode"] == (
        "none" if choice["chosen"] == "fp32" else choice["chosen"])
    assert f"precision auto: {choice['chosen']}: meets the target" in capsys.readouterr().out


def test_deprecated_quantization_flag_still_works(saved, tmp_path, capsys):
    out = str(tmp_path / "m.tflite")
    assert main(["export", saved, out, "--image-size", "64", "64", "--quantization",
                 "fp16"]) == 0
    assert read_metadata(out)["quantization"]["mode"] == "fp16"
    assert "--quantization is deprecated; use --precision fp16" in capsys.readouterr().err


def test_evaluate_on_the_int8_file_reproduces_its_sidecar_score(tmp_path, capsys):
    # The export validates on the run's validation split at the export size;
    # `kerasseg evaluate` of that file on the same split gives the same mIoU.
    import json

    import keras

    from kerasseg.data.synthetic import NUM_CLASSES

    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(1)
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(
        keras.layers.Rescaling(1 / 255)(image))
    keras.Model(image, keras.layers.Conv2D(NUM_CLASSES, 1)(x)).save(run / "model.keras")
    config = "data: {dataset: synthetic, image_size: [48, 48], num_val_images: 32}\n"
    (run / "config.yaml").write_text(config)
    out = str(tmp_path / "m.tflite")
    assert main(["export", str(run / "model.keras"), out, "--image-size", "48", "48",
                 "--precision", "int8", "--calibration-steps", "8",
                 "--max-metric-loss", "100"]) == 0
    int8_score = read_metadata(out)["quantization"]["int8_score"]
    assert main(["evaluate", "--model", out, "--config", str(run / "config.yaml"),
                 "--output-dir", str(tmp_path / "eval")]) == 0
    with open(tmp_path / "eval" / "metrics.json") as f:
        mean_iou = json.load(f)["mean_iou"]
    assert 100 * mean_iou == pytest.approx(int8_score, abs=1e-3)


def test_benchmark_names_the_cpu_and_its_instruction_sets():
    import platform

    from benchmarks.export import HEADER, PRECISIONS, cpu_line

    line = cpu_line()
    assert line.startswith("CPU: ") and "ISA: " in line and "LiteRT" in line
    if platform.machine() == "x86_64":
        flags = open("/proc/cpuinfo").read().split()
        assert ("avx2" in line) == ("avx2" in flags)
        assert ("no avx512f" in line) == ("avx512f" not in flags)
    assert PRECISIONS == ("fp32", "fp16", "dynamic", "int8")
    assert all(f"MB {name}" in HEADER for name in PRECISIONS)
