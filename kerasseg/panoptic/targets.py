"""Panoptic ground truth and LPSNet training targets, in numpy (no TensorFlow).

Panoptic maps. Everywhere in `kerasseg.panoptic` a panoptic segmentation is an
int32 (H, W) map of ids `category * label_divisor + instance`: stuff segments
have instance 0, things 1, 2, ...; a thing category with instance 0 is a crowd
region ("iscrowd" in COCO); -1 is void (unlabelled). This is the encoding of
Cityscapes and Panoptic-DeepLab, and `label_divisor` (1000) must exceed the
number of instances in an image.

Box-head targets (LPSNet, Hong et al., CVPR 2021, after FCOS, Tian et al.
2019). Feature level l (3..7) has stride s = 2^l; its cell (i, j) looks at the
pixel (y, x) = (i*s + s//2, j*s + s//2), whose centre is the point
(x + 0.5, y + 0.5); a cell whose pixel lies outside the image is negative.
Boxes are (x1, y1, x2, y2) in pixel-edge coordinates: an object covering
columns c0..c1 has x1 = c0 and x2 = c1 + 1.

- Mask-based positive sampling: a cell is positive for an object when its
  pixel lies inside the object's mask (not merely inside its box), and the
  object is assigned to the level as in FCOS: the largest of the distances
  l, t, r, b from the point to the object's box must lie in that level's
  `size_ranges` interval (lower bound exclusive, upper inclusive). Panoptic
  masks do not overlap, so a cell has at most one candidate object and needs
  no ambiguity rule (the paper's "closest border-ness" choice never arises).
- Box target: the object's box; the head regresses the distances l, t, r, b.
- Border-ness, the paper's replacement for FCOS centre-ness, uses the same
  formula, sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)), but with distances
  measured to the object's *mask* border: l and r run from the point along
  its row to the two ends of the run of mask pixels that contains it, t and b
  along its column. On a rectangle it equals centre-ness; on a non-convex
  shape it is low near any mask border, e.g. between a person's legs, where
  centre-ness would be high. This follows the paper's figure (centre-ness
  against the box, border-ness against the mask); the paper gives no code.
- Crowd regions are ignored by the class loss; void pixels are background.
"""

import numpy as np

from kerasseg.data.labels import IGNORE_LABEL

LEVELS = (3, 4, 5, 6, 7)
# FCOS regression ranges for P3..P7, in input pixels.
FCOS_SIZE_RANGES = ((0, 64), (64, 128), (128, 256), (256, 512), (512, float("inf")))
LABEL_DIVISOR = 1000
VOID = -1
# Class-target codes of `encode_box_targets`: 0 background, 1..T thing index + 1.
IGNORE_CLASS = -1


