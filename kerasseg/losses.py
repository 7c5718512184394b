"""Segmentation losses with an ignore label.

Every loss takes sparse integer targets `(B, H, W)` (or `(B, H, W, 1)`) and
logits `(B, H, W, C)`; logits at another resolution are resized bilinearly to
the target's. A one-channel output is a foreground probability (a model
ending in a sigmoid) and is scored as two classes (see `prepare_targets`).
Pixels labelled `ignore_label` contribute nothing. A target
value outside `[0, C)` that is not the ignore label raises
`InvalidArgumentError` naming the loss and the range found (under XLA the
check cannot run; such pixels are then ignored rather than turned into NaN).

Pixel losses reduce to a weighted mean over the valid pixels of the whole
batch, `sum(w * l) / sum(w)`, where `w` is the class weight of the pixel's
target (times its boundary weight for `BoundaryCrossEntropy`). `call` returns
one value per image scaled so that Keras' default "sum_over_batch_size"
reduction gives exactly that batch mean.

Example:
    >>> model.compile("adam", loss=kerasseg.losses.PixelCrossEntropy(
    ...     class_weights=[0.5, 1.0, 2.0]))
"""

import keras
import tensorflow as tf

from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.utils import check_choice, check_number, check_positive_int, check_type

# Probabilities are clipped to [eps, 1 - eps] before their logarithm, as Keras does.
_EPSILON = 1e-7


def prepare_targets(y_true, y_pred, ignore_label, name):
    """Return (labels int32 (B,H,W), logits float32 (B,H,W,C), valid bool (B,H,W)).

    Labels outside `[0, C)` other than `ignore_label` fail an assertion that
    names `name`; they are also marked invalid so that, where assertions cannot
    run, they are ignored instead of corrupting the loss.

    A one-channel prediction is a foreground probability p (a model ending in
    a sigmoid, as the portrait presets): it is scored as two classes,
    background and foreground, with logits log(1 - p) and log(p), so every
    loss here (and its class weights) serves binary masks of 0, 1 and the
    ignore label.

    Args:
        y_true: Integer or float labels (B, H, W) or (B, H, W, 1).
        y_pred: Logits (B, h, w, C), or one-channel probabilities; resized to
            the labels' size if needed.
        ignore_label: Label value to ignore.
        name: Name used in error messages.

    Returns:
        (labels with invalid pixels set to 0, logits, valid mask).
    """
    logits = tf.cast(y_pred, tf.float32)
    if logits.shape[-1] == 1:
        foreground = tf.clip_by_value(_checked_probability(logits, name), _EPSILON, 1.0 - _EPSILON)
        logits = tf.math.log(tf.concat([1.0 - foreground, foreground], axis=-1))
    labels = tf.convert_to_tensor(y_true)
    if labels.shape.rank == 4:
        labels = tf.squeeze(labels, axis=-1)
    labels = tf.cast(tf.round(labels) if labels.dtype.is_floating else labels, tf.int32)
    num_classes = logits.shape[-1]
    if num_classes is None:
        raise ValueError(f"{name}: the class axis of the logits must be known.")
    if (
        logits.shape[1] is None
        or labels.shape[1] is None
        or logits.shape[1:3] != labels.shape[1:3]
    ):
        logits = tf.image.resize(logits, tf.shape(labels)[1:3], method="bilinear")
    check_labels(labels, num_classes, ignore_label, name)
    valid = (labels >= 0) & (labels < num_classes)
    return tf.where(valid, labels, 0), logits, valid


def _checked_probability(y_pred, name):
    """`y_pred`, asserted to hold probabilities: a one-channel model must end
    in a sigmoid, or the loss would clip its logits and learn nothing useful."""
    inside = tf.reduce_all((y_pred >= 0.0) & (y_pred <= 1.0))
    assertion = tf.debugging.Assert(inside, [
        f"{name}: a one-channel prediction must be a foreground probability in [0, 1] (a "
        "model ending in a sigmoid activation), not logits; it holds values from/to:",
        tf.reduce_min(y_pred), tf.reduce_max(y_pred)])
    with tf.control_dependencies([assertion]):
        return tf.identity(y_pred)


