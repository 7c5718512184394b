"""LPSNet through `kerasseg train` / `evaluate`: the panoptic config, augmented
targets, a run that crashes, resumes from its backup and is evaluated with PQ."""

import json

import keras
import numpy as np
import pytest
import yaml

from kerasseg.data.synthetic import CLASS_NAMES, NUM_CLASSES, THING_CLASSES
from kerasseg.train import Config
from tests.panoptic.fixtures import write_coco_panoptic

# VGG16: its 107-layer LPSNet traces in half the time of MobileNetV2's 238 layers,
# and a test run traces twice (crash, resume); the loop is the same for any backbone.
TINY_MODEL = {
    "name": "lpsnet",
    "args": {"backbone": "vgg16", "fpn_filters": 16, "semantic_filters": 8, "head_convs": 1},
    "bn_momentum": 0.9,
}
SIZE_RANGES = [[0, 16], [16, 32], [32, 64], [64, 128], [128, float("inf")]]


def tiny_config(output_dir):
    return {
        "model": TINY_MODEL,
        "data": {"image_size": [64, 64], "num_train_images": 8, "num_val_images": 3,
                 "batch_size": 4},
        "optimizer": {"name": "adamw", "learning_rate": 1e-3},
        "loss": {"name": "lpsnet", "args": {"size_ranges": SIZE_RANGES}},
        "training": {"epochs": 2, "steps_per_epoch": 2, "checkpoint_every": 2,
                     "output_dir": str(output_dir), "precision": "float32", "verbose": 0},
    }


# === Config ===


def test_panoptic_config_takes_the_paper_recipe_unless_set():
    config = Config.from_dict({"model": {"name": "lpsnet"}})
    assert config.task == "panoptic" and config.model.args == {}
    assert (config.optimizer.name, config.optimizer.learning_rate, config.optimizer.momentum,
            config.optimizer.weight_decay, config.optimizer.schedule) == (
        "sgd", 0.01, 0.9, 1e-4, "step")
    assert config.loss.name == "lpsnet"
    custom = Config.from_dict({"model": {"name": "lpsnet"}, "optimizer": {"learning_rate": 0.05}})
    assert (custom.optimizer.learning_rate, custom.optimizer.schedule) == (0.05, "step")
    semantic = Config()
    assert semantic.task == "semantic"
    assert (semantic.optimizer.schedule, semantic.loss.name) == ("poly", "cross_entropy")
    # The resolved values are what config.yaml records: a reload is the same config.
    assert Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("values, message", [
    ({"data": {"dataset": "voc", "root": "x"}}, "data.dataset.*'coco_panoptic'.*'voc'"),
    ({"loss": {"name": "cross_entropy"}}, "loss.name.*'lpsnet'"),
    ({"optimizer": {"schedule": "cosine"}}, "optimizer.schedule"),
    ({"optimizer": {"decay_at": [0.9, 0.5]}}, "optimizer.decay_at"),
    ({"loss": {"args": {"size_ranges": [[0, 64]]}}}, "loss.args.size_ranges"),
])
def test_panoptic_config_errors(values, message):
    with pytest.raises(ValueError, match=message):
        Config.from_dict({"model": {"name": "lpsnet"}, **values})


def test_loss_and_thing_classes_come_from_the_dataset():
    from kerasseg.panoptic.losses import LOSS_WEIGHTS
    from kerasseg.train import TASKS, build_model

    config = Config.from_dict({"model": TINY_MODEL})
    losses, weights = TASKS["panoptic"].loss(config)
    assert set(losses) == {"semantic", "class_logits", "boxes", "borderness"}
    assert weights == LOSS_WEIGHTS["coco"]
    cityscapes = Config.from_dict({"model": TINY_MODEL,
                                   "data": {"dataset": "cityscapes", "root": "x"}})
    assert TASKS["panoptic"].loss(cityscapes)[1] == LOSS_WEIGHTS["cityscapes"]
    model = build_model(config, NUM_CLASSES, thing_classes=THING_CLASSES)
    assert model.output["class_logits"].shape[-1] == len(THING_CLASSES)
    wrong = Config.from_dict({"model": {**TINY_MODEL, "args": {
        **TINY_MODEL["args"], "thing_classes": [4, 5]}}})
    with pytest.raises(ValueError, match="thing_classes.*\\(4, 5, 6\\)"):
        build_model(wrong, NUM_CLASSES, thing_classes=THING_CLASSES)


