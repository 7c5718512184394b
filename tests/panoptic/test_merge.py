"""The non-parametric panoptic head: hand-made paste cases, numpy == TF."""

import numpy as np
import pytest

from kerasseg.panoptic.merge import box_iou, detect, panoptic_merge, paste

CAR, PERSON = 5, 4
THINGS = (PERSON, CAR)
HIGH, LOW = 6.0, -6.0


def one_hot_logits(labels, num_classes=6):
    return np.eye(num_classes, dtype=np.float32)[labels] * 5.0


def detections(*entries):
    """(box, thing channel, class logit, border-ness logit) -> merge inputs."""
    class_logits = np.full((len(entries), len(THINGS)), LOW, np.float32)
    boxes, border = [], []
    for i, (box, channel, logit, border_logit) in enumerate(entries):
        class_logits[i, channel] = logit
        boxes.append(box)
        border.append([border_logit])
    return class_logits, np.array(boxes, np.float32), np.array(border, np.float32)


def merge_both(semantic, class_logits, boxes, border, **options):
    """Runs the numpy and the TensorFlow merge; asserts they agree."""
    from kerasseg.panoptic.merge_tf import panoptic_merge_tf

    result = panoptic_merge(semantic, class_logits, boxes, border, THINGS, **options)
    result_tf = panoptic_merge_tf(semantic, class_logits, boxes, border, THINGS, **options)
    np.testing.assert_array_equal(result, result_tf.numpy())
    return result


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 4, 4]], [[2, 2, 6, 6], [0, 0, 4, 4], [10, 10, 12, 12]])
    np.testing.assert_allclose(iou, [[4 / 28, 1.0, 0.0]])


def test_paste_takes_box_pixels_of_its_class_and_stuff_from_semantic():
    labels = np.zeros((12, 12), np.int64)  # stuff 0 everywhere ...
    labels[2:6, 2:6] = CAR  # ... a car ...
    labels[8:11, 1:4] = 1  # ... and a 9-pixel patch of stuff 1
    semantic = one_hot_logits(labels)
    # The box [1, 1, 7, 7] covers the car and some stuff: only car pixels are taken.
    inputs = detections(([1, 1, 7, 7], 1, HIGH, HIGH))
    result = merge_both(semantic, *inputs, min_thing_area=1, min_stuff_area=1)
    expected = np.where(labels == CAR, CAR * 1000 + 1, labels * 1000)
    np.testing.assert_array_equal(result, expected)
    # Stuff smaller than min_stuff_area becomes void; thing pixels no box claims too.
    result = merge_both(semantic, *detections(([1, 1, 7, 7], 0, HIGH, HIGH)),
                        min_thing_area=1, min_stuff_area=10)
    assert (result[labels == CAR] == -1).all() and (result[labels == 1] == -1).all()
    assert (result[labels == 0] == 0).all()


def test_pixel_centres_decide_box_membership():
    labels = np.full((4, 8), CAR)
    # x in [1.5, 4.5): centres 1.5, 2.5, 3.5 -> columns 1..3; y in [0, 0.6): row 0 only.
    result = merge_both(one_hot_logits(labels), *detections(([1.5, 0.0, 4.5, 0.6], 1, HIGH, HIGH)),
                        min_thing_area=1, min_stuff_area=1)
    expected = np.full((4, 8), -1)
    expected[0, 1:4] = CAR * 1000 + 1
    np.testing.assert_array_equal(result, expected)


def test_occupied_pixels_are_not_taken_again_and_order_is_by_score():
    labels = np.full((10, 20), PERSON)
    semantic = one_hot_logits(labels)
    # Box A (score high) covers columns 0..9, box B (lower) columns 6..15:
    # B's 40% overlap is under the 0.5 threshold, so B keeps columns 10..15.
    inputs = detections(([6, 0, 16, 10], 0, 2.0, HIGH), ([0, 0, 10, 10], 0, HIGH, HIGH))
    result = merge_both(semantic, *inputs, min_thing_area=1, min_stuff_area=1,
                        nms_threshold=0.9)
    assert (result[:, :10] == PERSON * 1000 + 1).all()  # the higher score is pasted first
    assert (result[:, 10:16] == PERSON * 1000 + 2).all()
    assert (result[:, 16:] == -1).all()


