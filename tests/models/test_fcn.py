import numpy as np
import pytest

import kerasseg
from tests.model_tester import ModelTester


class TestFCN8s(ModelTester):
    # The VGG16 configuration is checked below without training it: 134M
    # parameters are too slow to overfit on a CI CPU.
    builder = staticmethod(kerasseg.fcn8s)
    config = {"backbone": "mobilenetv2"}
    overfit_learning_rate = 5e-3


def test_fcn_vgg16_any_size_output():
    model = kerasseg.fcn8s(num_classes=3, reduced_fc=True)
    out = model.predict(np.zeros((1, 67, 45, 3), "float32"), verbose=0)
    assert out.shape == (1, 67, 45, 3)


def test_fcn8s_vgg16_has_the_papers_parameter_count():
    # 14,714,688 (VGG16 convs) + 102,764,544 (fc6 7x7x512x4096) + 16,781,312
    # (fc7) + 102,207 (score_fr 4096->21, score_pool4 512->21, score_pool3
    # 256->21) + 127,008 (upsampling kernels 4x4, 4x4 and 16x16 of 21x21):
    # the paper's "134M".
    assert kerasseg.fcn8s(num_classes=21).count_params() == 134_489_759


def test_fcn_variants_differ_only_in_skips():
    names = {
        stride: {layer.name for layer in builder(num_classes=2, reduced_fc=True).layers}
        for stride, builder in ((32, kerasseg.fcn32s), (16, kerasseg.fcn16s), (8, kerasseg.fcn8s))
    }
    assert "score_pool4" not in names[32]
    assert "score_pool4" in names[16] and "score_pool3" not in names[16]
    assert {"score_pool4", "score_pool3", "upscore8"} <= names[8]


def test_fcn_initial_skip_scores_are_zero_so_8s_starts_as_32s_geometry():
    model = kerasseg.fcn8s(num_classes=2, reduced_fc=True)
    for name in ("score_pool4", "score_pool3"):
        assert not np.any(model.get_layer(name).get_weights()[0])


def test_fcn_frozen_upsampling_has_no_trainable_kernel():
    model = kerasseg.fcn8s(num_classes=2, reduced_fc=True, trainable_upsampling=False)
    assert model.get_layer("upscore8").trainable_weights == []


def test_fcn_four_channel_input():
    model = kerasseg.fcn16s(num_classes=2, input_shape=(None, None, 4), reduced_fc=True)
    assert model.predict(np.zeros((1, 33, 47, 4), "float32"), verbose=0).shape == (1, 33, 47, 2)


def test_fcn_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"backbone.*Received: backbone='resnet18'"):
        kerasseg.fcn8s(num_classes=2, backbone="resnet18")
    with pytest.raises(ValueError, match="3 input channels"):
        kerasseg.fcn8s(num_classes=2, input_shape=(None, None, 4), backbone_weights="imagenet")
    with pytest.raises(ValueError, match="reduced_fc"):
        kerasseg.fcn8s(num_classes=2, backbone="mobilenetv2", reduced_fc=True)
    with pytest.raises(ValueError, match="weights"):
        kerasseg.fcn8s(num_classes=2, weights="/nonexistent/file.weights.h5")


def test_fcn_backbone_weights_load_by_name_from_keras_applications(tmp_path):
    import keras

    reference = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / "vgg16_notop.weights.h5"
    reference.save_weights(path)
    model = kerasseg.fcn32s(num_classes=2, reduced_fc=True, backbone_weights=str(path))
    loaded = [layer for layer in reference.layers if layer.weights]
    assert len(loaded) == 13
    for layer in loaded:
        for ours, theirs in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_fcn_convolutionalises_vgg16_classifier(tmp_path):
    import keras

    reference = keras.applications.VGG16(include_top=True, weights=None)
    path = tmp_path / "vgg16_top.weights.h5"
    reference.save_weights(path)
    model = kerasseg.fcn32s(num_classes=2, backbone_weights=str(path))
    # fc6 on a 7x7x512 map at its centre equals fc1 on the flattened map.
    features = np.random.default_rng(0).normal(size=(1, 7, 7, 512)).astype("float32")
    kernel, bias = model.get_layer("fc6").get_weights()
    conv_centre = np.tensordot(features[0], kernel, axes=([0, 1, 2], [0, 1, 2])) + bias
    dense = reference.get_layer("fc1")(features.reshape(1, -1)).numpy()[0]
    np.testing.assert_allclose(np.maximum(conv_centre, 0), dense, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(
        model.get_layer("fc7").get_weights()[0][0, 0], reference.get_layer("fc2").get_weights()[0]
    )


def test_fcn_backbone_kwargs_reach_the_backbone():
    narrow = kerasseg.fcn8s(num_classes=2, backbone="mobilenetv2",
                            backbone_kwargs={"alpha": 0.35})
    full = kerasseg.fcn8s(num_classes=2, backbone="mobilenetv2")
    # alpha scales the first conv's filters: 32 -> 16 (rounded to a multiple of 8)
    assert narrow.get_layer("Conv1").filters == 16
    assert full.get_layer("Conv1").filters == 32
    assert narrow.count_params() < full.count_params() / 2
