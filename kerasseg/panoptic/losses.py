"""LPSNet's multi-task loss, as Keras losses for `model.fit`.

One loss per model output, combined by `compile(loss_weights=...)`:
L = w_sem L_semantic + w_cls L_focal + w_box L_box + w_border L_borderness.

- "semantic": pixel softmax cross-entropy with an ignore label
  (`kerasseg.losses.PixelCrossEntropy`), mean over valid pixels.
- "class_logits": sigmoid focal loss (Lin et al. 2017) over every cell and
  thing class, summed and divided by the number of positive cells (FCOS).
- "boxes": GIoU loss (or IoU / -log IoU) between predicted and target boxes,
  mean over positive cells.
- "borderness": binary cross-entropy of the border-ness logit against the
  target border-ness, mean over positive cells.

Targets are those of `kerasseg.panoptic.targets.encode_box_targets`. Each
loss normalises by counts over the whole batch: `call` returns per-image
values scaled so that Keras' "sum_over_batch_size" reduction gives the batch
value. Under `tf.distribute` counts are per replica, then Keras averages the
replicas (FCOS all-reduces the positive count instead; the difference is
small with balanced replicas).
"""

import keras
import tensorflow as tf

from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.losses import PixelCrossEntropy
from kerasseg.schedules import StepDecay
from kerasseg.utils import check_choice

BOX_LOSSES = ("giou", "iou", "linear_iou")
# Paper: semantic head weight 0.7 on COCO, 1.0 on Cityscapes; others 1.
LOSS_WEIGHTS = {
    "coco": {"semantic": 0.7, "class_logits": 1.0, "boxes": 1.0, "borderness": 1.0},
    "cityscapes": {"semantic": 1.0, "class_logits": 1.0, "boxes": 1.0, "borderness": 1.0},
}


def _per_image(values, count):
    """Per-image sums of `values` (B, ...) scaled so their batch mean is sum / count."""
    batch = tf.cast(tf.shape(values)[0], tf.float32)
    per_image = tf.reduce_sum(tf.reshape(values, (tf.shape(values)[0], -1)), axis=1)
    return per_image * batch / tf.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="kerasseg")
