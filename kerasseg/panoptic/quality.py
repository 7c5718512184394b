"""Panoptic quality (PQ, SQ, RQ), exactly as Kirillov et al. (CVPR 2019).

Per category c, over all images: a predicted and a ground-truth segment of c
match when their IoU exceeds 0.5 (such a match is unique); void pixels of the
ground truth are left out of the union. Unmatched ground-truth segments are
false negatives (crowd segments never count); an unmatched prediction is a
false positive unless more than half of its area is ground-truth void or a
crowd region of its own category. Then
PQ_c = sum of matched IoUs / (TP + FP/2 + FN/2), SQ_c = sum IoU / TP,
RQ_c = TP / (TP + FP/2 + FN/2), and PQ, SQ, RQ average them over the
categories with TP + FP + FN > 0 (all, things only, stuff only), as the COCO
panoptic API (`panopticapi/evaluation.py`) does.

Maps use the encoding of `kerasseg.panoptic.targets` (category *
label_divisor + instance, thing instance 0 = crowd, -1 void). The statistics
are numpy (`panoptic_statistics`), the Keras metric (`quality_metric`) accumulates them.
"""

import numpy as np

from kerasseg.panoptic.targets import LABEL_DIVISOR
from kerasseg.utils import check_positive_int

# Columns of the per-category statistics array.
TP, FP, FN, IOU = range(4)


def panoptic_statistics(ground_truth, prediction, num_classes, thing_classes,
                        label_divisor=LABEL_DIVISOR):
    """Per-category (TP, FP, FN, sum of matched IoU) of one image.

    Args:
        ground_truth: int (H, W) panoptic id map, -1 void; thing segments with
            instance 0 are crowd regions.
        prediction: int (H, W) panoptic id map, -1 void (unassigned).
        num_classes: number of categories (ids 0..num_classes - 1).
        thing_classes: category ids that are things.
        label_divisor: panoptic id = category * label_divisor + instance.

    Returns:
        float64 (num_classes, 4) array, columns TP, FP, FN, IoU sum.
    """
    gt = np.asarray(ground_truth, np.int64).ravel()
    pred = np.asarray(prediction, np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(
            f"`ground_truth` and `prediction` must have the same shape. Received: "
            f"{np.shape(ground_truth)} and {np.shape(prediction)}"
        )
    for name, ids in (("ground_truth", gt), ("prediction", pred)):
        categories = ids[ids >= 0] // label_divisor
        if categories.size and categories.max() >= num_classes:
            raise ValueError(
                f"`{name}` has category {int(categories.max())}, but num_classes="
                f"{num_classes} (ids are category * {label_divisor} + instance, -1 void)."
            )
    things = set(int(t) for t in thing_classes)

    def is_crowd(segment):
        return segment % label_divisor == 0 and int(segment // label_divisor) in things

    stats = np.zeros((num_classes, 4), np.float64)
    gt_ids, gt_areas = np.unique(gt[gt >= 0], return_counts=True)
    pred_ids, pred_areas = np.unique(pred[pred >= 0], return_counts=True)
    gt_area, pred_area = dict(zip(gt_ids, gt_areas, strict=True)), dict(
        zip(pred_ids, pred_areas, strict=True))
    # Intersections of every (gt, pred) pair, void included (-1), via one unique.
    offset = int(max(gt.max(initial=0), pred.max(initial=0))) + 2
    pairs, counts = np.unique((gt + 1) * offset + (pred + 1), return_counts=True)
    intersection = {(int(p // offset) - 1, int(p % offset) - 1): int(c)
                    for p, c in zip(pairs, counts, strict=True)}
    void_in_pred = {p: n for (g, p), n in intersection.items() if g == -1}

    matched_gt, matched_pred = set(), set()
    for (g, p), inter in intersection.items():
        if g < 0 or p < 0 or is_crowd(g) or g // label_divisor != p // label_divisor:
            continue
        union = pred_area[p] + gt_area[g] - inter - void_in_pred.get(p, 0)
        iou = inter / union
        if iou > 0.5:
            category = g // label_divisor
            stats[category, TP] += 1
            stats[category, IOU] += iou
            matched_gt.add(g)
            matched_pred.add(p)
    for g in gt_ids:
        if g not in matched_gt and not is_crowd(g):
            stats[g // label_divisor, FN] += 1
    for p in pred_ids:
        if p in matched_pred:
            continue
        category = p // label_divisor
        ignored = void_in_pred.get(p, 0)
        if category in things:
            ignored += intersection.get((category * label_divisor, p), 0)
        if ignored / pred_area[p] > 0.5:
            continue
        stats[category, FP] += 1
    return stats


def summarize(stats, thing_classes):
    """PQ, SQ, RQ (all, things, stuff) and per-class PQ from accumulated statistics.

    Returns:
        A dict: "pq", "sq", "rq", "pq_things", "sq_things", "rq_things",
        "pq_stuff", "sq_stuff", "rq_stuff" (floats in [0, 1]; 0 when no
        category counts) and "per_class_pq", "per_class_sq", "per_class_rq"
        (num_classes,) with NaN for categories absent from both ground truth
        and predictions.
    """
    stats = np.asarray(stats, np.float64)
    tp, fp, fn, iou = stats[:, TP], stats[:, FP], stats[:, FN], stats[:, IOU]
    denominator = tp + 0.5 * fp + 0.5 * fn
    present = (tp + fp + fn) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pq = np.where(present, iou / np.maximum(denominator, 1e-12), np.nan)
        sq = np.where(tp > 0, iou / np.maximum(tp, 1), 0.0)
        rq = np.where(present, tp / np.maximum(denominator, 1e-12), np.nan)
    is_thing = np.zeros(len(stats), bool)
    is_thing[list(thing_classes)] = True
    result = {}
    for suffix, select in (("", np.ones_like(is_thing)), ("_things", is_thing),
                           ("_stuff", ~is_thing)):
        chosen = select & present
        count = max(int(chosen.sum()), 1)
        result["pq" + suffix] = float(pq[chosen].sum() / count)
        result["sq" + suffix] = float(sq[chosen].sum() / count)
        result["rq" + suffix] = float(rq[chosen].sum() / count)
    result["per_class_pq"] = pq
    result["per_class_sq"] = np.where(present, sq, np.nan)
    result["per_class_rq"] = rq
    return result


# Keys of the dict `PanopticQuality.result()` returns, from `summarize`.
_RESULT_KEYS = ("pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff",
                "sq_stuff", "rq_stuff")


def _check_metric_arguments(num_classes, thing_classes):
    """`thing_classes` as ints in [0, num_classes), after checking both."""
    check_positive_int("num_classes", num_classes)
    things = tuple(int(t) for t in thing_classes)
    if any(not 0 <= t < num_classes for t in things):
        raise ValueError(
            f"`thing_classes` must be ids in [0, {num_classes}). "
            f"Received: thing_classes={thing_classes!r}"
        )
    return things


def _batch_statistics(ground_truth, prediction, num_classes, thing_classes, label_divisor):
    """`panoptic_statistics` summed over a batch of (H, W) maps, float64."""
    return np.sum(
        [panoptic_statistics(g, p, num_classes, thing_classes, label_divisor)
         for g, p in zip(ground_truth, prediction, strict=True)],
        axis=0,
    ).reshape(num_classes, 4).astype(np.float64)


def _result_values(stats, thing_classes):
    """The `_RESULT_KEYS` entries of `summarize`, as one float64 vector."""
    summary = summarize(stats, thing_classes)
    return np.array([summary[k] for k in _RESULT_KEYS], np.float64)