def level_shapes(height, width, levels=LEVELS):
    """Feature-map sizes of the LPSNet box levels for a (height, width) input.

    Levels up to 5 come from the backbone (height / 2^l, exact because training
    sizes are multiples of 32); P6 and P7 come from stride-2 "same" convolutions,
    hence the ceiling.
    """
    if height % 32 or width % 32:
        raise ValueError(
            "Training images must have a height and width that are multiples of 32 "
            f"(pad or crop them). Received: image size=({height}, {width})"
        )
    shapes = []
    h, w = height // 32, width // 32
    for level in levels:
        if level <= 5:
            shapes.append((height >> level, width >> level))
        else:
            h, w = -(-h // 2), -(-w // 2)
            shapes.append((h, w))
    return shapes


def level_points(height, width, levels=LEVELS):
    """Sampled pixel of every box-head cell, levels concatenated in order.

    Returns:
        (ys, xs, strides): int32 arrays of length N = sum of h*w over levels,
        row-major within a level, the order of the model's flattened outputs.
    """
    ys, xs, strides = [], [], []
    for level, (h, w) in zip(levels, level_shapes(height, width, levels), strict=True):
        stride = 2**level
        grid_y, grid_x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        ys.append((grid_y * stride + stride // 2).ravel())
        xs.append((grid_x * stride + stride // 2).ravel())
        strides.append(np.full(h * w, stride))
    return (np.concatenate(ys).astype(np.int32), np.concatenate(xs).astype(np.int32),
            np.concatenate(strides).astype(np.int32))


def _run_extents(ids, axis):
    """For each pixel, first and last index (along `axis`) of its run of equal ids."""
    ids = np.moveaxis(ids, axis, -1)
    n = ids.shape[-1]
    index = np.broadcast_to(np.arange(n), ids.shape)
    starts = np.ones(ids.shape, bool)
    starts[..., 1:] = ids[..., 1:] != ids[..., :-1]
    first = np.maximum.accumulate(np.where(starts, index, 0), axis=-1)
    ends = np.ones(ids.shape, bool)
    ends[..., :-1] = ids[..., :-1] != ids[..., 1:]
    last = n - 1 - np.maximum.accumulate(np.where(ends, n - 1 - index, 0)[..., ::-1], axis=-1)
    last = last[..., ::-1]
    return np.moveaxis(first, -1, axis), np.moveaxis(last, -1, axis)


def borderness_map(ids):
    """Border-ness of every pixel against the region (run of equal ids) it lies in.

    Args:
        ids: int (H, W) map; each connected run of one id along a row or a
            column is a piece of one mask.

    Returns:
        float32 (H, W) in (0, 1]: 1 at the middle of the mask along both axes.
    """
    ids = np.asarray(ids)
    first_x, last_x = _run_extents(ids, 1)
    first_y, last_y = _run_extents(ids, 0)
    ys, xs = np.indices(ids.shape)
    left, right = xs + 0.5 - first_x, last_x + 1 - (xs + 0.5)
    top, bottom = ys + 0.5 - first_y, last_y + 1 - (ys + 0.5)
    ratio = (np.minimum(left, right) / np.maximum(left, right)) * (
        np.minimum(top, bottom) / np.maximum(top, bottom)
    )
    return np.sqrt(ratio).astype(np.float32)


def instance_boxes(instances):
    """Boxes (x1, y1, x2, y2), pixel-edge coordinates, of ids 1..max in `instances`.

    Returns:
        float32 (K + 1, 4); row k is instance k's box (row 0 and absent ids: zeros).
    """
    count = int(instances.max(initial=0))
    boxes = np.zeros((count + 1, 4), np.float32)
    for k in range(1, count + 1):
        ys, xs = np.nonzero(instances == k)
        if len(ys):
            boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes


def split_panoptic(panoptic, thing_classes, label_divisor=LABEL_DIVISOR):
    """Semantic, instance and crowd maps of a panoptic id map.

    Returns:
        (semantic, instances, thing_index, crowd): semantic int32 (H, W) with
        IGNORE_LABEL at void; instances int32 (H, W), 1..K per thing segment
        (crowd and stuff: 0); thing_index int32 (K + 1,) the position in
        `thing_classes` of each instance's category (-1 at index 0); crowd
        bool (H, W).
    """
    panoptic = np.asarray(panoptic, np.int64)
    void = panoptic < 0
    category = np.where(void, IGNORE_LABEL, panoptic // label_divisor).astype(np.int32)
    is_thing = np.isin(category, thing_classes) & ~void
    crowd = is_thing & (panoptic % label_divisor == 0)
    thing_ids = np.unique(panoptic[is_thing & ~crowd])
    instances = np.zeros(panoptic.shape, np.int32)
    thing_index = np.full(len(thing_ids) + 1, -1, np.int32)
    lookup = {c: i for i, c in enumerate(thing_classes)}
    for k, segment_id in enumerate(thing_ids, start=1):
        instances[panoptic == segment_id] = k
        thing_index[k] = lookup[int(segment_id // label_divisor)]
    return category, instances, thing_index, crowd


def encode_box_targets(panoptic, thing_classes, label_divisor=LABEL_DIVISOR, levels=LEVELS,
                       size_ranges=FCOS_SIZE_RANGES):
    """LPSNet box-head targets of one image, for every cell of P3..P7.

    Args:
        panoptic: int (H, W) panoptic id map (see the module docstring); H and W
            multiples of 32.
        thing_classes: semantic class ids of the thing categories, in the
            order of the class head's channels.
        label_divisor: id = category * label_divisor + instance.
        levels: box-head levels.
        size_ranges: (low, high] of max(l, t, r, b) per level, in pixels.

    Returns:
        A dict of flat arrays over the N cells (levels concatenated):
        "class" int32 (N,): 0 background, k + 1 for thing_classes[k], -1 ignore
        (crowd); "boxes" float32 (N, 4): the object's box at positives, zeros
        elsewhere; "borderness" float32 (N,): mask border-ness at positives,
        -1 elsewhere.

    Example:
        >>> panoptic = np.full((64, 64), 0)
        >>> panoptic[8:40, 8:24] = 4 * 1000 + 1
        >>> targets = encode_box_targets(panoptic, thing_classes=(4,))
        >>> int((targets["class"] == 1).sum())
        8
    """
    if len(size_ranges) != len(levels):
        raise ValueError(
            f"`size_ranges` needs one (low, high) pair per level {levels}. "
            f"Received: size_ranges={size_ranges!r}"
        )
    panoptic = np.asarray(panoptic)
    height, width = panoptic.shape
    ys, xs, strides = level_points(height, width, levels)
    _, instances, thing_index, crowd = split_panoptic(panoptic, thing_classes, label_divisor)
    boxes = instance_boxes(instances)
    # A cell whose point falls outside the image (P6/P7 of small images) is negative.
    inside = (ys < height) & (xs < width)
    ys_in, xs_in = np.minimum(ys, height - 1), np.minimum(xs, width - 1)
    instance = np.where(inside, instances[ys_in, xs_in], 0)
    box = boxes[instance]
    cx, cy = xs + 0.5, ys + 0.5
    extent = np.max(np.stack([cx - box[:, 0], cy - box[:, 1], box[:, 2] - cx, box[:, 3] - cy]),
                    axis=0)
    low = np.zeros_like(extent)
    high = np.zeros_like(extent)
    for level, (lo, hi) in zip(levels, size_ranges, strict=True):
        low[strides == 2**level] = lo
        high[strides == 2**level] = hi
    positive = (instance > 0) & (extent > low) & (extent <= high)
    classes = np.where(positive, thing_index[instance] + 1, 0).astype(np.int32)
    classes[inside & crowd[ys_in, xs_in]] = IGNORE_CLASS
    borderness = borderness_map(instances)[ys_in, xs_in]
    return {
        "class": classes,
        "boxes": np.where(positive[:, None], box, 0.0).astype(np.float32),
        "borderness": np.where(positive, borderness, -1.0).astype(np.float32),
    }


def encode_targets(panoptic, thing_classes, label_divisor=LABEL_DIVISOR, levels=LEVELS,
                   size_ranges=FCOS_SIZE_RANGES):
    """All LPSNet training targets of one image: the box targets of
    `encode_box_targets` plus "semantic", int32 (H, W) with IGNORE_LABEL at
    void. Crowd pixels keep their category in the semantic target."""
    targets = encode_box_targets(panoptic, thing_classes, label_divisor, levels, size_ranges)
    targets["semantic"] = split_panoptic(panoptic, thing_classes, label_divisor)[0]
    return targets


def compose_panoptic(semantic, instances, thing_classes, label_divisor=LABEL_DIVISOR,
                     ignore_label=IGNORE_LABEL):
    """Panoptic id map from a semantic map and an instance map (0 = none).

    Thing pixels without an instance become crowd (instance 0); pixels labelled
    `ignore_label` become void. This is how `kerasseg.data.synthetic` scenes
    (which have no crowd) and Cityscapes-style label pairs are combined.
    """
    semantic = np.asarray(semantic, np.int64)
    instances = np.asarray(instances, np.int64)
    thing = np.isin(semantic, thing_classes)
    panoptic = semantic * label_divisor + np.where(thing, instances, 0)
    return np.where(semantic == ignore_label, VOID, panoptic).astype(np.int32)
