"""`evaluate` and `predict` on inputs that used to be scored or written
wrongly with exit 0: a missing --config, the synthetic scenes used without a
word, a model of another class count, outputs overwriting each other, one bad
image stopping a batch."""

import cv2
import numpy as np
import pytest

from kerasseg.cli import main


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory):
    """A tiny untrained 3-class U-Net saved as .keras, with no config.yaml beside it."""
    import kerasseg

    path = tmp_path_factory.mktemp("model") / "model.keras"
    kerasseg.unet(3, base_filters=4, depth=2).save(path)
    return path


def test_evaluate_refuses_a_missing_config(three_class_model, tmp_path, capsys):
    # It used to ignore the missing file and score the synthetic scenes, exit 0.
    assert main(["evaluate", "--model", str(three_class_model),
                 "--config", str(tmp_path / "typo.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kerasseg evaluate: error: Config file not found: {tmp_path / 'typo.yaml'}"]


def test_evaluate_says_it_scores_the_synthetic_scenes_and_checks_the_class_count(
        three_class_model, capsys):
    assert main(["evaluate", "--model", str(three_class_model)]) == 2
    captured = capsys.readouterr()
    first = captured.out.splitlines()[0]
    assert first.startswith("No --config and no config.yaml beside") and "synthetic" in first
    # 3 classes against the synthetic scenes' 7: no table of nan and zeros.
    assert captured.err.strip() == (
        "kerasseg evaluate: error: --model scores 3 classes, the 'synthetic' data has 7: "
        "evaluate a model on the data it was trained for (--config: the run's config.yaml).")
    assert "mean_iou" not in captured.out


def _image(path, size=(24, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return str(path)


def test_predict_keeps_relative_paths_so_same_names_do_not_overwrite(
        three_class_model, tmp_path, capsys):
    first = _image(tmp_path / "day" / "x.png", (24, 32))
    second = _image(tmp_path / "night" / "x.png", (16, 40))
    output = tmp_path / "out"
    assert main(["predict", "--model", str(three_class_model), first, second,
                 "--output-dir", str(output)]) == 0
    assert "Wrote 2 label maps" in capsys.readouterr().out
    # Both kept (before: one out/x_labels.png, the other overwritten).
    for name, shape in (("day", (24, 32)), ("night", (16, 40))):
        labels = cv2.imread(str(output / name / "x_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == shape and labels.max() < 3
        assert (output / name / "x_overlay.png").exists()


def test_predict_refuses_duplicate_outputs_before_writing_anything(
        three_class_model, tmp_path, capsys):
    png, jpg = _image(tmp_path / "a" / "x.png"), _image(tmp_path / "a" / "x.jpg")
    output = tmp_path / "out"
    assert main(["predict", "--model", str(three_class_model), png, jpg,
                 "--output-dir", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"kerasseg predict: error: inputs: {png} and {jpg} would both write "
                   f"{output / 'x'}_labels.png; rename one, or predict them separately.")
    assert not output.exists()


def test_predict_keep_going_skips_a_bad_image_and_fails_at_the_end(
        three_class_model, tmp_path, capsys):
    for index in (1, 3):
        _image(tmp_path / "in" / f"{index}.png")
    bad = tmp_path / "in" / "2.png"
    bad.write_bytes(b"not a png")
    output = tmp_path / "out"
    command = ["predict", "--model", str(three_class_model), str(tmp_path / "in"),
               "--output-dir", str(output)]
    assert main(command) == 2  # stops at the bad image
    assert "Cannot read image" in capsys.readouterr().err
    assert not (output / "3_labels.png").exists()
    assert main([*command, "--keep-going"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"kerasseg predict: warning: skipped {bad}: Cannot read "
                                    f"image {bad}: not an image file, or corrupt")
    assert "Wrote 2 label maps and overlays" in captured.out and "skipped 1" in captured.out
    assert sorted(p.name for p in output.glob("*_labels.png")) == ["1_labels.png",
                                                                   "3_labels.png"]
