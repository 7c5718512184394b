"""`kerasseg.pretrained.map_classifier`: a classifier of other classes
initialised from a preset's by class name, on a file the test writes."""

import numpy as np
import pytest

import kerasseg
import kerasseg.pretrained as pretrained
from kerasseg.data.labels import VOC_CLASSES
from tests.pretrained.slim_files import write_slim_file

TINY = {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35}, "aspp_filters": 16}
VOC = pretrained.PRESETS["deeplabv3_mobilenetv2_pascal_voc"]


@pytest.fixture(scope="module")
def voc_like(tmp_path_factory):
    """(21-class model, the file written from it): a stand-in for the VOC preset."""
    model = kerasseg.deeplabv3(21, **TINY)
    rng = np.random.default_rng(0)
    classifier = model.get_layer("classifier")
    classifier.set_weights([rng.normal(size=w.shape).astype(np.float32)
                            for w in classifier.get_weights()])
    path = tmp_path_factory.mktemp("voc") / "voc_like.tflite"
    write_slim_file(model, str(path), "float")
    return model, str(path)


@pytest.fixture
def from_file(voc_like, monkeypatch):
    monkeypatch.setattr(pretrained, "preset_file", lambda name: voc_like[1])
    return voc_like[0].get_layer("classifier").get_weights()


def test_each_class_gets_the_mean_of_the_classes_mapped_to_it(from_file):
    kernel, bias = from_file
    model = kerasseg.deeplabv3(3, **TINY)
    untouched = model.get_layer("classifier").get_weights()
    mapping = {"car": "vehicle", "bus": "vehicle", "cat": "animal", "dog": "animal"}
    filled = pretrained.map_classifier(model, VOC, mapping, ("other", "vehicle", "animal"))
    assert filled == ["vehicle", "animal"]
    new_kernel, new_bias = model.get_layer("classifier").get_weights()
    index = VOC_CLASSES.index
    np.testing.assert_allclose(new_kernel[..., 1], kernel[..., [index("car"), index("bus")]]
                               .mean(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_bias[2], bias[[index("cat"), index("dog")]].mean(), rtol=1e-5)
    np.testing.assert_array_equal(new_kernel[..., 0], untouched[0][..., 0])  # nothing mapped


def test_a_one_channel_model_scores_foreground_against_background(from_file):
    kernel, bias = from_file
    model = kerasseg.deeplabv3(1, activation="sigmoid", **TINY)
    pretrained.map_classifier(model, VOC, {"background": "background", "person": "person"},
                              ("background", "person"))
    new_kernel, new_bias = model.get_layer("classifier").get_weights()
    np.testing.assert_allclose(new_kernel[..., 0], kernel[..., 15] - kernel[..., 0], atol=1e-5)
    np.testing.assert_allclose(new_bias[0], bias[15] - bias[0], atol=1e-5)


def test_names_outside_either_side_are_refused_in_one_line(from_file):
    model = kerasseg.deeplabv3(1, activation="sigmoid", **TINY)
    with pytest.raises(ValueError, match="'pedestrian' is not a class of preset"):
        pretrained.map_classifier(model, VOC, {"pedestrian": "person"}, ("background", "person"))
    with pytest.raises(ValueError, match="'human', which is not a class of the model"):
        pretrained.map_classifier(model, VOC, {"person": "human"}, ("background", "person"))
    with pytest.raises(ValueError, match="needs preset classes mapped to both"):
        pretrained.map_classifier(model, VOC, {"person": "person"}, ("background", "person"))