class DenseFocalLoss(keras.losses.Loss):
    """Sigmoid focal loss of the box head's class logits, / number of positives.

    y_true: (B, N) class codes, 0 background, k + 1 for thing channel k, -1
    ignored; y_pred: (B, N, T) logits. Per cell and class,
    -alpha_t (1 - p_t)^gamma log(p_t).

    Args:
        alpha: weight of the positive term (1 - alpha for negatives).
        gamma: focusing exponent.
        name: loss name.
        reduction: Keras reduction of the per-image values.
        dtype: computation dtype.
    """

    def __init__(self, alpha=0.25, gamma=2.0, name="focal", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        codes = tf.cast(tf.round(tf.reshape(y_true, tf.shape(logits)[:2])), tf.int32)
        num_things = tf.shape(logits)[-1]
        targets = tf.one_hot(codes - 1, num_things)  # codes 0 and -1 give all zeros
        probabilities = tf.sigmoid(logits)
        cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        p_t = targets * probabilities + (1 - targets) * (1 - probabilities)
        alpha_t = targets * self.alpha + (1 - targets) * (1 - self.alpha)
        loss = alpha_t * tf.pow(1.0 - p_t, self.gamma) * cross_entropy
        loss *= tf.cast(codes >= 0, tf.float32)[..., None]
        positives = tf.reduce_sum(tf.cast(codes > 0, tf.float32))
        return _per_image(loss, positives)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


def box_iou_terms(predicted, target):
    """IoU and GIoU of matching (…, 4) boxes (x1, y1, x2, y2)."""
    p_area = (predicted[..., 2] - predicted[..., 0]) * (predicted[..., 3] - predicted[..., 1])
    t_area = (target[..., 2] - target[..., 0]) * (target[..., 3] - target[..., 1])
    width = tf.maximum(tf.minimum(predicted[..., 2], target[..., 2])
                       - tf.maximum(predicted[..., 0], target[..., 0]), 0.0)
    height = tf.maximum(tf.minimum(predicted[..., 3], target[..., 3])
                        - tf.maximum(predicted[..., 1], target[..., 1]), 0.0)
    intersection = width * height
    union = p_area + t_area - intersection
    iou = intersection / tf.maximum(union, 1e-7)
    hull_width = tf.maximum(predicted[..., 2], target[..., 2]) - tf.minimum(
        predicted[..., 0], target[..., 0])
    hull_height = tf.maximum(predicted[..., 3], target[..., 3]) - tf.minimum(
        predicted[..., 1], target[..., 1])
    hull = hull_width * hull_height
    giou = iou - (hull - union) / tf.maximum(hull, 1e-7)
    return iou, giou


@keras.saving.register_keras_serializable(package="kerasseg")
class BoxIoULoss(keras.losses.Loss):
    """IoU-type box loss, mean over positive cells (target box with area > 0).

    y_true: (B, N, 4) target boxes, zeros at negatives; y_pred: (B, N, 4)
    predicted boxes (x1, y1, x2, y2).

    Args:
        kind: "giou" (1 - GIoU), "iou" (-log IoU, UnitBox) or "linear_iou" (1 - IoU).
        name: loss name.
        reduction: Keras reduction of the per-image values.
        dtype: computation dtype.
    """

    def __init__(self, kind="giou", name="box_iou", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.kind = check_choice("kind", kind, BOX_LOSSES)

    def call(self, y_true, y_pred):
        target = tf.cast(y_true, tf.float32)
        predicted = tf.cast(y_pred, tf.float32)
        positive = (target[..., 2] > target[..., 0]) & (target[..., 3] > target[..., 1])
        iou, giou = box_iou_terms(predicted, target)
        if self.kind == "giou":
            loss = 1.0 - giou
        elif self.kind == "linear_iou":
            loss = 1.0 - iou
        else:
            loss = -tf.math.log(tf.maximum(iou, 1e-7))
        weight = tf.cast(positive, tf.float32)
        return _per_image(tf.where(positive, loss, 0.0) * weight, tf.reduce_sum(weight))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="kerasseg")
class BordernessLoss(keras.losses.Loss):
    """Binary cross-entropy of border-ness logits, mean over positive cells.

    y_true: (B, N) or (B, N, 1) border-ness in [0, 1] at positives, -1 at
    negatives; y_pred: (B, N, 1) logits.

    Args:
        name: loss name.
        reduction: Keras reduction of the per-image values.
        dtype: computation dtype.
    """

    def __init__(self, name="borderness", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        logits = tf.reshape(tf.cast(y_pred, tf.float32), tf.shape(y_pred)[:2])
        target = tf.reshape(tf.cast(y_true, tf.float32), tf.shape(logits))
        positive = tf.cast(target >= 0, tf.float32)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.maximum(target, 0.0), logits=logits
        )
        return _per_image(loss * positive, tf.reduce_sum(positive))


def lpsnet_losses(preset="coco", loss_weights=None, focal_alpha=0.25, focal_gamma=2.0,
                  box_loss="giou", ignore_label=IGNORE_LABEL):
    """Losses and loss weights for `compile`, keyed by LPSNet's output names.

    Args:
        preset: "coco" (semantic weight 0.7) or "cityscapes" (1.0), the paper's.
        loss_weights: dict overriding some of the preset's weights.
        focal_alpha: focal-loss alpha.
        focal_gamma: focal-loss gamma.
        box_loss: "giou", "iou" or "linear_iou".
        ignore_label: semantic target value that contributes nothing.

    Returns:
        (losses, loss_weights), two dicts with keys "semantic",
        "class_logits", "boxes", "borderness".

    Example:
        >>> losses, weights = lpsnet_losses("cityscapes")
        >>> model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss=losses,
        ...               loss_weights=weights)
    """
    check_choice("preset", preset, tuple(LOSS_WEIGHTS))
    weights = dict(LOSS_WEIGHTS[preset])
    unknown = set(loss_weights or {}) - set(weights)
    if unknown:
        raise ValueError(
            f"`loss_weights` keys must be among {sorted(weights)}. Received: {sorted(unknown)}"
        )
    weights.update(loss_weights or {})
    losses = {
        "semantic": PixelCrossEntropy(ignore_label=ignore_label, name="semantic_ce"),
        "class_logits": DenseFocalLoss(focal_alpha, focal_gamma),
        "boxes": BoxIoULoss(box_loss),
        "borderness": BordernessLoss(),
    }
    return losses, weights


def lpsnet_schedule(total_steps, learning_rate=0.01, decay_at=(2 / 3, 8 / 9), decay_rate=0.1):
    """The paper's step schedule: `learning_rate`, times `decay_rate` at each
    fraction of `total_steps` in `decay_at` (the paper does not give the
    steps; these are Detectron's 1x schedule)."""
    boundaries = [max(1, int(fraction * total_steps)) for fraction in decay_at]
    return StepDecay(learning_rate, boundaries, decay_rate)


def lpsnet_optimizer(total_steps, learning_rate=0.01, momentum=0.9, weight_decay=1e-4,
                     decay_at=(2 / 3, 8 / 9), decay_rate=0.1):
    """The paper's SGD recipe: momentum 0.9, weight decay 1e-4 and
    `lpsnet_schedule` from 0.01 (the paper's batch is 16).

    Keras' `weight_decay` is applied directly to the weights (decoupled), which
    for SGD differs from an L2 term only through the momentum.
    """
    schedule = lpsnet_schedule(total_steps, learning_rate, decay_at, decay_rate)
    return keras.optimizers.SGD(schedule, momentum=momentum, weight_decay=weight_decay)


def compile_lpsnet(model, optimizer="sgd", total_steps=90000, preset="coco", **loss_options):
    """Compiles an LPSNet model with its multi-task loss.

    Args:
        model: a model from `kerasseg.lpsnet`.
        optimizer: "sgd" for `lpsnet_optimizer(total_steps)`, or a Keras optimizer.
        total_steps: training length, for the "sgd" step schedule.
        preset: loss-weight preset of `lpsnet_losses`.
        **loss_options: other arguments of `lpsnet_losses`.

    Returns:
        The model.
    """
    if optimizer == "sgd":
        optimizer = lpsnet_optimizer(total_steps)
    losses, weights = lpsnet_losses(preset, **loss_options)
    model.compile(optimizer=optimizer, loss=losses, loss_weights=weights)
    return model
