"""Binary-mask folders and the person dataset's split by file number, on fixtures."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasseg.data import readers


def _save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def _pair(root, stem, size=(8, 12), mask_scale=1, values=(0, 255), image_dir="images",
          mask_dir="masks", seed=0):
    """An image and a blocky binary mask, the mask stored `mask_scale` times smaller."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    small = rng.choice(values, (height // mask_scale, width // mask_scale)).astype(np.uint8)
    _save(root / image_dir / f"{stem}.png", image)
    _save(root / mask_dir / f"{stem}.png", small)
    return image, np.kron(small, np.ones((mask_scale, mask_scale), np.uint8))


def _read(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def test_zero_255_masks_and_smaller_masks_resized(tmp_path):
    expected = [_pair(tmp_path, "a", mask_scale=1, seed=1), _pair(tmp_path, "b", mask_scale=2,
                                                                   seed=2),
                _pair(tmp_path, "c", (12, 16), mask_scale=4, seed=3)]
    pairs = _read(readers.load_dataset("binary", tmp_path, split=None))
    assert len(pairs) == 3
    for (image, mask), (true_image, true_mask) in zip(pairs, expected):
        assert mask.shape == image.shape[:2] == true_image.shape[:2]
        np.testing.assert_array_equal(image, true_image.astype(np.float32))
        np.testing.assert_array_equal(mask, true_mask // 255)  # nearest: blocks stay blocks


def test_zero_one_masks_keep_255_as_ignore(tmp_path):
    _, true_mask = _pair(tmp_path, "a", values=(0, 1, 255))
    ((_, mask),) = _read(readers.binary_mask_dataset(tmp_path))
    np.testing.assert_array_equal(mask, true_mask.astype(np.int32))
    ((_, mask),) = _read(readers.binary_mask_dataset(tmp_path, foreground_value=1))
    np.testing.assert_array_equal(mask, true_mask.astype(np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="0/255"):
        _read(readers.binary_mask_dataset(tmp_path, foreground_value=255))


def test_other_mask_values_are_an_error_naming_the_file(tmp_path):
    _pair(tmp_path, "soft", values=(0, 128, 255))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"soft\.png"):
        _read(readers.binary_mask_dataset(tmp_path))


def test_aspect_ratio_mismatch_names_both_files(tmp_path):
    _pair(tmp_path, "good", (8, 12), mask_scale=2)
    _save(tmp_path / "images" / "wide.png", np.zeros((8, 12, 3), np.uint8))
    _save(tmp_path / "masks" / "wide.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"aspect ratio.*masks/wide\.png.*images/wide\.png"):
        _read(readers.binary_mask_dataset(tmp_path))
    with pytest.raises(ValueError, match=r"(?s)1 bad example.*wide\.png"):
        readers.validate("binary", tmp_path, split=None)
    # A mask downscaled with rounding (16x25 -> 9x14: ratios 0.4 % apart) is resized.
    _save(tmp_path / "images" / "wide.png", np.zeros((16, 25, 3), np.uint8))
    _save(tmp_path / "masks" / "wide.png", np.full((9, 14), 255, np.uint8))
    assert readers.validate("binary", tmp_path, split=None) == 2
    _, (_, mask) = _read(readers.binary_mask_dataset(tmp_path))
    np.testing.assert_array_equal(mask, np.ones((16, 25)))
    with pytest.raises(ValueError, match=r"differ by more than 0\.1%"):
        readers.validate("binary", tmp_path, split=None, aspect_tolerance=0.001)


def test_split_folders_and_missing_masks(tmp_path):
    _pair(tmp_path / "train", "x")
    _pair(tmp_path / "val", "y")
    assert len(_read(readers.binary_mask_dataset(tmp_path, "val"))) == 1
    os.remove(tmp_path / "train" / "masks" / "x.png")
    with pytest.raises(FileNotFoundError, match=r"masks/x\.png"):
        readers.binary_mask_dataset(tmp_path, "train")


def test_people_split_by_file_number(tmp_path):
    numbers = [1, 2, 200, 201, 230, 231, 289, 300]
    for number in numbers:
        _pair(tmp_path, str(number), mask_scale=2, image_dir="Training_Images",
              mask_dir="Ground_Truth", seed=number)
    (tmp_path / "Training_Images" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "Ground_Truth" / ".DS_Store").write_bytes(b"\0")
    splits = {"train": [1, 2, 200], "val": [201, 230], "trainval": [1, 2, 200, 201, 230],
              "test": [231, 289, 300]}
    assert set(readers.PEOPLE_SPLITS) == set(splits)
    for split, expected in splits.items():
        slices, _, num_classes = readers._build("people", tmp_path, split)
        files = [os.path.basename(image.numpy().decode()) for image, _ in slices]
        assert files == [f"{n}.png" for n in expected] and num_classes == 2
    pairs = _read(readers.people_dataset(tmp_path, "val"))
    assert len(pairs) == 2 and all(set(np.unique(mask)) <= {0, 1} for _, mask in pairs)
    assert readers.SOURCES["people"].classes == ("background", "person")
    with pytest.raises(ValueError, match="split"):
        readers.people_dataset(tmp_path, "validation")
    _pair(tmp_path, "extra", image_dir="Training_Images", mask_dir="Ground_Truth")
    with pytest.raises(ValueError, match=r"extra\.png is not named by a number"):
        readers.people_dataset(tmp_path, "train")
