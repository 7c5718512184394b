"""Errors a person can act on: known failures print one or two lines on stderr
and exit 2, `--debug` shows the traceback, and the `kerasseg` program keeps
TensorFlow's C++ log lines off the screen."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
import yaml

from kerasseg import KerassegError
from kerasseg.cli import main, user_error

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bad_folder(tmp_path):
    """A folder dataset whose train masks 2 and 5 hold labels >= num_classes."""
    from kerasseg.data.synthetic import write_synthetic_folder

    for split, count in (("train", 8), ("val", 4)):
        write_synthetic_folder(tmp_path / "data" / split, split, num_images=count,
                               image_size=(64, 64))
    for index, label in ((2, 9), (5, 12)):
        path = str(tmp_path / "data" / "train" / "masks" / f"train_{index:05d}.png")
        mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        mask[5:10, 5:10] = label
        cv2.imwrite(path, mask)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "unet", "args": {"base_filters": 4, "depth": 2}},
        "data": {"dataset": "folder", "root": str(tmp_path / "data"), "num_classes": 7,
                 "image_size": [64, 64], "batch_size": 8},
        "training": {"epochs": 1, "output_dir": str(tmp_path / "run"), "verbose": 0},
    }))
    return config


def test_bad_mask_at_the_first_batch_is_one_line_naming_the_file(bad_folder, capsys):
    assert main(["train", "--config", str(bad_folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2, err
    assert err[0].startswith("kerasseg train: error: Mask has labels outside [0, 7)")
    assert "masks/train_00002.png" in err[0] or "masks/train_00005.png" in err[0]
    with pytest.raises(tf.errors.InvalidArgumentError):
        main(["train", "--config", str(bad_folder), "--debug"])


def test_validate_lists_every_bad_file_of_the_split(bad_folder, capsys):
    assert main(["validate", "--config", str(bad_folder), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "2 bad example(s) in folder split 'train'" in err
    assert "train_00002.png min/max 0 9" in err and "train_00005.png min/max 0 12" in err
    assert main(["validate", "--config", str(bad_folder), "--split", "val"]) == 0
    assert "'val': 4 examples, all valid" in capsys.readouterr().out
    assert main(["train", "--config", str(bad_folder), "--validate-data"]) == 2
    assert "2 bad example(s)" in capsys.readouterr().err


def _raised(function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - the error is what the test looks at
        return error
    raise AssertionError(f"{function} raised nothing")


def test_known_failures_have_messages_and_bugs_do_not(tmp_path):
    from kerasseg.utils import check_positive_int

    # Raised on purpose: kerasseg's own checks, its error class, a missing file
    # or optional package, TensorFlow's data errors.
    assert user_error(_raised(check_positive_int, "epochs", 0)).startswith("`epochs` must be")
    assert user_error(KerassegError("`data.root` is required")) == "`data.root` is required"
    assert str(tmp_path / "x.yaml") in user_error(_raised(open, tmp_path / "x.yaml"))
    assert user_error(ModuleNotFoundError("No module named 'onnx'", name="onnx")).endswith(
        "'onnx'")
    # Through autograph (a tf.data map): the original message, not TF's stack dump.
    traced = _raised(lambda: tf.data.Dataset.from_tensors(0).map(
        lambda x: check_positive_int("batch_size", 0)))
    assert user_error(traced) == "`batch_size` must be an integer >= 1. Received: batch_size=0"
    # Bugs: whatever kerasseg did not raise itself, a ValueError from NumPy included.
    assert user_error(_raised(np.zeros, -1)) is None
    assert user_error(ValueError("raised by someone else")) is None
    assert user_error(RuntimeError("a bug")) is None
    assert user_error(KeyError("a bug")) is None
    data_error = tf.errors.InvalidArgumentError(
        None, None, "Error in user-defined function: assertion failed: [Not a JPEG/PNG/BMP/GIF "
        "image (empty or corrupt file):] [train/images/7.png]\n\t [[{{node Assert}}]]")
    message = user_error(data_error)
    assert message.splitlines()[0] == (
        "Not a JPEG/PNG/BMP/GIF image (empty or corrupt file): train/images/7.png")
    assert "kerasseg validate" in message


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    import kerasseg.cli.summary

    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(kerasseg.cli.summary, "run", broken)
    assert main(["summary"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'missing'" in err
    assert err.strip().splitlines()[-1] == (
        "kerasseg summary: this is a bug, please report it with the traceback above.")
    with pytest.raises(KeyError):
        main(["summary", "--debug"])


def test_missing_config_file_and_bad_key(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "Config file not found" in capsys.readouterr().err
    assert main(["validate", "--config", str(tmp_path / "missing.yaml"),
                 "--set", "data.rot=x"]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_the_program_keeps_tensorflow_log_lines_off_stderr(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": "synthetic"}}))
    result = subprocess.run(
        [sys.executable, "-m", "kerasseg.cli", "validate", "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no files to check" in result.stdout
    assert "absl" not in result.stderr and "I0000" not in result.stderr, result.stderr


def test_set_merges_a_mapping_into_the_one_it_overrides(tmp_path):
    from argparse import Namespace

    from kerasseg.cli.options import load_config
    from kerasseg.train import Config

    defaults = Config().model.args

    def loaded(*items):
        return load_config(Namespace(config=None, set=list(items)))

    args = loaded("model.args={decoder_filters: 32}").model.args
    assert args == {**defaults, "decoder_filters": 32}  # replaced the whole mapping before
    args = loaded("model.args.backbone_kwargs.alpha=0.5", "model.args.aspp_filters=16").model.args
    assert args["backbone_kwargs"] == {**defaults["backbone_kwargs"], "alpha": 0.5}
    assert args["aspp_filters"] == 16 and args["decoder_filters"] == defaults["decoder_filters"]
    assert loaded("training.epochs=3").training.epochs == 3
    with pytest.raises(ValueError, match=r"--set 'model.args=\{x': the value is not YAML"):
        loaded("model.args={x")


def test_a_file_that_is_not_a_config_is_not_echoed(tmp_path, capsys):
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"user{i}:x:{i}:{i}:User {i}:/home/user{i}:/bin/sh\n"
                              for i in range(200)))
    binary = tmp_path / "model.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    for path in (passwd, binary, tmp_path):
        assert main(["validate", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and len(err) < 300, err
        assert str(path) in err and "user150" not in err


def test_corrupt_keras_files_and_directories_as_model(tmp_path, capsys):
    import zipfile

    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    not_keras = tmp_path / "other.keras"
    with zipfile.ZipFile(not_keras, "w") as archive:
        archive.writestr("readme.txt", "hello")
    expected = {
        truncated: "is not a .keras file (a zip archive): corrupt, truncated",  # "File not found"
        not_keras: "Could not load",
        tmp_path: "is a directory; expected a .keras, .tflite",  # was "no such file"
        tmp_path / "missing.keras": "No such model file",
    }
    for path, message in expected.items():
        assert main(["predict", "--model", str(path), str(image),
                     "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and str(path) in err, err
