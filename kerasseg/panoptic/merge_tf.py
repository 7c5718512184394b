"""LPSNet's panoptic head in TensorFlow, for use after Keras inference.

The same algorithm, step for step and in the same float32 arithmetic, as the
numpy `kerasseg.panoptic.merge.panoptic_merge` (read its docstring for the
steps); the two return identical maps. Runs eagerly or inside `tf.function`.
"""

import tensorflow as tf

from kerasseg.panoptic.merge import merge_settings
from kerasseg.panoptic.targets import LABEL_DIVISOR, VOID


def _sigmoid(x):
    # 1 / (1 + exp(-x)) as in the numpy merge, not tf.sigmoid's approximation.
    return 1.0 / (1.0 + tf.exp(-tf.cast(x, tf.float32)))


def box_iou_tf(boxes_a, boxes_b):
    """IoU matrix of (N, 4) and (M, 4) float32 boxes (x1, y1, x2, y2)."""
    a = tf.cast(boxes_a, tf.float32)[:, None, :]
    b = tf.cast(boxes_b, tf.float32)[None, :, :]
    width = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    height = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    intersection = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - intersection
    return tf.where(union > 0.0, intersection / tf.maximum(union, 1e-12), 0.0)


def detect_tf(class_logits, boxes, borderness, score_threshold, nms_threshold, pre_nms_top_k,
              max_detections):
    """TensorFlow twin of `kerasseg.panoptic.merge.detect`."""
    class_logits = tf.cast(class_logits, tf.float32)
    num_things = tf.shape(class_logits)[-1]
    scores = _sigmoid(class_logits) * _sigmoid(tf.reshape(borderness, (-1, 1)))
    flat = tf.reshape(scores, (-1,))
    candidates = tf.where(flat > score_threshold)[:, 0]
    candidate_scores = tf.gather(flat, candidates)
    # top_k puts the lower index first among equal values, like a stable sort.
    count = tf.minimum(tf.size(candidates), pre_nms_top_k)
    order = tf.math.top_k(candidate_scores, k=count, sorted=True).indices
    candidates = tf.gather(candidates, order)
    cells = tf.cast(candidates // tf.cast(num_things, tf.int64), tf.int32)
    classes = tf.cast(candidates % tf.cast(num_things, tf.int64), tf.int32)
    candidate_boxes = tf.gather(tf.cast(boxes, tf.float32), cells)
    iou = box_iou_tf(candidate_boxes, candidate_boxes)
    same_class = classes[:, None] == classes[None, :]
    suppresses = same_class & (iou > nms_threshold)

    def body(i, keep, kept):
        clash = tf.reduce_any(suppresses[i] & keep)
        take = tf.logical_and(tf.logical_not(clash), kept < max_detections)
        keep = tf.tensor_scatter_nd_update(keep, [[i]], [take])
        return i + 1, keep, kept + tf.cast(take, tf.int32)

    _, keep, _ = tf.while_loop(
        lambda i, keep, kept: i < count,
        body,
        (tf.constant(0), tf.zeros([count], tf.bool), tf.constant(0)),
    )
    index = tf.where(keep)[:, 0]
    return (tf.gather(candidate_boxes, index), tf.gather(classes, index),
            tf.gather(tf.gather(flat, candidates), index))


def paste_tf(labels, boxes, classes, thing_classes, num_classes, *, overlap_threshold,
             min_thing_area, min_stuff_area, label_divisor=LABEL_DIVISOR):
    """TensorFlow twin of `kerasseg.panoptic.merge.paste`."""
    labels = tf.cast(labels, tf.int32)
    shape = tf.shape(labels)
    centre_x = tf.range(shape[1], dtype=tf.float32) + 0.5
    centre_y = tf.range(shape[0], dtype=tf.float32) + 0.5
    categories = tf.gather(tf.constant(thing_classes, tf.int32), classes)
    boxes = tf.cast(boxes, tf.float32)

    def body(d, panoptic, occupied, instance):
        box, category = boxes[d], categories[d]
        inside = ((centre_y >= box[1]) & (centre_y < box[3]))[:, None] & (
            (centre_x >= box[0]) & (centre_x < box[2])
        )[None, :]
        mask = inside & tf.equal(labels, category)
        area = tf.reduce_sum(tf.cast(mask, tf.int32))
        taken = tf.reduce_sum(tf.cast(mask & occupied, tf.int32))
        free = mask & tf.logical_not(occupied)
        reject = (
            tf.equal(area, 0)
            | (tf.cast(taken, tf.float64) > overlap_threshold * tf.cast(area, tf.float64))
            | (area - taken < min_thing_area)
        )
        accept = tf.logical_not(reject)
        new_instance = instance + tf.cast(accept, tf.int32)
        write = free & accept
        panoptic = tf.where(write, category * label_divisor + new_instance, panoptic)
        return d + 1, panoptic, occupied | write, new_instance

    _, panoptic, occupied, _ = tf.while_loop(
        lambda d, *_: d < tf.shape(boxes)[0],
        body,
        (tf.constant(0), tf.fill(shape, tf.constant(VOID, tf.int32)), tf.zeros(shape, tf.bool),
         tf.constant(0)),
    )
    for category in range(num_classes):
        if category in thing_classes:
            continue
        region = tf.equal(labels, category) & tf.logical_not(occupied)
        keep = tf.reduce_sum(tf.cast(region, tf.int32)) >= min_stuff_area
        panoptic = tf.where(region & keep, category * label_divisor, panoptic)
    return panoptic


def panoptic_merge_tf(semantic_logits, class_logits, boxes, borderness, thing_classes,
                      label_divisor=LABEL_DIVISOR, **options):
    """Panoptic id map of one image from LPSNet outputs (TensorFlow).

    Arguments and result as `kerasseg.panoptic.merge.panoptic_merge`; tensors
    or arrays are accepted, the result is an int32 (H, W) tensor.

    Example:
        >>> outputs = model(images)
        >>> panoptic = panoptic_merge_tf(outputs["semantic"][0], outputs["class_logits"][0],
        ...                              outputs["boxes"][0], outputs["borderness"][0], (4, 5, 6))
    """
    settings = merge_settings(options)
    semantic_logits = tf.convert_to_tensor(semantic_logits)
    num_classes = int(semantic_logits.shape[-1])
    labels = tf.argmax(semantic_logits, axis=-1, output_type=tf.int32)
    det_boxes, det_classes, _ = detect_tf(
        class_logits, boxes, borderness, settings["score_threshold"], settings["nms_threshold"],
        settings["pre_nms_top_k"], settings["max_detections"],
    )
    thing_classes = tuple(int(t) for t in thing_classes)
    return paste_tf(labels, det_boxes, det_classes, thing_classes, num_classes,
                    overlap_threshold=settings["overlap_threshold"],
                    min_thing_area=settings["min_thing_area"],
                    min_stuff_area=settings["min_stuff_area"], label_divisor=label_divisor)
