"""Dataset readers on fixture folders written in each dataset's exact layout and naming."""

import json
import os
import re

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasseg.data import readers, synthetic


def _rng(seed=0):
    return np.random.default_rng(seed)


def _image(path, height, width, seed=0):
    """A smooth random image (JPEG-friendly), written with OpenCV; returns RGB."""
    small = _rng(seed).integers(0, 256, (4, 4, 3)).astype(np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), image[..., ::-1])
    return cv2.imread(str(path))[..., ::-1]  # as stored (JPEG is lossy)


def _png(path, array, mode="L", palette=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(array, mode=mode)
    if palette is not None:
        image.putpalette(palette.ravel().tolist())
    image.save(path)


def _labels(height, width, values, seed=0):
    return _rng(seed).choice(values, (height, width)).astype(np.uint8)


def _read_all(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def _assert_image_close(decoded, expected):
    assert decoded.dtype == np.float32 and decoded.shape == expected.shape
    # TensorFlow's and OpenCV's JPEG decoders may round a few pixels differently.
    assert np.abs(decoded - expected).max() <= 2.0


# === PASCAL VOC 2012 ===


def _voc(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    expected = {}
    palette = readers.voc_palette()
    for index, stem in enumerate(["2007_000032", "2007_000039", "2008_000008"]):
        h, w = 20 + index, 24
        image = _image(root / "JPEGImages" / f"{stem}.jpg", h, w, index)
        mask = _labels(h, w, [0, 1, 15, 20, 255], index)
        _png(root / "SegmentationClass" / f"{stem}.png", mask, "P", palette)
        expected[stem] = (image, mask)
    # A mask saved with a 16-colour palette: PIL stores it with 4 bits per pixel.
    small = _labels(22, 24, [0, 1, 15], 5)
    _png(root / "SegmentationClass" / "2008_000008.png", small, "P", palette[:16])
    expected["2008_000008"] = (expected["2008_000008"][0], small)
    aug = _labels(21, 24, list(range(21)) + [255], 9)
    _png(root / "SegmentationClassAug" / "2007_000039.png", aug, "L")
    lists = root / "ImageSets" / "Segmentation"
    os.makedirs(lists)
    (lists / "train.txt").write_text("2007_000032\n2007_000039\n")
    (lists / "val.txt").write_text("2008_000008\n")
    (lists / "train_aug.txt").write_text(
        "/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n"
    )
    return tmp_path / "VOCdevkit", expected, aug


def test_voc_palette_is_the_standard_map():
    palette = readers.voc_palette()
    assert palette[0].tolist() == [0, 0, 0] and palette[1].tolist() == [128, 0, 0]
    assert palette[15].tolist() == [192, 128, 128] and palette[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in palette}) == 256


def test_voc_palette_masks_and_splits(tmp_path):
    root, expected, aug = _voc(tmp_path)
    train = _read_all(readers.voc_dataset(root, "train"))
    assert len(train) == 2
    for (image, mask), stem in zip(train, ["2007_000032", "2007_000039"], strict=True):
        _assert_image_close(image, expected[stem][0])
        np.testing.assert_array_equal(mask, expected[stem][1])
        assert mask.dtype == np.int32
    val_mask = root / "VOC2012" / "SegmentationClass" / "2008_000008.png"
    assert val_mask.read_bytes()[24] == 4  # the 4-bit palette case is really exercised
    (image, mask), = _read_all(readers.load_dataset("voc", root / "VOC2012", "val"))
    np.testing.assert_array_equal(mask, expected["2008_000008"][1])
    (image, mask), = _read_all(readers.voc_dataset(root, "train_aug"))
    np.testing.assert_array_equal(mask, aug)


def test_voc_errors_name_the_problem(tmp_path):
    root, _, _ = _voc(tmp_path)
    base = root / "VOC2012"
    with pytest.raises(FileNotFoundError, match="trainval.txt"):
        readers.voc_dataset(root, "trainval")
    (base / "ImageSets" / "Segmentation" / "trainval.txt").write_text("\n")
    with pytest.raises(ValueError, match="Empty split.*trainval.txt"):
        readers.voc_dataset(root, "trainval")
    os.remove(base / "SegmentationClass" / "2007_000032.png")
    with pytest.raises(FileNotFoundError, match="(?s)1 file.*SegmentationClass/2007_000032.png"):
        readers.voc_dataset(root, "train")
    with pytest.raises(ValueError, match="split"):
        readers.voc_dataset(root, "test")
    with pytest.raises(FileNotFoundError, match="PASCAL VOC"):
        readers.voc_dataset(tmp_path / "nowhere", "train")


def test_voc_colour_outside_palette_is_an_error(tmp_path):
    root, _, _ = _voc(tmp_path)
    rgb = np.zeros((21, 24, 3), np.uint8)
    rgb[3, 4] = (10, 20, 30)
    _png(root / "VOC2012" / "SegmentationClass" / "2007_000039.png", rgb, "RGB")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="outside the VOC palette.*2007_000039.png"):
        _read_all(readers.voc_dataset(root, "train"))


# === Cityscapes ===


def _cityscapes(tmp_path, split="train"):
    root = tmp_path / "cityscapes"
    items = []
    for city, frame in (("aachen", "000000_000019"), ("aachen", "000001_000019"),
                        ("bochum", "000000_000313")):
        prefix = f"{city}_{frame}"
        image = _image(root / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png",
                       16, 32, len(items))
        label_ids = _labels(16, 32, list(range(34)), len(items))
        gt = root / "gtFine" / split / city
        _png(gt / f"{prefix}_gtFine_labelIds.png", label_ids)
        # The other gtFine files sit beside the label ids in the real layout.
        _png(gt / f"{prefix}_gtFine_instanceIds.png", label_ids)
        _png(gt / f"{prefix}_gtFine_color.png", np.zeros((16, 32, 3), np.uint8), "RGB")
        (gt / f"{prefix}_gtFine_polygons.json").write_text("{}")
        items.append((image, label_ids))
    return root, items


def test_cityscapes_train_ids_match_cityscapesscripts(tmp_path):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    oracle = np.full(256, 255, np.int32)
    for label in labels.labels:
        if label.id >= 0:
            oracle[label.id] = 255 if label.trainId in (-1, 255) else label.trainId
    root, items = _cityscapes(tmp_path)
    decoded = _read_all(readers.cityscapes_dataset(root, "train"))
    assert len(decoded) == 3
    for (image, mask), (expected_image, label_ids) in zip(decoded, items, strict=True):
        np.testing.assert_array_equal(image, expected_image.astype(np.float32))  # PNG: exact
        np.testing.assert_array_equal(mask, oracle[label_ids])
    assert sorted(np.unique(np.concatenate([m.ravel() for _, m in decoded]))) == list(
        range(19)) + [255]
    names = [label.name for label in sorted(labels.labels, key=lambda x: x.trainId)
             if 0 <= label.trainId < 19]
    assert tuple(names) == readers.CITYSCAPES_CLASSES


def test_cityscapes_rejects_colour_masks_and_missing_labels(tmp_path):
    root, _ = _cityscapes(tmp_path, "val")
    gt = root / "gtFine" / "val" / "bochum"
    _png(gt / "bochum_000000_000313_gtFine_labelIds.png", np.zeros((16, 32, 3), np.uint8),
         "RGB")
    with pytest.raises(tf.errors.InvalidArgumentError, match="grayscale.*bochum_000000_000313"):
        _read_all(readers.cityscapes_dataset(root, "val"))
    os.remove(gt / "bochum_000000_000313_gtFine_labelIds.png")
    with pytest.raises(FileNotFoundError, match="bochum_000000_000313_gtFine_labelIds.png"):
        readers.cityscapes_dataset(root, "val")
    with pytest.raises(FileNotFoundError, match="Cityscapes images"):
        readers.cityscapes_dataset(root, "train")


# === ADE20K SceneParsing ===


def test_ade20k_shifts_labels_and_ignores_zero(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    expected = []
    for index in (1, 2):
        stem = f"ADE_train_{index:08d}"
        image = _image(root / "images" / "training" / f"{stem}.jpg", 18, 22, index)
        annotation = _labels(18, 22, list(range(151)), index)
        _png(root / "annotations" / "training" / f"{stem}.png", annotation)
        expected.append((image, np.where(annotation == 0, 255, annotation.astype(int) - 1)))
    _image(root / "images" / "validation" / "ADE_val_00000001.jpg", 18, 22)
    _png(root / "annotations" / "validation" / "ADE_val_00000001.png",
         np.full((18, 22), 151, np.uint8))
    decoded = _read_all(readers.ade20k_dataset(tmp_path, "training"))
    for (image, mask), (expected_image, expected_mask) in zip(decoded, expected, strict=True):
        _assert_image_close(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)
    assert len(_read_all(readers.load_dataset("ade20k", root, "train"))) == 2
    # 151 is not an ADE20K class: it must not become a silent label 150.
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"outside \[0, 150\).*ADE_val_00000001.png"):
        _read_all(readers.ade20k_dataset(root, "val"))
    assert len(readers.ADE20K_CLASSES) == 150


# === COCO panoptic ===

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 3, "name": "car", "isthing": 1},
    {"id": 92, "name": "banner", "isthing": 0},
    {"id": 184, "name": "tree-merged", "isthing": 0},
    {"id": 200, "name": "rug-merged", "isthing": 0},
]


