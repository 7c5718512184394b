"""`Config.replace` and `--set` resolve defaults from the values the user gave."""

import argparse

import pytest

from kerasseg.models import MODELS
from kerasseg.train import Config, train


def _one_step(tmp_path):
    return [
        "data.image_size=[64, 64]", "data.batch_size=2", "data.num_train_images=2",
        "data.num_val_images=2", "data.augment=false", "training.epochs=1",
        "training.steps_per_epoch=1", "training.validate=false", "training.verbose=0",
        "training.precision=float32", f"training.output_dir={tmp_path / 'run'}",
    ]


def test_replace_model_name_drops_the_default_models_args():
    config = Config.from_dict({"training": {"epochs": 2}}).replace(model={"name": "unet"})
    assert config.model.args == {}
    assert config.training.epochs == 2  # what the user gave stays
    built = Config().replace(model={"name": "segnet"})  # a Config built from its sections
    assert built.model.args == {}


def test_replace_model_name_resolves_the_task_defaults():
    panoptic = Config.from_dict({"model": {"name": "lpsnet"}})
    assert panoptic.loss.name == "lpsnet" and panoptic.optimizer.schedule == "step"
    changed = panoptic.replace(training={"epochs": 3})
    assert changed.loss.name == "lpsnet" and changed.optimizer.schedule == "step"
    # Back to a semantic model: the panoptic defaults go with the panoptic model.
    semantic = panoptic.replace(model={"name": "unet"})
    assert semantic.loss.name == "cross_entropy" and semantic.optimizer.schedule == "poly"
    assert Config().replace(model={"name": "lpsnet"}).loss.name == "lpsnet"


def test_replace_keeps_given_args_of_the_same_model():
    config = Config.from_dict({"model": {"name": "unet", "args": {"depth": 2}}})
    assert config.replace(model={"bn_momentum": 0.9}).model.args == {"depth": 2}
    with pytest.raises(ValueError, match="replace\\(\\): section `model` must be a mapping"):
        config.replace(model="unet")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_set_model_name_trains_one_step_from_the_default_config(tmp_path, name):
    from kerasseg.cli.options import load_config

    args = argparse.Namespace(config=None, set=[f"model.name={name}", *_one_step(tmp_path)])
    config = load_config(args)
    assert config.model.name == name
    result = train(config)
    assert len(result.history["loss"]) == 1
