"""Shipped recipes: listed by name, package data, and valid `Config` files."""

import pytest

from kerasseg import configs
from kerasseg.train import Config


def test_recipes_are_listed_and_found_by_name():
    names = configs.list_recipes()
    assert {"camvid_segnet", "camvid_deeplabv3plus_mobilenetv2"} <= set(names)
    assert configs.recipe_path("camvid_segnet") == configs.recipe_path("camvid_segnet.yaml")
    with pytest.raises(ValueError, match="camvid_segnet"):
        configs.recipe_path("camvid_segnt")


# Each recipe's task and dataset, and what sets its loss apart.
RECIPES = {
    "camvid_segnet": ("semantic", "camvid"),
    "camvid_deeplabv3plus_mobilenetv2": ("semantic", "camvid"),
    "portrait_lraspp": ("binary", "people"),
    "camvid_cityscapes": ("semantic", "camvid"),
    "portrait_voc": ("binary", "people"),
    "portrait_student": ("binary", "people"),
}


def test_every_recipe_is_listed_here():
    assert set(configs.list_recipes()) == set(RECIPES)


@pytest.mark.parametrize("name", configs.list_recipes())
def test_recipes_load_as_valid_configs(name):
    config = Config.load(configs.recipe_path(name))
    assert (config.task, config.data.dataset) == RECIPES[name]
    if config.data.dataset == "camvid":
        assert config.loss.args.get("class_weights") == "median_frequency"
    else:  # portrait: photos resized to the model's input, portrait augmentation on
        assert config.data.resize and config.data.copy_paste > 0 and config.data.blur > 0
    # What the recipe's comment tells users to run: another root, nothing else.
    moved = config.replace(data={"root": "/elsewhere/data"})
    assert moved.data.root == "/elsewhere/data" and moved.model == config.model
    if config.model.args.get("weights"):  # fine-tuning from a preset: its folded BN stays frozen
        assert config.model.freeze_batch_norm and config.model.class_mapping
    if name == "portrait_student":  # distilled from the teacher recipe's run
        assert config.loss.teacher == "runs/portrait_voc/teacher_512.tflite"
        assert 0 < config.loss.teacher_weight <= 1


def test_recipes_are_package_data():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "configs/*.yaml" in package_data["kerasseg"]
