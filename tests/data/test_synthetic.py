"""Synthetic scenes: determinism, consistent semantic/instance masks, splits, writers."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from kerasseg.data import synthetic


def test_constants_consistent():
    assert synthetic.NUM_CLASSES == len(synthetic.CLASS_NAMES) == len(synthetic.PALETTE)
    assert synthetic.PALETTE.dtype == np.uint8 and synthetic.PALETTE.shape[1] == 3
    assert len({tuple(c) for c in synthetic.PALETTE}) == synthetic.NUM_CLASSES
    assert all(0 <= c < synthetic.NUM_CLASSES for c in synthetic.THING_CLASSES)
    # Stuff classes come first, then things.
    assert list(synthetic.THING_CLASSES) == list(
        range(synthetic.NUM_CLASSES - len(synthetic.THING_CLASSES), synthetic.NUM_CLASSES)
    )


def test_scene_is_deterministic_per_seed():
    a, b, c = synthetic.make_scene(7, 64, 80), synthetic.make_scene(7, 64, 80), \
        synthetic.make_scene(8, 64, 80)
    for key in ("image", "semantic", "instances"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["segments"] == b["segments"]
    assert not np.array_equal(a["image"], c["image"])


@pytest.mark.parametrize("seed", range(12))
def test_scene_masks_are_consistent(seed):
    scene = synthetic.make_scene(seed, 64, 80)
    image, semantic, instances = scene["image"], scene["semantic"], scene["instances"]
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    assert semantic.shape == (64, 80) and semantic.dtype == np.uint8
    assert instances.shape == (64, 80) and instances.dtype == np.int32
    assert semantic.max() < synthetic.NUM_CLASSES
    is_thing = np.isin(semantic, synthetic.THING_CLASSES)
    # Every thing pixel belongs to exactly one instance; stuff pixels to none.
    np.testing.assert_array_equal(instances > 0, is_thing)
    ids = np.unique(instances[instances > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    for segment in scene["segments"]:
        if segment["isthing"]:
            mask = instances == segment["id"]
            assert np.all(semantic[mask] == segment["category_id"])
        else:
            assert segment["category_id"] not in synthetic.THING_CLASSES
            mask = semantic == segment["category_id"]
        assert mask.sum() == segment["area"] > 0
    assert sum(s["area"] for s in scene["segments"]) == 64 * 80
    assert sorted(s["id"] for s in scene["segments"] if s["isthing"]) == list(ids)


def test_scenes_cover_every_class_and_overlap():
    scenes = [synthetic.make_scene(seed, 64, 64) for seed in range(30)]
    present = set()
    for scene in scenes:
        present.update(np.unique(scene["semantic"]).tolist())
    assert present == set(range(synthetic.NUM_CLASSES))
    # Some scene has several instances of one class (occlusion/instance separation matters).
    assert any(
        max(np.bincount([s["category_id"] for s in scene["segments"] if s["isthing"]] or [0]))
        >= 2
        for scene in scenes
    )


def test_a_colour_lookup_does_not_solve_the_task():
    """The best per-pixel colour lookup learned on training scenes stays far from 0.85 mIoU."""
    def quantise(image):
        return (image // 16).astype(np.int64) @ np.array([256, 16, 1])

    counts = np.zeros((4096, synthetic.NUM_CLASSES))
    for seed in range(20):
        scene = synthetic.make_scene(seed, 64, 64)
        np.add.at(counts, (quantise(scene["image"]).ravel(), scene["semantic"].ravel()), 1)
    lookup = counts.argmax(1)
    confusion = np.zeros((synthetic.NUM_CLASSES,) * 2)
    for seed in range(100, 110):
        scene = synthetic.make_scene(seed, 64, 64)
        predicted = lookup[quantise(scene["image"])]
        np.add.at(confusion, (scene["semantic"].ravel(), predicted.ravel()), 1)
    tp = np.diag(confusion)
    iou = tp / np.maximum(confusion.sum(0) + confusion.sum(1) - tp, 1)
    assert iou.mean() < 0.7


def test_dataset_splits_are_disjoint_and_typed():
    train = synthetic._split_seeds("train", 512, 0)
    val = synthetic._split_seeds("val", 64, 0)
    test = synthetic._split_seeds("test", 64, 0)
    other_seed = synthetic._split_seeds("train", 512, 1)
    assert not set(train) & set(val) and not set(val) & set(test) and not set(train) & set(test)
    assert not set(train) & set(other_seed)

    dataset = synthetic.synthetic_dataset("val", num_images=3, image_size=(48, 64))
    assert int(dataset.cardinality()) == 3
    items = list(dataset)
    assert len(items) == 3
    image, mask = items[0]
    assert image.shape == (48, 64, 3) and image.dtype.name == "float32"
    assert mask.shape == (48, 64) and mask.dtype.name == "int32"
    expected = synthetic.make_scene(val[0], 48, 64)
    np.testing.assert_array_equal(image.numpy(), expected["image"].astype(np.float32))
    np.testing.assert_array_equal(mask.numpy(), expected["semantic"])


def test_panoptic_dataset():
    dataset = synthetic.synthetic_dataset("train", num_images=2, image_size=(48, 48),
                                          panoptic=True)
    image, target = next(iter(dataset))
    expected = synthetic.make_scene(synthetic._split_seeds("train", 1, 0)[0], 48, 48)
    np.testing.assert_array_equal(target["semantic"].numpy(), expected["semantic"])
    np.testing.assert_array_equal(target["instances"].numpy(), expected["instances"])
    assert target["instances"].dtype.name == "int32"


def test_write_folder_round_trip(tmp_path):
    root = synthetic.write_synthetic_folder(tmp_path / "syn", "test", num_images=2,
                                            image_size=(40, 56), seed=3)
    seeds = synthetic._split_seeds("test", 2, 3)
    for index, seed in enumerate(seeds):
        scene = synthetic.make_scene(seed, 40, 56)
        image = cv2.imread(f"{root}/images/test_{index:05d}.png")[..., ::-1]
        mask = cv2.imread(f"{root}/masks/test_{index:05d}.png", cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(image, scene["image"])
        np.testing.assert_array_equal(mask, scene["semantic"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "training"}, "split"),
        ({"num_images": 0}, "num_images"),
        ({"image_size": (16, 64)}, "image_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.synthetic_dataset(**kwargs)


def test_bad_scene_arguments():
    with pytest.raises(ValueError, match="height"):
        synthetic.make_scene(0, height=8)
    with pytest.raises(ValueError, match="seed"):
        synthetic.make_scene(-3)


def test_module_imports_without_tensorflow():
    code = (
        "import sys; import kerasseg.data.synthetic as s; s.make_scene(0, 32, 32); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_public_data_api_resolves():
    from kerasseg import data

    for name in data._LAZY_ATTRIBUTES:
        assert getattr(data, name) is not None, name
    assert data.synthetic_dataset is synthetic.synthetic_dataset
    assert set(data.DATASETS) == {"voc", "cityscapes", "ade20k", "coco_panoptic", "folder",
                                  "camvid", "binary", "people"}
