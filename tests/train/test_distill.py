"""Distillation in the trainer: `loss.teacher` (kerasseg.train.distill)."""

import keras
import numpy as np
import pytest

import kerasseg
from kerasseg.data.synthetic import NUM_CLASSES
from kerasseg.train import Config, train
from kerasseg.train.distill import DistilledModel, teacher_probabilities


def pixel_classifier(num_classes, input_shape=(None, None, 3), **_):
    """Per-pixel linear classifier of the colour: a task a 1x1 conv can learn exactly."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(num_classes, 1, name="classifier")(x))


kerasseg.register_builder("distill_pixel_classifier", pixel_classifier)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A teacher whose labels depend on the colour only, and not as the
    synthetic masks do: a student can match it only by learning from it."""
    teacher = pixel_classifier(NUM_CLASSES)
    kernel = np.random.default_rng(3).normal(0, 4, (1, 1, 3, NUM_CLASSES)).astype(np.float32)
    teacher.get_layer("classifier").set_weights([kernel, np.zeros(NUM_CLASSES, np.float32)])
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    teacher.save(path)
    return teacher, path


def distill_config(output_dir, teacher, teacher_weight):
    return Config.from_dict({
        "model": {"name": "distill_pixel_classifier", "args": {}},
        "data": {"image_size": [32, 32], "num_train_images": 16, "num_val_images": 4,
                 "batch_size": 8},
        "optimizer": {"name": "adamw", "learning_rate": 0.1, "weight_decay": 0.0,
                      "warmup_steps": 0},
        "loss": {"name": "cross_entropy", "teacher": teacher, "teacher_weight": teacher_weight},
        "training": {"epochs": 4, "steps_per_epoch": 40, "checkpoint_every": 160,
                     "output_dir": str(output_dir), "precision": "float32", "verbose": 0},
    })


def agreement(student, teacher):
    """Label agreement on scenes like the training ones (the student learns
    the teacher where it sees images), but not the same scenes."""
    from kerasseg.data.synthetic import synthetic_dataset

    images = np.stack([image for image, _ in synthetic_dataset("val", 4, (32, 32), seed=5)
                       .as_numpy_iterator()])
    return np.mean(np.argmax(student.predict(images, verbose=0), -1)
                   == np.argmax(teacher.predict(images, verbose=0), -1))


def test_a_student_of_the_teacher_alone_matches_it_and_one_of_the_masks_does_not(
        tmp_path, teacher_file):
    teacher, path = teacher_file
    result = train(distill_config(tmp_path / "distilled", str(path), 1.0))
    assert agreement(result.model, teacher) >= 0.9
    # best.keras is the student itself, not the wrapper that trained it.
    best = keras.models.load_model(tmp_path / "distilled" / "best.keras")
    assert not isinstance(best, DistilledModel)
    assert agreement(best, teacher) >= 0.85
    masks_only = train(distill_config(tmp_path / "masks", None, 1.0)).model
    assert agreement(masks_only, teacher) < 0.6


def test_a_tflite_teacher_gives_the_targets_of_its_keras_model(tmp_path, teacher_file):
    teacher, path = teacher_file
    exported = kerasseg.export.to_tflite(teacher, str(tmp_path / "teacher.tflite"),
                                         image_size=(24, 24))
    images = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    from_keras = teacher_probabilities(str(path), NUM_CLASSES)(images)
    from_file = teacher_probabilities(exported, NUM_CLASSES)(images)
    assert from_file.shape == (2, 24, 24, NUM_CLASSES)
    np.testing.assert_allclose(from_file, from_keras, atol=1e-4)
    np.testing.assert_allclose(np.sum(from_keras, -1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="runs at its own input size"):
        teacher_probabilities(exported, NUM_CLASSES, image_size=(32, 32))


def test_a_teacher_runs_at_its_image_size_and_its_targets_come_back_at_the_students():
    # A teacher that accepts 16x16 images only (the reshapes fail on any
    # other size), run on 8x12 batches: one colour per image, so each pixel's
    # target is the softmax of the colour's logits, whatever the resizing.
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(NUM_CLASSES, 1, name="classifier")(x)
    x = keras.layers.Reshape((16, 16, NUM_CLASSES))(keras.layers.Reshape((-1,))(x))
    teacher = keras.Model(inputs, x)
    kernel = np.random.default_rng(4).normal(0, 2, (3, NUM_CLASSES)).astype(np.float32)
    teacher.get_layer("classifier").set_weights([kernel[None, None],
                                                 np.zeros(NUM_CLASSES, np.float32)])
    colours = np.array([[250, 10, 30], [20, 200, 90]], np.float32)
    images = np.broadcast_to(colours[:, None, None], (2, 8, 12, 3)).copy()
    targets = teacher_probabilities(teacher, NUM_CLASSES, image_size=(16, 16))(images)
    assert targets.shape == (2, 8, 12, NUM_CLASSES)
    logits = (colours / 127.5 - 1) @ kernel
    expected = np.exp(logits) / np.sum(np.exp(logits), -1, keepdims=True)
    np.testing.assert_allclose(targets, np.broadcast_to(expected[:, None, None], targets.shape),
                               atol=1e-5)


def test_a_one_channel_students_targets_are_the_foreground_probability(tmp_path):
    teacher = pixel_classifier(1)
    teacher.get_layer("classifier").set_weights([np.ones((1, 1, 3, 1), np.float32),
                                                 np.zeros(1, np.float32)])
    images = np.full((1, 8, 8, 3), 255.0, np.float32)
    targets = teacher_probabilities(teacher, 1)(images)
    np.testing.assert_allclose(targets, 1 / (1 + np.exp(-3.0)), rtol=1e-5)  # sigmoid(1+1+1)


def test_bad_teachers_get_one_line_errors(tmp_path, teacher_file):
    _, path = teacher_file
    with pytest.raises(ValueError, match=f"outputs {NUM_CLASSES} channels; the student has 2"):
        teacher_probabilities(str(path), 2)
    with pytest.raises(FileNotFoundError, match="no such .keras file"):
        teacher_probabilities(str(tmp_path / "missing.keras"), NUM_CLASSES)
    with pytest.raises(ValueError, match="a model preset. Received: 'no_such_teacher'"):
        teacher_probabilities("no_such_teacher", NUM_CLASSES)
    with pytest.raises(ValueError, match="outputs the student's own: leave teacher_class_mapping"):
        teacher_probabilities(str(path), NUM_CLASSES, class_names=("a", "b"),
                              class_mapping={"a": "b"})
    with pytest.raises(ValueError, match="loss.teacher_weight"):
        distill_config(tmp_path, str(path), 1.5)
    config = distill_config(tmp_path, str(path), 1.0).to_dict()
    config["loss"]["teacher_image_size"] = [512, 0]
    with pytest.raises(ValueError, match=r"`loss.teacher_image_size` must be \[height, width\]"):
        Config.from_dict(config)
    config["loss"].update(teacher=None, teacher_image_size=[64, 64])
    with pytest.raises(ValueError, match="`loss.teacher_image_size` describes the teacher: it "
                                         "needs `loss.teacher`"):
        Config.from_dict(config)
