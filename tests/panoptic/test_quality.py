"""Panoptic quality against hand-computed cases (Kirillov et al. 2019)."""

import numpy as np
import pytest

from kerasseg.panoptic.quality import FN, FP, IOU, TP, panoptic_statistics, summarize

THINGS = (2,)
NUM_CLASSES = 3


def stats(gt, pred):
    return panoptic_statistics(np.array(gt), np.array(pred), NUM_CLASSES, THINGS)


def scene():
    """GT: stuff 0 on columns 0-4; thing 2 instances 1 (top right) and 2 (bottom right)."""
    gt = np.zeros((10, 10), np.int64)
    gt[:5, 5:] = 2001
    gt[5:, 5:] = 2002
    pred = np.full((10, 10), -1, np.int64)
    pred[:, :6] = 0  # stuff 0 on columns 0-5: IoU 50 / 60
    pred[:5, 6:] = 2001  # 20 of instance 1's 25 pixels: IoU 0.8
    pred[5:, 6:8] = 2002  # 10 of instance 2's pixels: IoU 0.4, no match
    return gt, pred


def test_hand_computed_scene():
    gt, pred = scene()
    result = stats(gt, pred)
    np.testing.assert_allclose(result[0], [1, 0, 0, 50 / 60])
    np.testing.assert_allclose(result[1], [0, 0, 0, 0])
    np.testing.assert_allclose(result[2], [1, 1, 1, 0.8])
    summary = summarize(result, THINGS)
    pq_stuff, pq_thing = 50 / 60, 0.8 / (1 + 0.5 + 0.5)
    assert summary["pq"] == pytest.approx((pq_stuff + pq_thing) / 2)
    assert summary["sq"] == pytest.approx((50 / 60 + 0.8) / 2)
    assert summary["rq"] == pytest.approx((1 + 0.5) / 2)
    assert summary["pq_things"] == pytest.approx(0.4)
    assert summary["sq_things"] == pytest.approx(0.8)
    assert summary["rq_things"] == pytest.approx(0.5)
    assert summary["pq_stuff"] == pytest.approx(50 / 60)
    assert np.isnan(summary["per_class_pq"][1])  # absent class: not averaged, not 0 or 1


def test_perfect_prediction_with_relabelled_instances():
    gt, _ = scene()
    pred = np.where(gt == 2001, 2007, np.where(gt == 2002, 2003, gt))  # ids need not match
    summary = summarize(stats(gt, pred), THINGS)
    assert summary["pq"] == summary["sq"] == summary["rq"] == 1.0


def test_iou_of_exactly_one_half_is_not_a_match():
    gt = np.zeros((2, 10), np.int64)
    gt[0] = 2001
    pred = np.zeros((2, 10), np.int64)
    pred[0, :5] = 2001  # IoU 5 / 10
    pred[1, 5:] = 2001
    result = stats(gt, pred)
    np.testing.assert_allclose(result[2], [0, 1, 1, 0])
    pred[0, :6] = 2001  # intersection 6, union 10: IoU 0.6, a match
    pred[1, 5:] = 0
    np.testing.assert_allclose(stats(gt, pred)[2], [1, 0, 0, 0.6])


def test_void_pixels_are_left_out_of_the_union():
    gt = np.full((2, 10), -1, np.int64)
    gt[0] = 1000
    pred = np.full((2, 10), 1000, np.int64)  # covers the 10 gt pixels and 10 void ones
    np.testing.assert_allclose(stats(gt, pred)[1], [1, 0, 0, 1.0])


def test_unmatched_prediction_mostly_void_is_not_a_false_positive():
    gt = np.zeros((1, 10), np.int64)
    gt[0, :6] = -1
    pred = np.zeros((1, 10), np.int64)
    pred[0, :] = 2001  # 6 of 10 pixels void (> 50%): ignored
    result = stats(gt, pred)
    assert result[2, FP] == 0
    assert result[0, FN] == 1  # the stuff segment was still missed
    gt[0, 5] = 0  # now exactly 50% void: a false positive
    assert stats(gt, pred)[2, FP] == 1


def test_crowd_regions():
    gt = np.zeros((2, 10), np.int64)
    gt[0, :] = 2000  # a crowd of class 2 (thing with instance 0)
    pred = np.zeros((2, 10), np.int64)
    pred[0, :4] = 2001  # inside the crowd: not a false positive
    pred[0, 4:] = 2002
    pred[1, :] = 2002  # 6 crowd + 10 stuff pixels: 6 / 16 is not > 0.5, a false positive
    result = stats(gt, pred)
    np.testing.assert_allclose(result[2], [0, 1, 0, 0])  # crowds are never false negatives
    np.testing.assert_allclose(result[0], [0, 0, 1, 0])  # the stuff row went to instance 2002


def test_categories_must_agree():
    gt = np.full((2, 2), 1000, np.int64)
    pred = np.full((2, 2), 0, np.int64)
    result = stats(gt, pred)
    assert result[1, FN] == 1 and result[0, FP] == 1 and result[:, TP].sum() == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        stats(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="category 7"):
        stats(np.full((2, 2), 7000), np.zeros((2, 2)))


def test_keras_metric_accumulates_like_numpy():
    import keras
    import tensorflow as tf

    from kerasseg.panoptic import PanopticQuality

    gt, pred = scene()
    perfect = gt.copy()
    metric = PanopticQuality(num_classes=NUM_CLASSES, thing_classes=THINGS)
    metric.update_state(np.stack([gt, gt]), np.stack([pred, perfect]))

    @tf.function
    def update(g, p):
        metric.update_state(g, p)

    update(tf.constant(gt[None]), tf.constant(pred[None]))
    expected = summarize(stats(gt, pred) * 2 + stats(gt, perfect), THINGS)
    result = metric.result()
    assert set(result) == {"pq", "sq", "rq", "pq_things", "sq_things", "rq_things",
                           "pq_stuff", "sq_stuff", "rq_stuff"}
    for key, value in result.items():
        assert float(value) == pytest.approx(expected[key]), key
    np.testing.assert_allclose(metric.statistics.numpy()[:, IOU],
                               (stats(gt, pred) * 2 + stats(gt, perfect))[:, IOU])
    metric.reset_state()
    assert float(metric.result()["pq"]) == 0.0
    clone = PanopticQuality.from_config(metric.get_config())
    assert clone.thing_classes == THINGS and clone.num_classes == NUM_CLASSES
    assert keras.saving.get_registered_object("kerasseg>PanopticQuality") is PanopticQuality
    with pytest.raises(ValueError, match="thing_classes"):
        PanopticQuality(num_classes=3, thing_classes=(5,))