def test_box_mostly_over_occupied_pixels_is_discarded():
    labels = np.full((10, 20), PERSON)
    semantic = one_hot_logits(labels)
    # B overlaps A on 6 of its 10 columns (60% > 50%): discarded.
    inputs = detections(([0, 0, 10, 10], 0, HIGH, HIGH), ([4, 0, 14, 10], 0, 2.0, HIGH))
    result = merge_both(semantic, *inputs, min_thing_area=1, min_stuff_area=1,
                        nms_threshold=0.9)
    assert set(np.unique(result)) == {PERSON * 1000 + 1, -1}
    # With a threshold above 60% it is kept.
    result = merge_both(semantic, *inputs, min_thing_area=1, min_stuff_area=1,
                        nms_threshold=0.9, overlap_threshold=0.7)
    assert (result[:, 10:14] == PERSON * 1000 + 2).all()


def test_small_remainders_are_removed():
    labels = np.full((10, 20), PERSON)
    inputs = detections(([0, 0, 10, 10], 0, HIGH, HIGH), ([8, 0, 20, 2], 0, 2.0, HIGH))
    # B has 24 mask pixels, 4 taken, 20 free: kept with min 20, dropped with min 21.
    kept = merge_both(one_hot_logits(labels), *inputs, min_thing_area=20, min_stuff_area=1)
    dropped = merge_both(one_hot_logits(labels), *inputs, min_thing_area=21, min_stuff_area=1)
    assert (kept[0:2, 10:20] == PERSON * 1000 + 2).all()
    assert (dropped[0:2, 10:20] == -1).all()


def test_nms_is_class_wise_and_threshold_uses_border_ness():
    class_logits, boxes, border = detections(
        ([0, 0, 10, 10], 0, HIGH, HIGH),
        ([0, 0, 10, 9], 0, 3.0, HIGH),  # IoU 0.9 with the first, same class: suppressed
        ([0, 0, 10, 9], 1, 3.0, HIGH),  # other class: kept
        ([20, 20, 30, 30], 0, HIGH, LOW),  # class confident, border-ness not: below threshold
    )
    kept_boxes, classes, scores = detect(class_logits, boxes, border, 0.3, 0.6, 1000, 100)
    np.testing.assert_array_equal(kept_boxes, boxes[[0, 2]])
    np.testing.assert_array_equal(classes, [0, 1])
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(scores, [sigmoid(HIGH) ** 2, sigmoid(3.0) * sigmoid(HIGH)],
                               rtol=1e-6)
    assert len(detect(class_logits, boxes, border, 0.3, 0.6, 1000, 1)[0]) == 1


def test_numpy_and_tensorflow_merges_agree_on_random_outputs():
    rng = np.random.default_rng(0)
    for _ in range(3):
        labels = rng.integers(0, 6, (8, 12)).repeat(6, 0).repeat(6, 1)
        semantic = one_hot_logits(labels) + rng.normal(0, 1, labels.shape + (6,))
        corners = rng.uniform(0, 60, (150, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(4, 40, (150, 2))], 1)
        class_logits = rng.normal(0, 2, (150, 2)).astype(np.float32)
        border = rng.normal(0, 2, (150, 1)).astype(np.float32)
        result = merge_both(semantic.astype(np.float32), class_logits, boxes.astype(np.float32),
                            border, min_thing_area=4, min_stuff_area=16)
        assert (result >= 1001).sum() > 0 and (result // 1000 == 0).sum() > 0


def test_rejects_unknown_option():
    with pytest.raises(ValueError, match="min_area"):
        panoptic_merge(np.zeros((4, 4, 6)), *detections(([0, 0, 1, 1], 0, 1.0, 1.0)), THINGS,
                       min_area=3)


def test_paste_is_tf_free():
    import subprocess
    import sys

    code = ("import sys, kerasseg.panoptic.merge, kerasseg.panoptic.quality;"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert paste  # the numpy entry points import without TensorFlow
