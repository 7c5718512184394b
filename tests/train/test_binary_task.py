"""The binary task: one class makes a one-channel sigmoid model trained on
person-vs-rest masks through the same loop, validated on foreground IoU,
evaluated and exported as background/foreground."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.train import TASKS, Config, evaluate, load_split, train

TINY_UNET = {"name": "unet", "args": {"base_filters": 8, "depth": 3, "batch_norm": True,
                                      "dropout": 0.0}, "bn_momentum": 0.9}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = Config.from_dict({
        "model": TINY_UNET,
        "data": {"num_classes": 1, "image_size": [64, 64], "num_train_images": 96,
                 "num_val_images": 16, "batch_size": 8, "augment": False},
        "optimizer": {"name": "adamw", "learning_rate": 5e-3, "warmup_steps": 5},
        "training": {"epochs": 6, "precision": "float32", "verbose": 0,
                     "output_dir": str(tmp_path_factory.mktemp("binary") / "run")},
    })
    return config, train(config)


def test_one_class_is_the_binary_task_with_a_sigmoid_model():
    config = Config.from_dict({"model": TINY_UNET, "data": {"num_classes": 1}})
    assert config.task == "binary" and Config().task == "semantic"
    data = load_split(config.replace(data={"num_val_images": 2, "image_size": [64, 64]}), "val")
    image, mask = next(iter(data.dataset))
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
    assert set(np.unique(mask)) <= {0, 1} and data.num_classes == 1
    assert TASKS["binary"].builder_args(data) == {"activation": "sigmoid"}
    softmax = Config.from_dict({"model": {**TINY_UNET, "args": {
        **TINY_UNET["args"], "activation": "softmax"}}, "data": {"num_classes": 1}})
    from kerasseg.train import build_model

    with pytest.raises(ValueError, match="model.args.activation.*'sigmoid'.*'softmax'"):
        build_model(softmax, 1, **TASKS["binary"].builder_args(data))


def test_the_loop_learns_person_masks_and_keeps_the_best_foreground_iou(run):
    config, result = run
    assert result.model.output_shape == (None, None, None, 1)
    history = result.history
    assert history["val_foreground_iou"][-1] >= 0.35
    assert history["loss"][-1] < history["loss"][0] / 2
    assert (pathlib.Path(config.training.output_dir) / "best.keras").exists()


def test_evaluate_and_the_exported_file_score_background_and_foreground(run, tmp_path):
    from kerasseg.export import to_tflite
    from kerasseg.runtime import Segmenter

    config, result = run
    data = load_split(config, "val")
    scores = evaluate(result.model, data.dataset, 2, class_names=["background", "person"])
    # The callback's streaming score and the offline one see the same pixels.
    assert scores["per_class_iou"]["person"] == pytest.approx(
        result.history["val_foreground_iou"][-1], abs=1e-4)
    images = np.stack([image for image, _ in data.dataset.take(4).as_numpy_iterator()])
    foreground = result.model.predict(images, verbose=0)[..., 0]
    for output in ("probabilities", "labels"):
        path = to_tflite(result.model, tmp_path / f"{output}.tflite", (64, 64), output=output)
        labels = Segmenter.load(path).predict(images)
        assert np.mean(labels == (foreground > 0.5)) >= 0.999, output
    segmenter = Segmenter.load(tmp_path / "probabilities.tflite")
    np.testing.assert_allclose(segmenter.predict_proba(images)[..., 1], foreground, atol=1e-4)


def test_people_photos_resized_and_pasted_into_the_training_stream(tmp_path):
    # The portrait recipe's data path on a fixture in the people layout: one
    # class (binary), every photo resized to image_size, copy-paste on.
    from kerasseg.configs import recipe_path
    from kerasseg.train.datasets import training_stream
    from tests.data.test_binary_masks import _pair

    for number in (1, 2, 3, 201):
        _pair(tmp_path, str(number), size=(48, 36), mask_scale=2, image_dir="Training_Images",
              mask_dir="Ground_Truth", seed=number)
    config = Config.load(recipe_path("portrait_lraspp")).replace(data={
        "root": str(tmp_path), "image_size": [64, 64], "batch_size": 2, "copy_paste": 1.0})
    assert config.task == "binary" and config.data.resize
    data = load_split(config, "train")
    images = [(image.shape, set(np.unique(mask))) for image, mask in data.dataset]
    assert images == [((64, 64, 3), {0, 1})] * 3
    task = TASKS["binary"]
    batch = next(iter(training_stream(data.dataset, config, 0, 1, task.pad_label(config))))
    assert batch[0].shape == (2, 64, 64, 3) and set(np.unique(batch[1])) <= {0, 1, 255}
    no_paste = config.replace(data={"copy_paste": 0.0})
    plain = next(iter(training_stream(data.dataset, no_paste, 0, 1, task.pad_label(config))))
    assert not np.array_equal(plain[1], batch[1])  # the pasted person changes the masks


def test_a_resized_split_is_decoded_once(tmp_path):
    # Resized photos are cached after the first pass: later passes (and the
    # copy-paste donors) no longer read the files.
    from kerasseg.configs import recipe_path
    from tests.data.test_binary_masks import _pair

    for number in (1, 2):
        _pair(tmp_path, str(number), size=(48, 36), image_dir="Training_Images",
              mask_dir="Ground_Truth", seed=number)
    config = Config.load(recipe_path("portrait_lraspp")).replace(data={
        "root": str(tmp_path), "image_size": [64, 64]})
    dataset = load_split(config, "train").dataset
    first = [(image.numpy(), mask.numpy()) for image, mask in dataset]
    for path in tmp_path.rglob("*.*"):
        path.unlink()
    again = [(image.numpy(), mask.numpy()) for image, mask in dataset]
    assert len(again) == 2 and all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    # Cached as uint8 pixels (a quarter of float32's memory), read as float32.
    assert first[0][0].dtype == np.float32 and np.array_equal(first[0][0], np.round(first[0][0]))


def test_a_resized_split_too_big_for_memory_is_resized_on_every_pass(tmp_path, monkeypatch):
    from kerasseg.configs import recipe_path
    from kerasseg.train import datasets
    from tests.data.test_binary_masks import _pair

    for number in (1, 2):
        _pair(tmp_path, str(number), size=(48, 36), image_dir="Training_Images",
              mask_dir="Ground_Truth", seed=number)
    config = Config.load(recipe_path("portrait_lraspp")).replace(data={
        "root": str(tmp_path), "image_size": [64, 64]})
    monkeypatch.setattr(datasets, "RESIZED_CACHE_BYTES", 2 * 64 * 64 * 7 - 1)
    dataset = load_split(config, "train").dataset
    assert len(list(dataset)) == 2
    for path in tmp_path.rglob("*.*"):
        path.unlink()
    with pytest.raises(tf.errors.NotFoundError):
        list(dataset)  # not cached: the files are read again