def _coco(tmp_path, split="val"):
    root = tmp_path / "coco"
    rng = _rng(3)
    annotations, images, expected = [], [], []
    for image_id in (139, 285):
        name = f"{image_id:012d}"
        image = _image(root / f"{split}2017" / f"{name}.jpg", 24, 20, image_id)
        segments = [  # (segment id, category id, iscrowd)
            (int(rng.integers(1, 2**24)), 1, 0), (int(rng.integers(1, 2**24)), 1, 1),
            (int(rng.integers(1, 2**24)), 3, 0), (int(rng.integers(1, 2**24)), 184, 0),
            (int(rng.integers(1, 2**24)), 200, 0),
        ]
        choice = rng.integers(0, len(segments) + 1, (24, 20))  # last = void
        ids = np.array([s[0] for s in segments] + [0])[choice]
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        _png(root / "annotations" / f"panoptic_{split}2017" / f"{name}.png", rgb, "RGB")
        contiguous = {1: 0, 3: 1, 92: 2, 184: 3, 200: 4}
        train = np.array([255 if crowd else contiguous[c] for _, c, crowd in segments] + [255])
        expected.append((image, train[choice]))
        images.append({"id": image_id, "file_name": f"{name}.jpg", "height": 24, "width": 20})
        annotations.append({
            "image_id": image_id, "file_name": f"{name}.png",
            "segments_info": [{"id": s, "category_id": c, "iscrowd": crowd, "area": 1,
                               "bbox": [0, 0, 1, 1]} for s, c, crowd in segments],
        })
    os.makedirs(root / "annotations", exist_ok=True)
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES[::-1]}
    (root / "annotations" / f"panoptic_{split}2017.json").write_text(json.dumps(data))
    return root, expected, data


