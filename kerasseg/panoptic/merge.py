"""LPSNet's non-parametric panoptic head, in numpy (no TensorFlow).

`panoptic_merge` turns the network's outputs for one image into a panoptic id
map (`category * label_divisor + instance`, -1 void; see
`kerasseg.panoptic.targets`). `kerasseg.panoptic.merge_tf.panoptic_merge_tf`
is the same algorithm in TensorFlow; both give identical maps.

Algorithm (Hong et al., CVPR 2021, Sec. 3.4), deterministic:

1. Semantic labels: argmax of the semantic logits (first class on ties).
2. Detections: score = sigmoid(class logit) * sigmoid(border-ness logit) for
   every (cell, thing class); keep scores > `score_threshold`, the
   `pre_nms_top_k` best (ties: lower cell, then lower class index first).
3. Class-wise greedy NMS: a box is dropped if its IoU with a kept box of the
   same class exceeds `nms_threshold`; at most `max_detections` are kept.
4. Paste, from the highest score down: the box's mask is the pixels whose
   centres lie inside the box and whose semantic label is the box's class.
   If more than `overlap_threshold` of that mask is already occupied, or
   fewer than `min_thing_area` of its pixels are still free, the box is
   discarded; otherwise its free pixels become instance k (k = 1, 2, ...).
5. Stuff: free pixels take their semantic class if it is a stuff class and
   its free area reaches `min_stuff_area`; all other free pixels are void.
"""

import numpy as np

from kerasseg.panoptic.targets import LABEL_DIVISOR, VOID

MERGE_DEFAULTS = {
    "score_threshold": 0.3,
    "nms_threshold": 0.6,
    "pre_nms_top_k": 1000,
    "max_detections": 100,
    "overlap_threshold": 0.5,
    "min_thing_area": 16,
    "min_stuff_area": 64,
}


def _sigmoid(x):
    x = np.asarray(x, np.float32)
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def box_iou(boxes_a, boxes_b):
    """IoU matrix of (N, 4) and (M, 4) float32 boxes (x1, y1, x2, y2)."""
    a = np.asarray(boxes_a, np.float32)[:, None, :]
    b = np.asarray(boxes_b, np.float32)[None, :, :]
    zero = np.float32(0)
    width = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), zero)
    height = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), zero)
    intersection = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - intersection
    return np.where(union > zero, intersection / np.maximum(union, np.float32(1e-12)), zero)


def detect(class_logits, boxes, borderness, score_threshold, nms_threshold, pre_nms_top_k,
           max_detections):
    """Steps 2-3: scored, class-wise NMS'd detections, best first.

    Returns:
        (boxes float32 (D, 4), classes int32 (D,) thing indices, scores float32 (D,)).
    """
    class_logits = np.asarray(class_logits, np.float32)
    num_things = class_logits.shape[-1]
    scores = _sigmoid(class_logits) * _sigmoid(np.reshape(borderness, (-1, 1)))
    flat = scores.ravel()
    candidates = np.flatnonzero(flat > np.float32(score_threshold))
    # Stable sort on -score keeps the (cell, class) order among equal scores.
    candidates = candidates[np.argsort(-flat[candidates], kind="stable")][:pre_nms_top_k]
    cells, classes = candidates // num_things, candidates % num_things
    candidate_boxes = np.asarray(boxes, np.float32)[cells]
    iou = box_iou(candidate_boxes, candidate_boxes)
    keep = []
    for i in range(len(candidates)):
        if len(keep) == max_detections:
            break
        kept = np.asarray(keep, np.int64)
        if not np.any((classes[kept] == classes[i]) & (iou[i, kept] > np.float32(nms_threshold))):
            keep.append(i)
    keep = np.asarray(keep, np.int64)
    return candidate_boxes[keep], classes[keep].astype(np.int32), flat[candidates][keep]


def paste(labels, boxes, classes, thing_classes, overlap_threshold, min_thing_area,
          min_stuff_area, label_divisor=LABEL_DIVISOR):
    """Steps 4-5: paste detections (best first) onto semantic labels (H, W)."""
    labels = np.asarray(labels)
    height, width = labels.shape
    centre_x = np.arange(width, dtype=np.float32) + np.float32(0.5)
    centre_y = np.arange(height, dtype=np.float32) + np.float32(0.5)
    panoptic = np.full((height, width), VOID, np.int32)
    occupied = np.zeros((height, width), bool)
    instance = 0
    for box, thing in zip(np.asarray(boxes, np.float32), classes, strict=True):
        category = int(thing_classes[int(thing)])
        inside = ((centre_y >= box[1]) & (centre_y < box[3]))[:, None] & (
            (centre_x >= box[0]) & (centre_x < box[2])
        )[None, :]
        mask = inside & (labels == category)
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        taken = int(np.count_nonzero(mask & occupied))
        free = mask & ~occupied
        # Integer comparison: the same decision in numpy and TensorFlow.
        if taken > overlap_threshold * area or area - taken < min_thing_area:
            continue
        instance += 1
        panoptic[free] = category * label_divisor + instance
        occupied |= free
    stuff = [c for c in np.unique(labels) if c not in set(int(t) for t in thing_classes)]
    for category in stuff:
        region = (labels == category) & ~occupied
        if np.count_nonzero(region) >= min_stuff_area:
            panoptic[region] = int(category) * label_divisor
    return panoptic


def merge_settings(options):
    """`MERGE_DEFAULTS` updated with `options`; unknown option names are errors."""
    unknown = set(options) - set(MERGE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"Unknown merge options {sorted(unknown)}; valid: {sorted(MERGE_DEFAULTS)}."
        )
    return {**MERGE_DEFAULTS, **options}


def panoptic_merge(semantic_logits, class_logits, boxes, borderness, thing_classes,
                   label_divisor=LABEL_DIVISOR, **options):
    """Panoptic id map of one image from LPSNet outputs (numpy).

    Args:
        semantic_logits: float (H, W, C) semantic logits (or probabilities).
        class_logits: float (N, T) thing-class logits of the N box-head cells.
        boxes: float (N, 4) decoded boxes (x1, y1, x2, y2) in input pixels.
        borderness: float (N,) or (N, 1) border-ness logits.
        thing_classes: semantic class id of each of the T class-head channels.
        label_divisor: panoptic id = category * label_divisor + instance.
        **options: overrides of `MERGE_DEFAULTS` (score_threshold,
            nms_threshold, pre_nms_top_k, max_detections, overlap_threshold,
            min_thing_area, min_stuff_area).

    Returns:
        int32 (H, W) panoptic id map, -1 for void.

    Example:
        >>> outputs = model.predict(image[None])
        >>> panoptic = panoptic_merge(outputs["semantic"][0], outputs["class_logits"][0],
        ...                           outputs["boxes"][0], outputs["borderness"][0], (4, 5, 6))
    """
    settings = merge_settings(options)
    labels = np.argmax(np.asarray(semantic_logits), axis=-1)
    det_boxes, det_classes, _ = detect(
        class_logits, boxes, borderness, settings["score_threshold"],
        settings["nms_threshold"], settings["pre_nms_top_k"], settings["max_detections"],
    )
    return paste(labels, det_boxes, det_classes, thing_classes, settings["overlap_threshold"],
                 settings["min_thing_area"], settings["min_stuff_area"], label_divisor)