def check_labels(labels, num_classes, ignore_label, name):
    """Assert every label is in [0, num_classes) or equals ignore_label.

    Args:
        labels: Integer tensor.
        num_classes: Number of classes.
        ignore_label: The one other allowed value, or None.
        name: Name used in the error message.
    """
    labels = tf.cast(labels, tf.int32)
    valid = (labels >= 0) & (labels < num_classes)
    others = labels
    expected = f"[0, {num_classes})"
    if ignore_label is not None:
        valid = valid | (labels == ignore_label)
        others = tf.where(labels == ignore_label, 0, labels)
        expected += f" or the ignore label {ignore_label}"
    tf.debugging.Assert(
        tf.reduce_all(valid),
        [
            f"{name}: label values must be in {expected}. Found labels with min/max "
            "(ignore label excluded):",
            tf.reduce_min(others),
            tf.reduce_max(others),
        ],
        summarize=8,
    )


def _class_weight_tensor(class_weights, num_classes, name):
    if class_weights is None:
        return tf.ones([num_classes], tf.float32)
    if len(class_weights) != num_classes:
        raise ValueError(
            f"{name}: `class_weights` has {len(class_weights)} entries but the logits have "
            f"{num_classes} classes."
        )
    return tf.constant(class_weights, tf.float32)


def _batch_weighted_mean(values, weights):
    """Per-image values whose mean over the batch is sum(w * v) / sum(w)."""
    batch = tf.cast(tf.shape(values)[0], tf.float32)
    total = tf.reduce_sum(weights)
    per_image = tf.reduce_sum(values * weights, axis=[1, 2])
    return tf.math.divide_no_nan(per_image * batch, total)


def _check_class_weights(class_weights):
    if class_weights is None:
        return None
    try:
        return [float(check_number("class_weights", w, 0)) for w in class_weights]
    except (TypeError, ValueError):
        raise ValueError("`class_weights` must be a list of non-negative numbers, one per "
                         f"class. Received: class_weights={class_weights!r}") from None