# === Data ===


def test_augmented_stream_targets_agree_with_their_semantic_map(tmp_path):
    from kerasseg.data.labels import IGNORE_LABEL
    from kerasseg.panoptic.targets import level_points
    from kerasseg.train import TASKS, load_split
    from kerasseg.train.datasets import training_stream

    config = Config.from_dict(tiny_config(tmp_path))
    data = load_split(config, "train")
    pairs = data.dataset
    image, panoptic = next(iter(pairs))
    assert image.shape == (64, 64, 3) and panoptic.dtype == np.int32
    assert set(np.unique(panoptic.numpy() // 1000)) <= set(range(NUM_CLASSES))
    assert data.thing_classes == THING_CLASSES
    task = TASKS["panoptic"]
    _, targets = next(iter(training_stream(pairs, config, seed=0, steps=2,
                                           pad_label=task.pad_label(config),
                                           targets=task.targets(config, data))))
    semantic = targets["semantic"].numpy()
    classes = targets["class_logits"].numpy()
    boxes = targets["boxes"].numpy()
    ys, xs, _ = level_points(64, 64)
    assert semantic.shape == (4, 64, 64) and classes.shape == (4, len(ys))
    assert (semantic == IGNORE_LABEL).any()  # scaled-down crops are padded with void
    positives = 0
    for b in range(4):
        for cell in np.flatnonzero(classes[b] > 0):
            positives += 1
            # A positive cell samples a pixel of its own thing class, inside its box.
            assert semantic[b, ys[cell], xs[cell]] == THING_CLASSES[classes[b, cell] - 1]
            x1, y1, x2, y2 = boxes[b, cell]
            assert x1 <= xs[cell] < x2 and y1 <= ys[cell] < y2
    assert positives > 0


def _coco_layout(root, split):
    write_coco_panoptic(root, split, shape=(50, 70))


def _cityscapes_layout(root, split):
    import cv2

    (root / "leftImg8bit" / split / "city").mkdir(parents=True)
    (root / "gtFine" / split / "city").mkdir(parents=True)
    ids = np.full((50, 70), 7, np.uint16)  # road
    ids[10:40, 20:50] = 26001  # a car
    cv2.imwrite(str(root / "gtFine" / split / "city" / "a_gtFine_instanceIds.png"), ids)
    cv2.imwrite(str(root / "leftImg8bit" / split / "city" / "a_leftImg8bit.png"),
                np.full((50, 70, 3), 90, np.uint8))


@pytest.mark.parametrize("dataset, layout, num_classes, things, code", [
    ("coco_panoptic", _coco_layout, 2, (0,), 1),  # person: thing channel 0
    ("cityscapes", _cityscapes_layout, 19, tuple(range(11, 19)), 3),  # car: train id 13
])
def test_dataset_readers_feed_the_training_stream(tmp_path, dataset, layout, num_classes,
                                                   things, code):
    from kerasseg.train import TASKS, load_split
    from kerasseg.train.datasets import training_stream

    layout(tmp_path, "train")
    config = Config.from_dict({
        "model": TINY_MODEL, "data": {"dataset": dataset, "root": str(tmp_path),
                                      "image_size": [64, 64], "batch_size": 2,
                                      "scale_range": [1.0, 1.0]},
        "loss": {"args": {"size_ranges": SIZE_RANGES}},
    })
    data = load_split(config, "train")
    assert (data.num_classes, data.thing_classes) == (num_classes, things)
    task = TASKS["panoptic"]
    _, targets = next(iter(training_stream(data.dataset, config, 0, 1, task.pad_label(config),
                                           task.targets(config, data))))
    semantic = targets["semantic"].numpy()
    # 50x70 images padded to 64 rows with void, cropped to 64 columns.
    assert semantic.shape == (2, 64, 64) and (semantic[:, 50:] == 255).all()
    assert set(np.unique(targets["class_logits"].numpy())) == {0, code}


# === Train, crash, resume, evaluate ===


class _Crash(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("simulated crash")


def test_train_resume_and_evaluate_through_the_cli(tmp_path, monkeypatch, capsys):
    import kerasseg.train
    from kerasseg.cli import main
    from kerasseg.panoptic import compose_panoptic, panoptic_merge, panoptic_statistics, summarize

    run = tmp_path / "run"
    path = tmp_path / "lpsnet.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run)))

    # Backup at step 2 (end of epoch 1), crash at step 3.
    with pytest.raises(RuntimeError, match="simulated crash"):
        kerasseg.train.train(str(path), callbacks=[_Crash(3)])
    assert (run / "backup" / "latest.weights.h5").exists()
    first_epoch = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in first_epoch] == [1]
    assert {"val_pq", "val_sq", "val_rq", "val_mean_iou", "semantic_mean_iou",
            "class_logits_loss", "boxes_loss", "borderness_loss"} <= set(first_epoch[0])

    results = []

    def recording_train(config, callbacks=(), overwrite=False):
        results.append(train(config, callbacks, overwrite))
        return results[-1]

    train = kerasseg.train.train
    monkeypatch.setattr(kerasseg.train, "train", recording_train)
    assert main(["train", "--config", str(path)]) == 0
    (result,) = results
    assert result.initial_step == 2 and int(result.model.optimizer.iterations.numpy()) == 4
    assert np.isfinite(result.history["loss"]).all()
    for name in ("config.yaml", "model.keras", "best.keras", "metrics.csv"):
        assert (run / name).exists(), name
    assert any((run / "logs").iterdir()) and not (run / "backup").exists()
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    recorded = Config.load(run / "config.yaml")
    assert recorded.task == "panoptic" and recorded.loss.args["size_ranges"][-1][1] == np.inf

    capsys.readouterr()
    output = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run / "model.keras"), "--num-overlays", "2",
                 "--output-dir", str(output)]) == 0
    printed = capsys.readouterr().out
    for word in ("PQ", "things", "stuff", "person", "mean_iou"):
        assert word in printed, word
    scores = json.loads((output / "metrics.json").read_text())
    assert len(scores["per_class_pq"]) == NUM_CLASSES
    assert 0 <= scores["semantic"]["mean_iou"] <= 1
    assert list(scores["semantic"]["per_class_iou"]) == list(CLASS_NAMES)
    assert len(list((output / "overlays").glob("*.png"))) == 2

    # The same PQ, assembled here from the val scenes and the numpy panoptic head.
    from kerasseg.data.synthetic import synthetic_dataset

    model = result.model  # the weights saved as model.keras
    stats = np.zeros((NUM_CLASSES, 4))
    for image, truth in synthetic_dataset("val", 3, (64, 64), panoptic=True).as_numpy_iterator():
        outputs = {k: np.asarray(v)[0] for k, v in model(image[None]).items()}
        prediction = panoptic_merge(outputs["semantic"], outputs["class_logits"],
                                    outputs["boxes"], outputs["borderness"], THING_CLASSES)
        stats += panoptic_statistics(
            compose_panoptic(truth["semantic"], truth["instances"], THING_CLASSES), prediction,
            NUM_CLASSES, THING_CLASSES)
    expected = summarize(stats, THING_CLASSES)
    for key in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert scores[key] == pytest.approx(expected[key]), key

    capsys.readouterr()
    assert main(["evaluate", "--model", str(run / "model.keras"), "--flip"]) == 2
    assert "semantic models only" in capsys.readouterr().err
