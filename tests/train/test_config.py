"""Training config: loading, round trips, and errors that name the key and the file."""

import json

import pytest

from kerasseg.train import Config
from kerasseg.train.config import DATASETS


def test_config_round_trip_yaml_and_json(tmp_path):
    config = Config.from_dict({"optimizer": {"name": "adamw"}, "training": {"epochs": 3}})
    path = config.save(tmp_path)
    assert Config.load(path) == config
    json_path = tmp_path / "config.json"
    json_path.write_text(json.dumps(config.to_dict()))
    assert Config.load(json_path) == config
    assert Config.load(path).data.image_size == (128, 128)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"optimiser": {}}, "unknown key.*'optimiser'.*Valid keys"),
        ({"training": {"epoch": 3}}, "section `training`: unknown key.*'epoch'"),
        ({"optimizer": {"name": "adam"}}, "optimizer.name.*'sgd', 'adamw'.*'adam'"),
        ({"optimizer": {"learning_rate": -1}}, "optimizer.learning_rate"),
        ({"data": {"image_size": [16, 16]}}, "data.image_size"),
        ({"data": {"batch_size": 0}}, "data.batch_size"),
        ({"data": {"dataset": "voc"}}, "data.root.*required"),
        ({"training": {"strategy": "tpu"}}, "training.strategy"),
        ({"data": {"scale_range": [2.0, 0.5]}}, "data: `scale_range`"),
        ({"data": {"blur": 2}}, "data: `blur`"),
        ({"data": {"paste_class": True}}, "data: `paste_class`"),
    ],
)
def test_config_errors_name_the_key(tmp_path, values, message):
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ValueError, match=message) as error:
        Config.load(path)
    assert str(path) in str(error.value)


def test_config_datasets_match_the_readers():
    from kerasseg.data.readers import DATASETS as READERS

    assert set(DATASETS) == {"synthetic", *READERS}


def test_unparsable_config_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        Config.load(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        Config.load(tmp_path / "missing.yaml")
