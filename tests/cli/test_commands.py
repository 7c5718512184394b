"""`kerasseg quickstart --fast`, `train`, `evaluate` and `predict` end to end."""

import json

import cv2
import numpy as np
import pytest
import yaml

from kerasseg.cli import main


@pytest.fixture(scope="module")
def quickstart_dir(tmp_path_factory):
    output = tmp_path_factory.mktemp("quickstart")
    assert main(["quickstart", "--fast", "--output-dir", str(output)]) == 0
    return output


def test_quickstart_fast_writes_everything(quickstart_dir, capsys):
    for name in ("config.yaml", "model.keras", "metrics.csv", "metrics.json",
                 "eval/metrics.json", "eval/confusion.png"):
        assert (quickstart_dir / name).exists(), name
    assert len(list((quickstart_dir / "eval" / "overlays").glob("*.png"))) == 8
    scores = json.loads((quickstart_dir / "eval" / "metrics.json").read_text())
    assert set(scores["per_class_iou"]) == {"sky", "grass", "road", "wall", "person", "car",
                                            "ball"}
    assert np.asarray(scores["confusion"]).sum() == 8 * 64 * 64  # every val pixel scored
    config = yaml.safe_load((quickstart_dir / "config.yaml").read_text())
    assert config["model"]["name"] == "deeplabv3plus"
    assert config["model"]["args"]["backbone"] == "mobilenetv2"
    overlay = cv2.imread(str(quickstart_dir / "eval" / "overlays" / "000.png"))
    assert overlay.shape == (64, 3 * 64 + 2 * 4, 3)  # image | truth | prediction


def test_evaluate_sliding_window_multi_scale_flip(quickstart_dir, tmp_path, capsys):
    output = tmp_path / "eval"
    code = main(["evaluate", "--model", str(quickstart_dir / "model.keras"),
                 "--tile-size", "48", "48", "--scales", "0.75", "1.0", "--flip",
                 "--num-overlays", "2", "--output-dir", str(output)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean_iou" in printed and "frequency_weighted_iou" in printed
    scores = json.loads((output / "metrics.json").read_text())
    assert 0 <= scores["mean_iou"] <= 1
    assert np.asarray(scores["confusion"]).sum() == 8 * 64 * 64
    assert (output / "confusion.png").exists()
    assert len(list((output / "overlays").glob("*.png"))) == 2


def test_predict_writes_label_maps_and_overlays(quickstart_dir, tmp_path, capsys):
    from kerasseg.data.synthetic import write_synthetic_folder

    folder = write_synthetic_folder(tmp_path / "photos", "test", num_images=2,
                                    image_size=(40, 56))
    output = tmp_path / "predictions"
    assert main(["predict", "--model", str(quickstart_dir / "model.keras"),
                 f"{folder}/images", "--output-dir", str(output)]) == 0
    for index in range(2):
        labels = cv2.imread(str(output / f"test_{index:05d}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (40, 56) and labels.max() < 7
        assert cv2.imread(str(output / f"test_{index:05d}_overlay.png")).shape == (40, 56, 3)
    assert main(["predict", "--model", str(quickstart_dir / "model.keras"),
                 str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_train_with_config_file_and_overrides(tmp_path, capsys):
    config = {
        "model": {"name": "unet", "args": {"base_filters": 4, "depth": 2}},
        "data": {"image_size": [64, 64], "num_train_images": 8, "num_val_images": 4,
                 "batch_size": 4, "augment": True},
        "training": {"epochs": 3, "steps_per_epoch": 2, "verbose": 0},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--output-dir", str(run), "--epochs", "1",
                 "--set", "optimizer.name=adamw", "--set", "training.validate=false"]) == 0
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["optimizer"]["name"] == "adamw"
    assert recorded["training"]["epochs"] == 1 and recorded["training"]["validate"] is False
    assert recorded["training"]["output_dir"] == str(run)
    assert recorded["optimizer"]["momentum"] == 0.9  # defaults are recorded too
    assert (run / "model.keras").exists()
    capsys.readouterr()
    assert main(["train", "--config", str(path), "--set", "epochs=3"]) == 2
    assert "SECTION.KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--config", str(path), "--set", "training.epoch=3"]) == 2
    assert "unknown key(s) 'epoch'" in capsys.readouterr().err


def test_evaluate_an_exported_file_through_the_same_path(quickstart_dir, tmp_path, capsys):
    output = tmp_path / "eval_tflite"
    assert main(["evaluate", "--model", str(quickstart_dir / "model.tflite"),
                 "--config", str(quickstart_dir / "config.yaml"), "--num-overlays", "1",
                 "--output-dir", str(output)]) == 0
    exported = json.loads((output / "metrics.json").read_text())
    keras_scores = json.loads((quickstart_dir / "eval" / "metrics.json").read_text())
    assert np.asarray(exported["confusion"]).sum() == 8 * 64 * 64
    # The float file agrees with Keras on >= 99.9% of labels (quickstart's check).
    changed = np.abs(np.asarray(exported["confusion"]) - np.asarray(keras_scores["confusion"]))
    assert changed.sum() <= 2 * 0.001 * 8 * 64 * 64
    assert (output / "overlays" / "000.png").exists()



def test_a_recipe_name_is_a_config(tmp_path, capsys):
    from tests.data.test_camvid import _write_camvid

    _write_camvid(tmp_path)
    assert main(["validate", "--config", "camvid_segnet", "--set",
                 f"data.root={tmp_path}", "--split", "train", "val"]) == 0
    out = capsys.readouterr().out
    assert "camvid 'train':" in out and "camvid 'val':" in out and "all valid" in out
