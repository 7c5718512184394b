"""Panoptic datasets: (image, panoptic id map) pairs from the synthetic scenes,
COCO panoptic and Cityscapes, and the tf.data map to LPSNet's training targets."""

import numpy as np
import tensorflow as tf

from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.panoptic.targets import (
    FCOS_SIZE_RANGES,
    LABEL_DIVISOR,
    LEVELS,
    compose_panoptic,
    encode_targets,
    level_shapes,
)


def panoptic_targets_fn(thing_classes, label_divisor=LABEL_DIVISOR,
                        size_ranges=FCOS_SIZE_RANGES, ignore_label=IGNORE_LABEL):
    """A `Dataset.map` function from (image, ground truth) to (image, targets).

    The ground truth is a panoptic id map (H, W), or a dict {"semantic",
    "instances"} as `kerasseg.data.synthetic_dataset(..., panoptic=True)`
    yields it. The targets dict has the keys of LPSNet's outputs: "semantic"
    (H, W) int32, "class_logits" (N,) int32 class codes, "boxes" (N, 4) and
    "borderness" (N, 1) float32 (see `kerasseg.panoptic.targets`). Images must
    have a static size that is a multiple of 32.
    """
    thing_classes = tuple(int(t) for t in thing_classes)

    def encode(panoptic):
        targets = encode_targets(panoptic, thing_classes, label_divisor, LEVELS, size_ranges)
        return (targets["semantic"].astype(np.int32), targets["class"], targets["boxes"],
                targets["borderness"][:, None])

    def to_panoptic(semantic, instances):
        return compose_panoptic(semantic, instances, thing_classes, label_divisor, ignore_label)

    def map_fn(image, ground_truth):
        height, width = image.shape[0], image.shape[1]
        if height is None or width is None:
            raise ValueError("panoptic_dataset needs images of a static size (resize or crop "
                             f"first). Received image shape: {image.shape}")
        cells = sum(h * w for h, w in level_shapes(height, width))
        if isinstance(ground_truth, dict):
            panoptic = tf.numpy_function(
                to_panoptic, [ground_truth["semantic"], ground_truth["instances"]], tf.int32
            )
        else:
            panoptic = ground_truth
        semantic, classes, boxes, borderness = tf.numpy_function(
            encode, [panoptic], (tf.int32, tf.int32, tf.float32, tf.float32)
        )
        targets = {
            "semantic": tf.ensure_shape(semantic, (height, width)),
            "class_logits": tf.ensure_shape(classes, (cells,)),
            "boxes": tf.ensure_shape(boxes, (cells, 4)),
            "borderness": tf.ensure_shape(borderness, (cells, 1)),
        }
        return image, targets

    return map_fn


def panoptic_dataset(dataset, thing_classes, batch_size=None, label_divisor=LABEL_DIVISOR,
                     size_ranges=FCOS_SIZE_RANGES, ignore_label=IGNORE_LABEL):
    """Maps a dataset of (image, panoptic ground truth) to LPSNet's targets.

    Args:
        dataset: `tf.data.Dataset` of (image (H, W, 3), panoptic id map (H, W))
            or (image, {"semantic", "instances"}), unbatched, static size.
        thing_classes: semantic ids of the thing categories (the class-head order).
        batch_size: if given, the result is batched (remainder dropped).
        label_divisor: panoptic id divisor.
        size_ranges: FCOS (low, high] object-size range per box level, pixels.
        ignore_label: semantic value of void pixels.

    Returns:
        A dataset of (image, targets dict) ready for `model.fit`.

    Example:
        >>> from kerasseg.data.synthetic import synthetic_dataset, THING_CLASSES
        >>> data = panoptic_dataset(synthetic_dataset("train", 64, (128, 128), panoptic=True),
        ...                         THING_CLASSES, batch_size=8)
    """
    mapped = dataset.map(
        panoptic_targets_fn(thing_classes, label_divisor, size_ranges, ignore_label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if batch_size:
        mapped = mapped.batch(batch_size, drop_remainder=True)
    return mapped.prefetch(tf.data.AUTOTUNE)


def _generator_dataset(pairs):
    """(image path, callable returning the panoptic map) pairs -> tf.data."""
    import cv2

    def generate():
        for image_path, read_panoptic in pairs:
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"Cannot read image file {image_path!r}.")
            yield image[..., ::-1].astype(np.float32), read_panoptic()

    return tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec((None, None, 3), tf.float32), tf.TensorSpec((None, None), tf.int32)))


def coco_panoptic_pairs(root, split="train", label_divisor=LABEL_DIVISOR):
    """COCO panoptic 2017 as (image, panoptic id map) pairs.

    Layout: `annotations/panoptic_{split}2017.json`, its PNGs in
    `annotations/panoptic_{split}2017/` and images in `{split}2017/`.
    Categories take contiguous ids in the JSON's order (sorted by id in COCO).
    Images keep their size: crop or resize them to a multiple of 32 before
    `panoptic_dataset`.

    Returns:
        (dataset, thing_classes).
    """
    dataset, _, thing_classes = _coco_panoptic(root, split, label_divisor)
    return dataset, thing_classes


