"""Google's published files (../shared/pretrained) loaded as presets: the
imported Keras model labels each file's own test picture as the file does.
Skipped, with the reason, where ../shared/pretrained is absent."""

import os
import pathlib

import numpy as np
import pytest

import kerasseg

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "pretrained"
pytestmark = pytest.mark.skipif(
    not (SHARED / "deeplabv3_mnv2_pascal_quant.tflite").is_file(),
    reason=f"Google's files are not in {SHARED} (the project's shared folder)",
)


@pytest.fixture(autouse=True)
def google_home(monkeypatch):
    monkeypatch.setenv("KERASSEG_HOME", str(SHARED))


def picture(name, size):
    import cv2

    image = cv2.cvtColor(cv2.imread(str(SHARED / f"{name}.bmp")), cv2.COLOR_BGR2RGB)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def file_output(path, image):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]


@pytest.mark.parametrize(
    ("weights", "arguments", "test_picture"),
    [("pascal_voc", {"backbone": "mobilenetv2"}, "bird_segmentation"),
     ("pascal_voc", {"backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.5}},
      "bird_segmentation"),
     ("cityscapes", {"backbone": "mobilenet_edgetpu"}, "cityscapes_segmentation")],
)
def test_preset_labels_its_test_picture_as_the_file_does(weights, arguments, test_picture):
    from kerasseg.inference import predict
    from kerasseg.pretrained import find_preset

    model = kerasseg.deeplabv3(weights=weights, **arguments)
    preset = find_preset("deeplabv3", weights, arguments["backbone"],
                         arguments.get("backbone_kwargs", {}).get("alpha", 1.0))
    image = picture(test_picture, 513)
    expected = file_output(SHARED / preset.file, image)
    labels = predict(model, image.astype("float32")).argmax(-1)
    # The file computes in uint8; the imported model in float32.
    assert np.mean(labels == expected) >= 0.97
    assert set(np.unique(labels)) == set(np.unique(expected))


def test_imagenet_backbone_classifies_like_the_file():
    """Our MobileNetV2 with the ImageNet file's weights, followed by the
    file's own classifier, picks the file's top class."""
    import keras

    from kerasseg.pretrained import TFLiteFile

    path = SHARED / "mobilenet_v2_1.0_224_quant.tflite"
    by_name = kerasseg.deeplabv3(backbone="mobilenetv2",
                                 backbone_weights="mobilenetv2_imagenet_quant")
    by_path = kerasseg.deeplabv3(backbone="mobilenetv2", backbone_weights=str(path))
    np.testing.assert_array_equal(np.asarray(by_name.get_layer("block_7_expand").kernel),
                                  np.asarray(by_path.get_layer("block_7_expand").kernel))
    backbone = kerasseg.backbones.build_backbone  # the features, as a model
    inputs = keras.Input((224, 224, 3))
    features = backbone("mobilenetv2", inputs)
    model = keras.Model(inputs, features["P5"])
    from kerasseg.pretrained import load_backbone_weights

    load_backbone_weights(keras.Model(inputs, features), str(path))
    logits_layer = next(layer for layer in TFLiteFile(path).layers()
                        if layer.scope.endswith("Logits/Conv2d_1c_1x1"))
    image = picture("bird_segmentation", 224)
    pooled = np.asarray(model(image[None].astype("float32"))).mean(axis=(1, 2))
    ours = pooled @ logits_layer.kernel[0, 0] + logits_layer.bias
    expected = file_output(path, image)
    assert int(np.argmax(ours)) == int(np.argmax(expected))


def test_from_preset_carries_class_names_and_palette():
    model = kerasseg.from_preset("cityscapes")
    assert model.class_names[0] == "road" and len(model.class_names) == 19
    assert np.asarray(model.palette).shape == (19, 3)
    fewer = kerasseg.from_preset("cityscapes", num_classes=11)
    assert fewer.output_shape[-1] == 11 and fewer.class_names is None
    # Every layer but the classifier holds the file's weights.
    np.testing.assert_array_equal(np.asarray(fewer.get_layer("Conv").kernel),
                                  np.asarray(model.get_layer("Conv").kernel))


@pytest.mark.parametrize("recipe, preset_classes, expected", [
    ("camvid_cityscapes", ("car", "truck", "bus", "train"), "Car"),
    ("portrait_voc", ("person", "background"), "person"),
])
def test_fine_tuning_recipes_build_from_the_preset_with_their_class_mapping(
        recipe, preset_classes, expected):
    # What `kerasseg train --config <recipe>` builds: every layer from the
    # file, the classifier from the file's by the recipe's class mapping, and
    # batch norm frozen at the file's statistics.
    from kerasseg import configs
    from kerasseg.pretrained import TFLiteFile, backbone_width, find_preset, preset_file
    from kerasseg.train import Config, build_model
    from kerasseg.train.model import batch_norm_layers

    config = Config.load(configs.recipe_path(recipe)).replace(data={"root": "/unused"})
    model = build_model(config, 1 if config.task == "binary" else 11,
                        **({"activation": "sigmoid"} if config.task == "binary" else {}))
    assert all(not layer.trainable for layer in batch_norm_layers(model))
    args = config.model.args
    preset = find_preset(config.model.name, args["weights"], args["backbone"],
                         backbone_width(args.get("backbone_kwargs")))
    source = next(layer for layer in TFLiteFile(preset_file(preset.name)).layers()
                  if layer.scope == "logits/semantic")
    columns = [preset.classes.index(name) for name in preset_classes]
    kernel = model.get_layer("classifier").kernel.numpy()
    if config.task == "binary":  # person minus background
        expected_kernel = source.kernel[..., columns[0]] - source.kernel[..., columns[1]]
        np.testing.assert_allclose(kernel[..., 0], expected_kernel, atol=1e-5)
    else:
        from kerasseg.data import CAMVID_CLASSES

        np.testing.assert_allclose(kernel[..., CAMVID_CLASSES.index(expected)],
                                   source.kernel[..., columns].mean(-1), atol=1e-5)


def test_the_student_recipe_starts_from_the_voc_files_backbone_and_fits_250_kb(tmp_path):
    from kerasseg import configs
    from kerasseg.export import to_tflite
    from kerasseg.pretrained import TFLiteFile, preset_file
    from kerasseg.train import Config, build_model

    config = Config.load(configs.recipe_path("portrait_student")).replace(data={"root": "/x"})
    model = build_model(config, 1, activation="sigmoid")
    file = TFLiteFile(preset_file(config.model.args["backbone_weights"]))
    first = next(layer for layer in file.layers() if layer.scope == "MobilenetV2/Conv")
    np.testing.assert_allclose(model.get_layer("Conv1").kernel.numpy(), first.kernel, atol=1e-6)
    images = np.random.default_rng(0).uniform(0, 255, (8, 256, 256, 3)).astype(np.float32)
    path = to_tflite(model, str(tmp_path / "student.tflite"), image_size=(256, 256),
                     precision="int8", calibration_data=images, min_agreement=None,
                     output="probabilities", per_channel=False)
    # Weights per tensor: per channel adds 12 bytes a channel (336 KB here).
    assert os.path.getsize(path) <= 250_000  # MediaPipe's file is 244 KB (fp16)


def test_a_preset_teacher_at_its_image_size_gives_the_files_labels_to_a_one_class_student():
    import cv2

    from kerasseg.pretrained import resolve_preset
    from kerasseg.train.distill import teacher_probabilities

    preset = resolve_preset("deeplabv3_mobilenetv2_0.5_pascal_voc")
    image = picture("bird_segmentation", 513)
    bird = (file_output(SHARED / preset.file, image) == preset.classes.index("bird"))
    bird = cv2.resize(bird.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
    # The student sees 256x256; the teacher runs at the file's 513x513.
    student_images = picture("bird_segmentation", 256).astype(np.float32)[None]
    targets = teacher_probabilities(
        preset.name, 1, class_names=("background", "person"),
        class_mapping={"background": "background", "bird": "person"},
        image_size=(513, 513))(student_images)
    assert targets.shape == (1, 256, 256, 1)
    # 0.976 here; the same teacher run at 256x256 agrees on 0.937 only.
    assert np.mean((targets[0, ..., 0].numpy() > 0.5) == bird) >= 0.96
    with pytest.raises(ValueError, match="loss.teacher_class_mapping: 'bird' -> 'dog', which "
                                         "is not a class of the dataset"):
        teacher_probabilities(preset.name, 1, class_names=("background", "person"),
                              class_mapping={"bird": "dog"})


def test_the_trainer_distils_from_a_preset_teacher_by_its_loss_keys(tmp_path, monkeypatch):
    from kerasseg.train import Config, distill, train
    from tests.data.test_binary_masks import _pair

    for number in (1, 2, 201):
        _pair(tmp_path / "people", str(number), size=(48, 36), mask_scale=2,
              image_dir="Training_Images", mask_dir="Ground_Truth", seed=number)
    calls = []
    real = distill.teacher_probabilities
    monkeypatch.setattr(distill, "teacher_probabilities",
                        lambda *args, **kwargs: calls.append(kwargs) or real(*args, **kwargs))
    values = {
        "model": {"name": "unet", "args": {"base_filters": 4, "depth": 2}},
        "data": {"dataset": "people", "root": str(tmp_path / "people"), "image_size": [64, 64],
                 "resize": True, "batch_size": 2},
        "loss": {"name": "dice", "teacher": "deeplabv3_mobilenetv2_0.5_pascal_voc",
                 "teacher_weight": 0.5, "teacher_image_size": [96, 96],
                 "teacher_class_mapping": {"background": "background", "person": "person"}},
        "training": {"epochs": 1, "precision": "float32", "verbose": 0,
                     "output_dir": str(tmp_path / "run")},
    }
    result = train(Config.from_dict(values))
    assert calls == [{"class_names": ("background", "person"),
                      "class_mapping": {"background": "background", "person": "person"},
                      "image_size": (96, 96)}]
    assert np.isfinite(result.history["loss"][-1])
    values["loss"]["teacher_class_mapping"] = {"human": "person"}
    values["training"]["output_dir"] = str(tmp_path / "bad")
    with pytest.raises(ValueError, match="loss.teacher_class_mapping: 'human' is not a class "
                                         "of preset"):
        train(Config.from_dict(values))
