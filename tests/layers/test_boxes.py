"""BoxDecoder: the geometry of `kerasseg.panoptic.targets`, serialization, and
files saved when it lived in `kerasseg.models.lpsnet`."""

import json
import zipfile

import keras
import numpy as np
import tensorflow as tf

from kerasseg.layers import BoxDecoder
from kerasseg.panoptic.targets import level_points
from tests.layer_checks import assert_outputs_close, check_layer_round_trip


def test_box_decoder_matches_target_geometry(tmp_path):
    # Zero logits mean distances of one stride around each cell's point.
    boxes = BoxDecoder(16)(tf.zeros((1, 4, 6, 4))).numpy()[0]
    ys, xs, strides = level_points(64, 96)
    ys, xs = ys[strides == 16], xs[strides == 16]
    np.testing.assert_allclose(boxes[:, 0], xs + 0.5 - 16)
    np.testing.assert_allclose(boxes[:, 3], ys + 0.5 + 16)
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5, 4)), tf.float32)
    check_layer_round_trip(BoxDecoder(8, name="decoder"), logits, tmp_path)


def test_file_saved_with_the_old_module_path_loads(tmp_path):
    # Files saved before the layer moved to kerasseg.layers record
    # module "kerasseg.models.lpsnet"; the registered name "kerasseg>BoxDecoder"
    # is what resolves the class.
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, BoxDecoder(8, name="boxes")(inputs))
    path, old = tmp_path / "new.keras", tmp_path / "old.keras"
    model.save(path)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layers = config["config"]["layers"]
                (layer,) = [c for c in layers if c["class_name"] == "BoxDecoder"]
                assert layer["registered_name"] == "kerasseg>BoxDecoder"
                layer["module"] = "kerasseg.models.lpsnet"
                data = json.dumps(config)
            target.writestr(item, data)
    loaded = keras.saving.load_model(old, safe_mode=True)
    assert isinstance(loaded.get_layer("boxes"), BoxDecoder)
    x = np.random.default_rng(1).normal(size=(1, 3, 5, 4)).astype("float32")
    assert_outputs_close(loaded(x), model(x))
