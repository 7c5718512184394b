"""Each LPSNet loss term against an independent numpy computation."""

import numpy as np
import pytest

from kerasseg.panoptic.losses import (
    BordernessLoss,
    BoxIoULoss,
    DenseFocalLoss,
    compile_lpsnet,
    lpsnet_losses,
    lpsnet_optimizer,
    lpsnet_schedule,
)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_focal_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 5, 3)).astype(np.float32)
    codes = np.array([[0, 1, 3, -1, 0], [2, 0, 0, 0, -1]])
    alpha, gamma = 0.25, 2.0
    total = 0.0
    for b in range(2):
        for n in range(5):
            if codes[b, n] < 0:
                continue
            for c in range(3):
                p = sigmoid(float(logits[b, n, c]))
                if codes[b, n] == c + 1:
                    total += -alpha * (1 - p) ** gamma * np.log(p)
                else:
                    total += -(1 - alpha) * p**gamma * np.log(1 - p)
    expected = total / 3  # three positive cells in the batch
    loss = DenseFocalLoss(alpha, gamma)(codes.astype(np.float32), logits)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # No positives: divided by 1, not by 0.
    assert np.isfinite(float(DenseFocalLoss()(np.zeros((1, 5)), logits[:1])))


def test_giou_and_iou_losses_by_hand():
    target = np.array([[[0, 0, 4, 4], [0, 0, 0, 0], [10, 10, 12, 14]]], np.float32)
    predicted = np.array([[[2, 2, 6, 6], [1, 1, 9, 9], [10, 10, 12, 14]]], np.float32)
    # Cell 0: intersection 4, union 28, hull 36 -> IoU 1/7, GIoU 1/7 - 8/36.
    # Cell 1 is negative (empty target); cell 2 is a perfect box.
    iou0, giou0 = 4 / 28, 4 / 28 - (36 - 28) / 36
    assert float(BoxIoULoss("giou")(target, predicted)) == pytest.approx(((1 - giou0) + 0) / 2)
    assert float(BoxIoULoss("linear_iou")(target, predicted)) == pytest.approx((1 - iou0) / 2)
    assert float(BoxIoULoss("iou")(target, predicted)) == pytest.approx(-np.log(iou0) / 2,
                                                                        rel=1e-5)
    # Disjoint boxes: GIoU goes below 0, so the loss still has a gradient.
    far = np.array([[[20, 20, 24, 24]]], np.float32)
    hull = 24 * 24
    assert float(BoxIoULoss()(target[:, :1], far)) == pytest.approx(1 + (hull - 32) / hull)
    with pytest.raises(ValueError, match="kind"):
        BoxIoULoss("l1")


def test_borderness_bce_over_positives():
    targets = np.array([[0.5, -1.0, 1.0], [0.2, -1.0, -1.0]], np.float32)
    logits = np.array([[[0.3], [5.0], [-1.0]], [[2.0], [0.0], [1.0]]], np.float32)
    bce = []
    for t, x in ((0.5, 0.3), (1.0, -1.0), (0.2, 2.0)):
        p = sigmoid(x)
        bce.append(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    loss = BordernessLoss()(targets[..., None], logits)
    assert float(loss) == pytest.approx(np.mean(bce), rel=1e-5)


def test_loss_weights_presets_and_overrides():
    _, coco = lpsnet_losses("coco")
    _, cityscapes = lpsnet_losses("cityscapes")
    assert coco["semantic"] == 0.7 and cityscapes["semantic"] == 1.0
    assert coco["class_logits"] == coco["boxes"] == coco["borderness"] == 1.0
    losses, weights = lpsnet_losses("coco", loss_weights={"boxes": 2.0}, box_loss="iou")
    assert weights["boxes"] == 2.0 and losses["boxes"].kind == "iou"
    assert set(losses) == {"semantic", "class_logits", "boxes", "borderness"}
    with pytest.raises(ValueError, match="preset"):
        lpsnet_losses("voc")
    with pytest.raises(ValueError, match="loss_weights"):
        lpsnet_losses(loss_weights={"mask": 1.0})


def test_semantic_term_ignores_void():
    losses, _ = lpsnet_losses()
    logits = np.random.default_rng(1).normal(size=(1, 2, 2, 3)).astype(np.float32)
    labels = np.array([[[0, 255], [2, 255]]])
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    log_p = np.log(shifted / shifted.sum(-1, keepdims=True))
    expected = -(log_p[0, 0, 0, 0] + log_p[0, 1, 0, 2]) / 2
    assert float(losses["semantic"](labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_sgd_recipe_and_compile():
    import keras

    schedule = lpsnet_schedule(total_steps=900)
    optimizer = lpsnet_optimizer(total_steps=900)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(700)) == pytest.approx(0.001)
    assert float(schedule(850)) == pytest.approx(0.0001)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert optimizer.momentum == 0.9 and optimizer.weight_decay == pytest.approx(1e-4)

    inputs = keras.Input((4, 4, 3))
    outputs = {
        "semantic": keras.layers.Conv2D(3, 1, name="logits")(inputs),
        "class_logits": keras.layers.Reshape((-1, 2))(keras.layers.Conv2D(2, 1)(inputs)),
        "boxes": keras.layers.Reshape((-1, 4))(keras.layers.Conv2D(4, 1)(inputs)),
        "borderness": keras.layers.Reshape((-1, 1))(keras.layers.Conv2D(1, 1)(inputs)),
    }
    model = compile_lpsnet(keras.Model(inputs, outputs), total_steps=10, preset="cityscapes")
    assert isinstance(model.optimizer, keras.optimizers.SGD)
