"""`benchmarks/camvid.py`'s recipe runs: the final model trained on train+val
keeps the recipe's epochs and drops the validation that would score training
frames."""

import pytest

from benchmarks.camvid import main, recipe_config


def test_recipe_on_train_keeps_its_validation(tmp_path):
    config = recipe_config("camvid_cityscapes", str(tmp_path), str(tmp_path / "run"))
    assert config.data.train_split == "train"
    assert config.training.validate is True
    assert config.training.output_dir == str(tmp_path / "run")


def test_recipe_on_trainval_trains_the_same_epochs_without_validation(tmp_path):
    shipped = recipe_config("camvid_cityscapes", str(tmp_path), str(tmp_path / "a"))
    final = recipe_config("camvid_cityscapes", str(tmp_path), str(tmp_path / "b"),
                          train_split="trainval")
    assert final.data.train_split == "trainval"
    assert final.training.validate is False
    assert final.training.epochs == shipped.training.epochs
    assert final.model == shipped.model and final.optimizer == shipped.optimizer


def test_trainval_needs_a_recipe(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tmp_path), "--train-split", "trainval"])
    assert exit_info.value.code == 2
    assert "--train-split trainval needs --recipe" in capsys.readouterr().err


def test_steps_round_to_epochs_of_the_split_trained(tmp_path):
    on_train = recipe_config("camvid_cityscapes", str(tmp_path), str(tmp_path / "a"), steps=460)
    on_trainval = recipe_config("camvid_cityscapes", str(tmp_path), str(tmp_path / "b"),
                                steps=460, train_split="trainval")
    assert on_train.training.epochs == 10  # 45 steps an epoch of 367 frames
    assert on_trainval.training.epochs == 8  # 58 steps an epoch of 468 frames
