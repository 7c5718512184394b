"""`kerasseg export`: every format from a saved model, and its errors."""

import importlib.util
import os

import numpy as np
import onnx
import pytest

from kerasseg.cli import main
from kerasseg.runtime import Segmenter, read_metadata


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.keras"
    model.save(path)
    return str(path)


def test_tflite_int8_calibrated_on_synthetic_scenes(saved, images, reference, tmp_path,
                                                    capsys):
    out = str(tmp_path / "m.tflite")
    assert main(["export", saved, out, "--image-size", "64", "64", "--quantization", "int8",
                 "--calibration", "synthetic", "--calibration-steps", "4",
                 "--io-dtype", "uint8", "--min-agreement", "0.5"]) == 0
    segmenter = Segmenter.load(out)
    assert segmenter.input.dtype == np.uint8
    record = read_metadata(out)["quantization"]
    assert record["mode"] == "int8" and record["min_agreement"] == 0.5
    assert segmenter.predict(images).shape == reference.shape[:-1]
    assert (f"int8: labels agree with Keras on {100 * record['agreement']:.2f}% of the "
            f"clear-margin pixels ({100 * record['clear_pixels']:.1f}% of all) of 2 held-out "
            f"images (target 50.00%); {100 * record['coverage']:.1f}% of the multiply-adds in "
            "int8") in capsys.readouterr().out


def test_tflite_int8_without_calibration_names_the_flag(saved, tmp_path, capsys):
    out = str(tmp_path / "m_int8.tflite")
    assert main(["export", saved, out, "--quantization", "int8"]) == 2
    error = capsys.readouterr().err
    assert "--precision int8 needs --calibration DIR|synthetic" in error
    assert "--quantization is deprecated; use --precision int8" in error
    assert "representative_data" not in error and not os.path.exists(out)


def test_onnx_int8_needs_calibration_and_stores_qdq(saved, tmp_path, capsys):
    out = str(tmp_path / "m_int8.onnx")
    assert main(["export", saved, out, "--image-size", "64", "64", "--precision", "int8"]) == 2
    assert "--precision int8 needs --calibration" in capsys.readouterr().err
    assert main(["export", saved, out, "--image-size", "64", "64", "--nchw",
                 "--precision", "int8", "--calibration", "synthetic",
                 "--calibration-steps", "4"]) == 0
    assert read_metadata(out)["quantization"]["mode"] == "int8"
    assert read_metadata(out)["input"]["shape"] == [1, 3, 64, 64]
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed: the fallback message is not shown")
def test_tensorrt_without_tensorrt_prints_the_command(saved, tmp_path, capsys):
    engine = str(tmp_path / "m.engine")
    assert main(["export", saved, engine, "--image-size", "64", "64", "--nchw"]) == 1
    printed = capsys.readouterr().out
    assert f"--saveEngine={engine} --stronglyTyped" in printed
    assert read_metadata(str(tmp_path / "m.onnx"))["quantization"] == {"mode": "fp16"}


def test_class_names_and_colours_come_from_the_run_config(tmp_path):
    # A CamVid run's model exported without --labels carries CamVid's names and
    # SegNet's palette (the driving demo draws and names classes from them).
    import keras

    from kerasseg.data.labels import CAMVID_CLASSES, CAMVID_PALETTE

    image = keras.Input((16, 16, 3))
    model = keras.Model(image, keras.layers.Conv2D(len(CAMVID_CLASSES), 1)(image))
    model.save(tmp_path / "model.keras")
    (tmp_path / "config.yaml").write_text("data: {dataset: camvid, root: /data/CamVid}\n")
    out = str(tmp_path / "camvid.tflite")
    assert main(["export", str(tmp_path / "model.keras"), out]) == 0
    metadata = read_metadata(out)
    assert metadata["labels"] == list(CAMVID_CLASSES)
    assert metadata["palette"] == np.asarray(CAMVID_PALETTE).tolist()
    (tmp_path / "config.yaml").unlink()  # no run config: no names
    assert main(["export", str(tmp_path / "model.keras"), out]) == 0
    assert read_metadata(out)["labels"] is None


def test_output_defaults_to_what_the_model_returns(tmp_path):
    # A portrait model ends in a sigmoid: exported as it is, without --output.
    import keras

    image = keras.Input((16, 16, 3))
    model = keras.Model(image, keras.layers.Conv2D(1, 1, activation="sigmoid")(image))
    model.save(tmp_path / "portrait.keras")
    out = str(tmp_path / "portrait.tflite")
    assert main(["export", str(tmp_path / "portrait.keras"), out]) == 0
    assert read_metadata(out)["outputs"][0]["kind"] == "probabilities"
    assert main(["export", str(tmp_path / "portrait.keras"), out, "--output", "logits"]) == 2