def _coco_panoptic(root, split, label_divisor):
    """(dataset, number of categories, thing_classes) of a COCO panoptic split."""
    import os

    from kerasseg.panoptic.readers import read_coco_panoptic, read_coco_panoptic_json

    annotations, category_map, thing_classes = read_coco_panoptic_json(
        os.path.join(root, "annotations", f"panoptic_{split}2017.json"))
    png_dir = os.path.join(root, "annotations", f"panoptic_{split}2017")
    pairs = [
        (os.path.join(root, f"{split}2017", image or png.replace(".png", ".jpg")),
         lambda png=png, segments=segments: read_coco_panoptic(
             os.path.join(png_dir, png), segments, category_map, thing_classes, label_divisor))
        for image, png, segments in annotations
    ]
    return _generator_dataset(pairs), len(category_map), thing_classes


def cityscapes_panoptic_pairs(root, split="train", label_divisor=LABEL_DIVISOR):
    """Cityscapes as (image, panoptic id map) pairs, from `gtFine/*_instanceIds.png`.

    Layout: `leftImg8bit/{split}/<city>/*_leftImg8bit.png` and
    `gtFine/{split}/<city>/*_gtFine_instanceIds.png`; 19 train ids, things
    `kerasseg.data.labels.CITYSCAPES_THING_CLASSES`.

    Returns:
        (dataset, thing_classes).
    """
    import glob
    import os

    from kerasseg.data.labels import CITYSCAPES_THING_CLASSES
    from kerasseg.panoptic.readers import read_cityscapes_instance_ids

    images = sorted(glob.glob(os.path.join(root, "leftImg8bit", split, "*", "*_leftImg8bit.png")))
    if not images:
        raise ValueError(f"No Cityscapes images under {root!r} for split={split!r}.")
    pairs = []
    for image in images:
        label = image.replace(os.sep + "leftImg8bit" + os.sep, os.sep + "gtFine" + os.sep)
        label = label.replace("_leftImg8bit.png", "_gtFine_instanceIds.png")
        pairs.append(
            (image, lambda label=label: read_cityscapes_instance_ids(label, label_divisor))
        )
    return _generator_dataset(pairs), CITYSCAPES_THING_CLASSES


def load_panoptic_split(dataset, root=None, split="train", num_images=None,
                        image_size=(128, 128), seed=0, label_divisor=LABEL_DIVISOR):
    """One split of a panoptic dataset, as `kerasseg train` and `evaluate` read it.

    Args:
        dataset: "synthetic" (`kerasseg.data.synthetic` scenes, drawn once and
            kept in memory), "coco_panoptic" or "cityscapes" (read from `root`
            by `coco_panoptic_pairs` / `cityscapes_panoptic_pairs`).
        root: dataset folder (not for "synthetic").
        split: split name.
        num_images: number of synthetic scenes (None: the split's default).
        image_size: (height, width) of synthetic scenes.
        seed: synthetic dataset seed.
        label_divisor: panoptic id divisor.

    Returns:
        (pairs, num_classes, thing_classes): pairs is an unbatched dataset of
        (image float32 (H, W, 3) in [0, 255], panoptic id map int32 (H, W)).
    """
    if dataset == "synthetic":
        from kerasseg.data.synthetic import NUM_CLASSES, THING_CLASSES, synthetic_dataset

        def to_panoptic(image, truth):
            panoptic = tf.numpy_function(
                lambda s, i: compose_panoptic(s, i, THING_CLASSES, label_divisor),
                [truth["semantic"], truth["instances"]], tf.int32)
            return tf.cast(image, tf.uint8), tf.ensure_shape(panoptic, image.shape[:2])

        scenes = synthetic_dataset(split, num_images, tuple(image_size), seed=seed, panoptic=True)
        # Scenes are drawn in Python: draw once, keep them (as uint8) in memory.
        pairs = scenes.map(to_panoptic).cache()
        pairs = pairs.map(lambda image, panoptic: (tf.cast(image, tf.float32), panoptic))
        return pairs, NUM_CLASSES, THING_CLASSES
    if dataset == "coco_panoptic":
        return _coco_panoptic(root, split, label_divisor)
    if dataset == "cityscapes":
        from kerasseg.data.labels import CITYSCAPES_CLASSES

        pairs, thing_classes = cityscapes_panoptic_pairs(root, split, label_divisor)
        return pairs, len(CITYSCAPES_CLASSES), thing_classes
    raise ValueError("`dataset` must be one of 'synthetic', 'coco_panoptic', 'cityscapes' "
                     f"for panoptic segmentation. Received: dataset={dataset!r}")
