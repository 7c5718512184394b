"""Readers from COCO panoptic and Cityscapes files to panoptic id maps.

Both produce the encoding of `kerasseg.panoptic.targets`: category *
label_divisor + instance, crowd = thing category with instance 0, void = -1,
with contiguous training category ids. No TensorFlow.
"""

import json

import cv2
import numpy as np

from kerasseg.data.labels import CITYSCAPES_LABEL_TO_TRAIN_ID, CITYSCAPES_THING_CLASSES
from kerasseg.panoptic.targets import LABEL_DIVISOR, VOID


def coco_categories(categories):
    """Contiguous ids for COCO-style "categories" entries.

    Args:
        categories: list of {"id", "isthing", ...} dicts (a panoptic JSON's
            "categories"), in the order that defines the training ids.

    Returns:
        (category_map, thing_classes): dataset id -> training id, and the
        training ids of the thing categories.
    """
    category_map = {c["id"]: index for index, c in enumerate(categories)}
    thing_classes = tuple(category_map[c["id"]] for c in categories if c.get("isthing"))
    return category_map, thing_classes


def _read_rgb(png):
    if isinstance(png, np.ndarray):
        return png
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"Cannot read panoptic PNG file. Received: png={png!r}")
    return image[..., ::-1]


def read_coco_panoptic(png, segments_info, category_map, thing_classes,
                       label_divisor=LABEL_DIVISOR):
    """One COCO panoptic annotation as a panoptic id map.

    Args:
        png: path of the annotation PNG, or its RGB array (H, W, 3); a pixel's
            segment id is R + 256 G + 256^2 B, and 0 (unlisted ids too) is void.
        segments_info: the annotation's "segments_info" list ({"id",
            "category_id", "iscrowd"}).
        category_map: dataset category id -> training id, from `coco_categories`.
        thing_classes: training ids of the thing categories.
        label_divisor: panoptic id divisor.

    Returns:
        int32 (H, W) panoptic id map; things are numbered 1, 2, ... per
        category in `segments_info` order, crowd segments get instance 0.
    """
    rgb = _read_rgb(png).astype(np.int64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"`png` must be an RGB image (H, W, 3). Received shape: {rgb.shape}")
    segment_ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    panoptic = np.full(segment_ids.shape, VOID, np.int32)
    next_instance = {}
    for segment in segments_info:
        if segment["category_id"] not in category_map:
            raise ValueError(
                f"Segment {segment['id']} has category_id={segment['category_id']}, "
                "which is not in `category_map`."
            )
        category = category_map[segment["category_id"]]
        instance = 0
        if category in thing_classes and not segment.get("iscrowd", 0):
            instance = next_instance.get(category, 0) + 1
            next_instance[category] = instance
        panoptic[segment_ids == segment["id"]] = category * label_divisor + instance
    return panoptic


def read_coco_panoptic_json(json_path):
    """Reads a COCO (or Cityscapes) panoptic JSON file.

    Returns:
        (annotations, category_map, thing_classes): annotations is a list of
        (image file name, annotation PNG file name, segments_info), to pass to
        `read_coco_panoptic` with `category_map` and `thing_classes`.
    """
    try:
        with open(json_path) as f:
            data = json.load(f)
        categories, records = data["categories"], data["annotations"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            "`json_path` must be a panoptic JSON file with \"categories\" and "
            f"\"annotations\". Received: json_path={json_path!r} ({error})"
        ) from error
    category_map, thing_classes = coco_categories(categories)
    images = {image["id"]: image["file_name"] for image in data.get("images", [])}
    annotations = [
        (images.get(record["image_id"]), record["file_name"], record["segments_info"])
        for record in records
    ]
    return annotations, category_map, thing_classes


def read_cityscapes_instance_ids(instance_ids, label_divisor=LABEL_DIVISOR):
    """A Cityscapes `*_gtFine_instanceIds.png` as a panoptic id map (train ids).

    Values below 1000 are label ids (stuff, or a thing region without
    instances: crowd); values >= 1000 are label_id * 1000 + instance. Labels
    outside the 19 evaluated classes become void.

    Args:
        instance_ids: path of the PNG (16-bit) or its (H, W) integer array.
    """
    if not isinstance(instance_ids, np.ndarray):
        path = instance_ids
        instance_ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if instance_ids is None:
            raise ValueError(f"Cannot read instanceIds PNG. Received: instance_ids={path!r}")
    ids = np.asarray(instance_ids, np.int64)
    labels = np.where(ids >= 1000, ids // 1000, ids)
    lookup = np.full(max(CITYSCAPES_LABEL_TO_TRAIN_ID) + 1, -1, np.int64)
    for label, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
        lookup[label] = train_id
    train_ids = np.where(labels < len(lookup), lookup[np.minimum(labels, len(lookup) - 1)], -1)
    is_thing = np.isin(train_ids, CITYSCAPES_THING_CLASSES)
    # Instance numbers restart from 1 per image, in order of the original ids.
    instance = np.zeros(ids.shape, np.int64)
    for k, original in enumerate(np.unique(ids[(ids >= 1000) & is_thing]), start=1):
        instance[ids == original] = k
    panoptic = train_ids * label_divisor + np.where(is_thing, instance, 0)
    return np.where(train_ids < 0, VOID, panoptic).astype(np.int32)