class _SegmentationLoss(keras.losses.Loss):
    """Shared arguments: the ignore label and optional per-class weights."""

    def __init__(self, ignore_label=IGNORE_LABEL, class_weights=None, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ignore_label = int(ignore_label)
        self.class_weights = _check_class_weights(class_weights)

    def _prepare(self, y_true, y_pred):
        labels, logits, valid = prepare_targets(y_true, y_pred, self.ignore_label, self.name)
        class_weights = _class_weight_tensor(self.class_weights, logits.shape[-1], self.name)
        weights = tf.gather(class_weights, labels) * tf.cast(valid, tf.float32)
        return labels, logits, valid, weights

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label,
                "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="kerasseg")
class PixelCrossEntropy(_SegmentationLoss):
    """Softmax cross-entropy per pixel with an ignore label and class weights.

    Keras' `class_weight` argument to `fit` does not work for 3-D targets;
    `class_weights` here does.

    Args:
        ignore_label: Target value that contributes nothing.
        class_weights: Optional list of C non-negative weights.
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.
    """

    def __init__(self, ignore_label=IGNORE_LABEL, class_weights=None, name="pixel_cross_entropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(ignore_label, class_weights, name, reduction, dtype)

    def call(self, y_true, y_pred):
        labels, logits, _, weights = self._prepare(y_true, y_pred)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return _batch_weighted_mean(losses, weights)


def boundary_mask(labels, width):
    """Pixels within `width` pixels (Chebyshev distance) of a change of label.

    Args:
        labels: Integer labels (B, H, W).
        width: Neighbourhood half-size in pixels.

    Returns:
        bool (B, H, W).
    """
    labels = tf.cast(labels, tf.float32)[..., None]
    size = 2 * width + 1
    upper = tf.nn.max_pool2d(labels, size, 1, "SAME")
    lower = -tf.nn.max_pool2d(-labels, size, 1, "SAME")
    return tf.squeeze(upper != lower, axis=-1)


@keras.saving.register_keras_serializable(package="kerasseg")
class BoundaryCrossEntropy(_SegmentationLoss):
    """Cross-entropy with extra weight on pixels near a label boundary.

    A pixel is a boundary pixel when a pixel of another label (ignore label
    included, since void usually outlines objects) lies within `boundary_width`
    pixels; its weight is multiplied by `1 + boundary_weight`.

    Args:
        boundary_weight: Extra weight of boundary pixels.
        boundary_width: Half-size of the neighbourhood, in pixels.
        ignore_label: Target value that contributes nothing.
        class_weights: Optional list of C non-negative weights.
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.
    """

    def __init__(self, boundary_weight=4.0, boundary_width=2, ignore_label=IGNORE_LABEL,
                 class_weights=None, name="boundary_cross_entropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(ignore_label, class_weights, name, reduction, dtype)
        self.boundary_weight = float(check_number("boundary_weight", boundary_weight, 0))
        self.boundary_width = int(check_positive_int("boundary_width", boundary_width))

    def call(self, y_true, y_pred):
        labels, logits, valid, weights = self._prepare(y_true, y_pred)
        raw = tf.where(valid, labels, self.ignore_label)
        boundary = tf.cast(boundary_mask(raw, self.boundary_width), tf.float32)
        weights = weights * (1.0 + self.boundary_weight * boundary)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return _batch_weighted_mean(losses, weights)

    def get_config(self):
        return {**super().get_config(), "boundary_weight": self.boundary_weight,
                "boundary_width": self.boundary_width}


@keras.saving.register_keras_serializable(package="kerasseg")
class FocalLoss(_SegmentationLoss):
    """Softmax focal loss, `-(1 - p_t)^gamma * log(p_t)` (Lin et al., 2017).

    Args:
        gamma: Focusing parameter; 0 gives cross-entropy.
        ignore_label: Target value that contributes nothing.
        class_weights: Optional list of C non-negative weights (the alpha terms).
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.
    """

    def __init__(self, gamma=2.0, ignore_label=IGNORE_LABEL, class_weights=None, name="focal_loss",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(ignore_label, class_weights, name, reduction, dtype)
        self.gamma = float(check_number("gamma", gamma, 0))

    def call(self, y_true, y_pred):
        labels, logits, _, weights = self._prepare(y_true, y_pred)
        log_pt = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        losses = -tf.pow(1.0 - tf.exp(log_pt), self.gamma) * log_pt
        return _batch_weighted_mean(losses, weights)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="kerasseg")
class OHEMCrossEntropy(_SegmentationLoss):
    """Cross-entropy over the hardest pixels only (online hard example mining).

    Keeps the valid pixels whose softmax probability of the true class is at
    most `threshold`, and at least the `min_kept` hardest pixels of the batch
    (lowest true-class probability) when fewer are under the threshold.
    `threshold=None` keeps exactly the `min_kept` hardest pixels (top-k).

    Args:
        threshold: Probability under which a pixel is hard, or None for top-k.
        min_kept: Minimum number of pixels kept per batch.
        ignore_label: Target value that contributes nothing.
        class_weights: Optional list of C non-negative weights.
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.
    """

    def __init__(self, threshold=0.7, min_kept=256, ignore_label=IGNORE_LABEL, class_weights=None,
                 name="ohem_cross_entropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(ignore_label, class_weights, name, reduction, dtype)
        if threshold is not None:
            threshold = float(check_number("threshold", threshold, 0, 1, low_open=True))
        self.threshold = threshold
        self.min_kept = int(check_positive_int("min_kept", min_kept))

    def call(self, y_true, y_pred):
        labels, logits, valid, weights = self._prepare(y_true, y_pred)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        probs = tf.where(valid, tf.exp(-losses), 2.0)  # invalid pixels sort last
        flat = tf.sort(tf.reshape(probs, [-1]))
        num_valid = tf.reduce_sum(tf.cast(valid, tf.int32))
        kth = flat[tf.maximum(tf.minimum(self.min_kept, num_valid) - 1, 0)]
        cutoff = kth if self.threshold is None else tf.maximum(kth, self.threshold)
        hard = tf.cast(valid & (probs <= cutoff), tf.float32)
        return _batch_weighted_mean(losses, weights * hard)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "min_kept": self.min_kept}


@keras.saving.register_keras_serializable(package="kerasseg")
class SoftDiceLoss(_SegmentationLoss):
    """Soft Dice loss on softmax probabilities, `1 - mean_c dice_c`.

    `dice_c = (2 * sum(p_c * g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)`
    over the valid pixels, where `g_c` is the one-hot target. The class mean is
    weighted by `class_weights` when given.

    Args:
        smooth: Additive smoothing of numerator and denominator.
        per_image: If True, Dice is computed per image (one value per image);
            otherwise over the whole batch (one value).
        ignore_label: Target value that contributes nothing.
        class_weights: Optional list of C non-negative weights of the class mean.
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.
    """

    def __init__(self, smooth=1.0, per_image=False, ignore_label=IGNORE_LABEL, class_weights=None,
                 name="soft_dice_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(ignore_label, class_weights, name, reduction, dtype)
        self.smooth = float(check_number("smooth", smooth, 0))
        self.per_image = check_type("per_image", per_image, bool)

    def call(self, y_true, y_pred):
        labels, logits, valid, _ = self._prepare(y_true, y_pred)
        num_classes = logits.shape[-1]
        mask = tf.cast(valid, tf.float32)[..., None]
        probs = tf.nn.softmax(logits) * mask
        onehot = tf.one_hot(labels, num_classes) * mask
        axes = [1, 2] if self.per_image else [0, 1, 2]
        intersection = tf.reduce_sum(probs * onehot, axis=axes)
        total = tf.reduce_sum(probs, axis=axes) + tf.reduce_sum(onehot, axis=axes)
        dice = tf.math.divide_no_nan(2.0 * intersection + self.smooth, total + self.smooth)
        class_weights = _class_weight_tensor(self.class_weights, num_classes, self.name)
        mean = tf.reduce_sum(dice * class_weights, axis=-1) / tf.reduce_sum(class_weights)
        return 1.0 - mean

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "per_image": self.per_image}


def _lovasz_softmax(probs, labels, valid, present_only):
    """Lovász-softmax over the last axis of (G, N, C) probs; returns (G,) losses."""
    num_classes = probs.shape[-1]
    valid = tf.cast(valid, tf.float32)[:, None, :]
    foreground = tf.one_hot(labels, num_classes, axis=1) * valid  # (G, C, N)
    valid = valid * tf.ones_like(foreground)
    errors = tf.abs(foreground - tf.transpose(probs, [0, 2, 1]))
    errors = tf.where(valid > 0, errors, -1.0)  # ignored pixels sort last
    order = tf.argsort(errors, axis=-1, direction="DESCENDING", stable=True)
    errors = tf.gather(errors, order, batch_dims=2)
    foreground = tf.gather(foreground, order, batch_dims=2)
    valid = tf.gather(valid, order, batch_dims=2)
    # Gradient of the Lovász extension of the Jaccard loss (Berman et al., 2018).
    gts = tf.reduce_sum(foreground, axis=-1, keepdims=True)
    intersection = gts - tf.cumsum(foreground, axis=-1)
    union = gts + tf.cumsum((1.0 - foreground) * valid, axis=-1)
    jaccard = 1.0 - tf.math.divide_no_nan(intersection, union)
    grad = tf.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)
    per_class = tf.reduce_sum(errors * valid * grad, axis=-1)  # (G, C)
    if present_only:
        present = tf.cast(gts[..., 0] > 0, tf.float32)
    else:
        present = tf.ones_like(per_class)
    return tf.math.divide_no_nan(
        tf.reduce_sum(per_class * present, axis=-1), tf.reduce_sum(present, axis=-1)
    )


@keras.saving.register_keras_serializable(package="kerasseg")
class LovaszSoftmaxLoss(_SegmentationLoss):
    """Lovász-softmax loss, a convex surrogate of 1 - IoU (Berman et al., CVPR 2018).

    Args:
        classes: "present" averages over classes present in the target; "all"
            over every class.
        per_image: If True, computed per image (one value per image);
            otherwise over the whole batch (one value).
        ignore_label: Target value that contributes nothing.
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.
    """

    def __init__(self, classes="present", per_image=False, ignore_label=IGNORE_LABEL,
                 name="lovasz_softmax_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(ignore_label, None, name, reduction, dtype)
        self.classes = check_choice("classes", classes, ("present", "all"))
        self.per_image = check_type("per_image", per_image, bool)

    def call(self, y_true, y_pred):
        labels, logits, valid, _ = self._prepare(y_true, y_pred)
        num_classes = logits.shape[-1]
        groups = tf.shape(labels)[0] if self.per_image else 1
        probs = tf.reshape(tf.nn.softmax(logits), [groups, -1, num_classes])
        return _lovasz_softmax(
            probs,
            tf.reshape(labels, [groups, -1]),
            tf.reshape(valid, [groups, -1]),
            self.classes == "present",
        )

    def get_config(self):
        config = super().get_config()
        config.pop("class_weights")
        config.update(classes=self.classes, per_image=self.per_image)
        return config


@keras.saving.register_keras_serializable(package="kerasseg")
class MILLoss(keras.losses.Loss):
    """Multi-class multiple-instance loss for image-level labels (Pathak et al., 2015).

    For each class `l` present in the image, the pixel where its softmax score
    is highest is taken as its instance: the loss is
    `-1/|L| * sum_{l in L} log max_{x,y} p_l(x, y)`. Inter-class competition
    through the softmax narrows down where each class is.

    Targets are either image-level multi-hot labels `(B, C)`, or a dense mask
    `(B, H, W)` from which the present classes are read (ignore label excluded).

    Args:
        ignore_label: Mask value skipped when reading present classes.
        name: Loss name.
        reduction: Keras reduction of the per-image values.
        dtype: Computation dtype.

    Example:
        >>> loss = MILLoss()(tf.constant([[1.0, 0.0, 1.0]]), tf.zeros([1, 8, 8, 3]))
    """

    def __init__(self, ignore_label=IGNORE_LABEL, name="mil_loss", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        num_classes = logits.shape[-1]
        y_true = tf.convert_to_tensor(y_true)
        if y_true.shape.rank == 2:
            present = tf.cast(y_true > 0.5, tf.float32)
        else:
            labels, _, valid = prepare_targets(y_true, logits, self.ignore_label, self.name)
            onehot = tf.one_hot(labels, num_classes) * tf.cast(valid, tf.float32)[..., None]
            present = tf.cast(tf.reduce_max(onehot, axis=[1, 2]) > 0, tf.float32)
        best_log_prob = tf.reduce_max(tf.nn.log_softmax(logits), axis=[1, 2])
        return -tf.math.divide_no_nan(
            tf.reduce_sum(present * best_log_prob, axis=-1), tf.reduce_sum(present, axis=-1)
        )

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}


def auxiliary_head_losses(loss, aux_weight=0.4, output="logits", aux_output="aux_logits"):
    """Keras `compile` arguments for a model with a main and an auxiliary head.

    PSPNet trains its auxiliary head (after stage 4) with weight 0.4; at
    inference only the main output is used.

    Args:
        loss: A loss instance applied to both outputs (its config is copied).
        aux_weight: Weight of the auxiliary loss.
        output: Name of the main output.
        aux_output: Name of the auxiliary output.

    Returns:
        A dict with "loss" and "loss_weights", keyed by output name.

    Example:
        >>> model.compile("sgd", **auxiliary_head_losses(PixelCrossEntropy()))
        >>> model.fit(images, {"logits": masks, "aux_logits": masks})
    """
    if aux_weight < 0:
        raise ValueError(f"`aux_weight` must be >= 0. Received: aux_weight={aux_weight}")
    aux_loss = loss.__class__.from_config(loss.get_config())
    return {
        "loss": {output: loss, aux_output: aux_loss},
        "loss_weights": {output: 1.0, aux_output: float(aux_weight)},
    }


LOSSES = {
    "cross_entropy": PixelCrossEntropy,
    "boundary_cross_entropy": BoundaryCrossEntropy,
    "focal": FocalLoss,
    "ohem": OHEMCrossEntropy,
    "dice": SoftDiceLoss,
    "lovasz": LovaszSoftmaxLoss,
    "mil": MILLoss,
}