def test_coco_panoptic_to_semantic(tmp_path):
    root, expected, _ = _coco(tmp_path)
    decoded = _read_all(readers.coco_panoptic_dataset(root, "val"))
    for (image, mask), (expected_image, expected_mask) in zip(decoded, expected, strict=True):
        _assert_image_close(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)
    assert readers.validate("coco_panoptic", root, "val") == 2
    categories = readers.coco_panoptic_categories(root, "val")
    assert [c["id"] for c in categories] == [1, 3, 92, 184, 200]


def test_coco_panoptic_errors(tmp_path):
    root, _, data = _coco(tmp_path)
    data["annotations"][1]["segments_info"].pop(0)  # a segment in the PNG, not in the JSON
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(data))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="missing from its segments_info.*000000000285.png"):
        _read_all(readers.coco_panoptic_dataset(root, "val"))
    data["annotations"][0]["segments_info"][0]["category_id"] = 999
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="category_id 999"):
        readers.coco_panoptic_dataset(root, "val")
    (root / "annotations" / "panoptic_val2017.json").write_text("{not json")
    with pytest.raises(ValueError, match="panoptic_val2017.json"):
        readers.coco_panoptic_dataset(root, "val")
    with pytest.raises(FileNotFoundError, match="panoptic_train2017.json"):
        readers.coco_panoptic_dataset(root, "train")


# === Generic folder, and bad data ===


def test_folder_reads_synthetic_scenes_exactly(tmp_path):
    synthetic.write_synthetic_folder(tmp_path / "val", "val", num_images=3, image_size=(40, 48))
    decoded = _read_all(readers.folder_dataset(tmp_path, "val", num_classes=7))
    expected = _read_all(synthetic.synthetic_dataset("val", 3, (40, 48)))
    for (image, mask), (expected_image, expected_mask) in zip(decoded, expected, strict=True):
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)
    assert len(_read_all(readers.load_dataset("folder", tmp_path / "val", None,
                                              num_classes=7))) == 3
    with pytest.raises(ValueError, match="num_classes"):
        readers.folder_dataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="split=None"):
        readers.folder_dataset(tmp_path, "train", num_classes=7)


def _folder(tmp_path, count=3):
    for index in range(count):
        _image(tmp_path / "images" / f"im{index}.png", 12, 16, index)
        _png(tmp_path / "masks" / f"im{index}.png", _labels(12, 16, [0, 1, 2, 255], index))
    return tmp_path


BAD_FILES = {  # problem -> expected message (after the file names in `validate`)
    "garbage image": r"Not a JPEG/PNG/BMP/GIF image.*images/im1.png",
    "empty image": r"Not a JPEG/PNG/BMP/GIF image.*images/im2.png",
    "truncated mask": r"Not a complete PNG.*masks/im3.png",
    "mask size": r"Mask size does not match its image.*masks/im4.png.*images/im4.png",
    "label range": r"outside \[0, 3\) other than 255.*masks/im5.png.*min/max.*7",
    "16-bit mask": r"bit depth.*masks/im6.png",
}


