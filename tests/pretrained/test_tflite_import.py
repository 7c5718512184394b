"""The `.tflite` importer on files the tests write themselves (slim_files.py):
float, uint8 per-tensor and int8 per-channel kernels with batch norm folded
in, loaded into a fresh model that must then compute what the original did."""

import keras
import numpy as np
import pytest

import kerasseg
from kerasseg.pretrained import TFLiteFile, load_model_weights, load_tflite_weights
from tests.backbones.backbone_checks import randomize_batch_norm
from tests.pretrained.slim_files import write_slim_file

TINY = {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35}, "aspp_filters": 16}


def tiny_deeplab(seed, **overrides):
    keras.utils.set_random_seed(seed)
    model = kerasseg.deeplabv3(5, **{**TINY, **overrides})
    randomize_batch_norm(model, seed=seed)
    return model


@pytest.fixture(scope="module")
def original():
    return tiny_deeplab(seed=1)


def images():
    return np.random.default_rng(3).uniform(0, 255, (2, 65, 65, 3)).astype("float32")


def test_float_file_reproduces_the_model(original, tmp_path):
    path = tmp_path / "float.tflite"
    write_slim_file(original, path, "float")
    imported = tiny_deeplab(seed=2)
    assert not np.allclose(imported(images()), original(images()), atol=1e-2)
    filled = load_model_weights(imported, str(path), "deeplabv3", "mobilenetv2", {"alpha": 0.35})
    expected, actual = np.asarray(original(images())), np.asarray(imported(images()))
    scale = np.abs(expected).max()
    # Folding and unfolding batch norm reorders float32 products only.
    np.testing.assert_allclose(actual / scale, expected / scale, atol=1e-4)
    assert filled is imported


@pytest.mark.parametrize("mode", ["uint8", "int8"])
def test_quantized_kernels_are_dequantized_exactly(original, tmp_path, mode):
    path = tmp_path / f"{mode}.tflite"
    meant = write_slim_file(original, path, mode)
    imported = tiny_deeplab(seed=2)
    filled = load_tflite_weights(
        imported, path, lambda scope: kerasseg.pretrained.layer_name(scope, "MobilenetV2")
    )
    assert sorted(filled) == sorted(meant)
    for name in ("Conv1", "expanded_conv_depthwise", "block_5_expand", "aspp_conv_0",
                 "classifier"):
        kernel, bias = meant[name]
        np.testing.assert_array_equal(np.asarray(imported.get_layer(name).kernel), kernel)
    # The projection's input channels: file order (image pooling, aspp0) -> ours.
    kernel, _ = meant["aspp_projection"]
    ours = np.asarray(imported.get_layer("aspp_projection").kernel)
    np.testing.assert_array_equal(ours[:, :, :16], kernel[:, :, 16:])
    np.testing.assert_array_equal(ours[:, :, 16:], kernel[:, :, :16])
    # Batch norm adds the folded bias and is otherwise the identity.
    batch_norm = imported.get_layer("block_5_expand_BN")
    probe = np.random.default_rng(0).normal(size=(1, 2, 2, batch_norm.gamma.shape[0]))
    np.testing.assert_allclose(
        batch_norm(probe.astype("float32"), training=False), probe + meant["block_5_expand"][1],
        rtol=1e-5, atol=1e-5,
    )
    # Quantised weights stay close to the model's own: the same labels nearly everywhere.
    agreement = np.mean(np.argmax(imported(images()), -1) == np.argmax(original(images()), -1))
    assert agreement > 0.9


def test_a_shape_mismatch_names_the_layer_and_both_shapes(original, tmp_path):
    path = tmp_path / "float.tflite"
    write_slim_file(original, path, "float")
    wider = tiny_deeplab(seed=2, aspp_filters=24)
    with pytest.raises(ValueError) as error:
        load_model_weights(wider, str(path), "deeplabv3", "mobilenetv2", {"alpha": 0.35})
    message = str(error.value)
    assert "\n" not in message
    # The first ASPP convolution in the file's order is the image pooling one.
    assert "image_pooling -> layer 'aspp_pool_conv'" in message
    assert "(1, 1, 112, 16)" in message and "(1, 1, 112, 24)" in message


def test_a_layer_missing_from_the_file_is_named(original, tmp_path):
    path = tmp_path / "partial.tflite"
    write_slim_file(original, path, "float", leave_out=("block_16_project",))
    with pytest.raises(ValueError, match="nothing in the file for layer 'block_16_project'"):
        load_model_weights(tiny_deeplab(seed=2), str(path), "deeplabv3", "mobilenetv2",
                           {"alpha": 0.35})


def test_another_class_count_keeps_every_layer_but_the_classifier(original, tmp_path):
    path = tmp_path / "float.tflite"
    meant = write_slim_file(original, path, "float")
    fewer = tiny_deeplab(seed=2)
    fewer = kerasseg.deeplabv3(2, **TINY)
    initial = np.asarray(fewer.get_layer("classifier").kernel)
    filled = load_tflite_weights(
        fewer, path, lambda scope: kerasseg.pretrained.layer_name(scope, "MobilenetV2"),
        skip=("classifier",),
    )
    assert "classifier" not in filled
    np.testing.assert_array_equal(np.asarray(fewer.get_layer("classifier").kernel), initial)
    np.testing.assert_array_equal(np.asarray(fewer.get_layer("Conv1").kernel), meant["Conv1"][0])


def test_backbone_weights_from_a_tflite_file(original, tmp_path):
    path = tmp_path / "float.tflite"
    meant = write_slim_file(original, path, "float")
    model = kerasseg.deeplabv3(7, backbone_weights=str(path), **TINY)
    np.testing.assert_array_equal(np.asarray(model.get_layer("block_3_project").kernel),
                                  meant["block_3_project"][0])
    # The head is the builder's own, not the file's.
    assert model.get_layer("classifier").kernel.shape[-1] == 7


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a .tflite file"):
        TFLiteFile(path)
    with pytest.raises(FileNotFoundError, match="no such .tflite file"):
        TFLiteFile(tmp_path / "missing.tflite")