def _break(root, problem, index):
    image_path, mask_path = root / "images" / f"im{index}.png", root / "masks" / f"im{index}.png"
    if problem == "garbage image":
        image_path.write_bytes(b"this is not an image at all")
    elif problem == "empty image":
        image_path.write_bytes(b"")
    elif problem == "truncated mask":
        mask_path.write_bytes(mask_path.read_bytes()[:60])
    elif problem == "mask size":
        _png(mask_path, np.zeros((12, 15), np.uint8))
    elif problem == "label range":
        _png(mask_path, np.full((12, 16), 7, np.uint8))
    else:
        cv2.imwrite(str(mask_path), np.zeros((12, 16), np.uint16))


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_bad_file_raises_at_first_batch_naming_the_file(tmp_path, problem):
    root = _folder(tmp_path, 2)
    index = int(BAD_FILES[problem].split("/im")[1][0])
    for name in ("images", "masks"):  # the bad example is the second of two
        os.rename(root / name / "im1.png", root / name / f"im{index}.png")
    _break(root, problem, index)
    dataset = readers.folder_dataset(root, num_classes=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=BAD_FILES[problem]):
        _read_all(dataset)


def test_validate_lists_every_bad_file(tmp_path):
    root = _folder(tmp_path, 8)
    assert readers.validate("folder", root, None, num_classes=3) == 8
    for index, problem in enumerate(BAD_FILES, start=1):
        _break(root, problem, index)
    with pytest.raises(ValueError) as error:
        readers.validate("folder", root, None, num_classes=3)
    lines = str(error.value).splitlines()
    assert lines[0] == "6 bad example(s) in folder split None:"
    for line, expected in zip(lines[1:], BAD_FILES.values(), strict=True):
        assert re.search(expected, line), (expected, line)
    assert "im0.png" not in str(error.value) and "im7.png" not in str(error.value)


def test_shuffle_files_is_a_permutation(tmp_path):
    root = _folder(tmp_path, 6)
    plain = [m.sum() for _, m in _read_all(readers.folder_dataset(root, num_classes=3))]
    shuffled = [m.sum() for _, m in _read_all(readers.folder_dataset(
        root, num_classes=3, shuffle_files=True, seed=1))]
    assert sorted(plain) == sorted(shuffled)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="name"):
        readers.load_dataset("kitti", "/tmp")


def test_folder_with_another_ignore_label(tmp_path):
    _folder(tmp_path, 1)
    _png(tmp_path / "masks" / "im0.png", _labels(12, 16, [0, 1, 9], 0))
    (_, mask), = _read_all(readers.folder_dataset(tmp_path, num_classes=3, ignore_label=9))
    assert set(np.unique(mask)) == {0, 1, 9}
    with pytest.raises(tf.errors.InvalidArgumentError, match="other than 255.*im0.png"):
        _read_all(readers.folder_dataset(tmp_path, num_classes=3))


# === One Source record per dataset ===


def test_every_source_is_one_record_with_its_classes_and_options():
    from kerasseg.data.labels import CAMVID_PALETTE, PERSON_CLASSES

    sources = readers.SOURCES
    assert set(sources) == set(readers.DATASETS)
    assert sources["camvid"].palette is CAMVID_PALETTE
    assert sources["people"].classes == PERSON_CLASSES and sources["people"].binary
    assert not sources["voc"].binary and len(sources["voc"].classes) == 21
    assert sources["folder"].options == ("num_classes", "ignore_label")
    assert {name for name, source in sources.items() if source.binary} == {"binary", "people"}


def test_an_option_the_source_does_not_take_is_named(tmp_path):
    with pytest.raises(ValueError, match="`num_classes` is not an option of the 'voc' reader "
                                         "\\(its options: none\\)"):
        readers.load_dataset("voc", tmp_path, "val", num_classes=3)


def test_a_new_source_is_one_entry_of_the_table(tmp_path, monkeypatch):
    synthetic.write_synthetic_folder(tmp_path / "val", "val", num_images=2, image_size=(40, 48))

    def list_mine(root, split, stride=1):
        images = sorted(str(p) for p in (tmp_path / split / "images").iterdir())[::stride]
        masks = [p.replace("images", "masks") for p in images]
        return readers.Listing(images, masks, readers.decode_index_png, 7)

    monkeypatch.setitem(readers.SOURCES, "mine", readers.Source(
        list_mine, synthetic.CLASS_NAMES, options=("stride",)))
    assert len(_read_all(readers.load_dataset("mine", tmp_path, "val"))) == 2
    assert len(_read_all(readers.load_dataset("mine", tmp_path, "val", stride=2))) == 1
    assert readers.validate("mine", tmp_path, "val") == 2
