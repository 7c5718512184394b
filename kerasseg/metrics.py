"""Streaming confusion-matrix metrics for semantic segmentation.

The FCN paper's four scores (Long et al., 2015), with `n_ij` the number of
pixels of class i predicted as class j and `t_i = sum_j n_ij`:

- pixel accuracy `sum_i n_ii / sum_i t_i`
- mean accuracy `mean_i n_ii / t_i`, over classes present in the ground truth
- mean IoU `mean_i n_ii / (t_i + sum_j n_ji - n_ii)`, over classes present in
  the ground truth or the prediction: a class absent from both is left out,
  never counted as IoU 1.0
- frequency-weighted IoU `sum_i t_i * IoU_i / sum_i t_i`

Pixels labelled `ignore_label` are not counted. A target or predicted label
outside `[0, num_classes)` (other than the ignore label) raises
`InvalidArgumentError` naming the metric and the range found. A mean over no
class is 0.0; the IoU or accuracy of an absent class is NaN.

The Keras metrics accept logits or probabilities `(B, H, W, C)` (argmax is
taken; logits at another resolution are resized to the target's first) or
integer label maps `(B, H, W)`.

Example:
    >>> model.compile("adam", loss=kerasseg.losses.PixelCrossEntropy(),
    ...               metrics=[kerasseg.metrics.MeanIoU(num_classes=21)])
"""

import keras
import numpy as np
import tensorflow as tf

from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.losses import check_labels
from kerasseg.utils import check_positive_int

# === numpy, for evaluation reports ===


def confusion_matrix(y_true, y_pred, num_classes, ignore_label=IGNORE_LABEL, name="labels"):
    """Confusion matrix of integer label maps, rows = ground truth, columns = prediction.

    Args:
        y_true: Integer array of ground-truth labels, any shape.
        y_pred: Integer array of predicted labels, the same shape.
        num_classes: Number of classes.
        ignore_label: Ground-truth value left out of the count.
        name: What the labels are (a file name, say), used in error messages.

    Returns:
        An int64 array (num_classes, num_classes).

    Example:
        >>> confusion_matrix(np.array([0, 1, 255]), np.array([0, 0, 1]), 2)
        array([[1, 0],
               [1, 0]])
    """
    check_positive_int("num_classes", num_classes)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: ground truth and prediction shapes differ: {y_true.shape} vs "
            f"{y_pred.shape}."
        )
    keep = y_true != ignore_label
    y_true, y_pred = y_true[keep].astype(np.int64), y_pred[keep].astype(np.int64)
    for what, values in (("ground-truth", y_true), ("predicted", y_pred)):
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(
                f"{name}: {what} label values must be in [0, {num_classes}) or the ignore "
                f"label {ignore_label}; found {sorted(np.unique(values[bad]).tolist())[:8]}."
            )
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(confusion, class_names=None):
    """The FCN paper's scores and per-class IoU/accuracy of a confusion matrix.

    Args:
        confusion: Array (C, C), rows = ground truth, columns = prediction.
        class_names: Optional C names; keys of the per-class dicts.

    Returns:
        A dict with "pixel_accuracy", "mean_accuracy", "mean_iou",
        "frequency_weighted_iou" (floats), "per_class_iou" and
        "per_class_accuracy" (dicts name -> float, NaN for an absent class).
    """
    confusion = np.asarray(confusion, np.float64)
    num_classes = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] != num_classes:
        raise ValueError(f"`confusion` must be square. Received shape {confusion.shape}.")
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(
            f"`class_names` has {len(names)} names for {num_classes} classes."
        )
    tp = np.diag(confusion)
    truth, predicted = confusion.sum(1), confusion.sum(0)
    union = truth + predicted - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        accuracy = np.where(truth > 0, tp / truth, np.nan)

    def mean(values):
        present = ~np.isnan(values)
        return float(values[present].mean()) if present.any() else 0.0

    total = truth.sum()
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "mean_accuracy": mean(accuracy),
        "mean_iou": mean(iou),
        "frequency_weighted_iou": float((truth * np.nan_to_num(iou)).sum() / total)
        if total else 0.0,
        "per_class_iou": dict(zip(names, iou.tolist(), strict=True)),
        "per_class_accuracy": dict(zip(names, accuracy.tolist(), strict=True)),
    }


def scores_table(scores):
    """A plain-text table of `segmentation_scores` output, for logs and the CLI.

    Args:
        scores: A dict returned by `segmentation_scores`.

    Returns:
        The table as one string.
    """
    lines = [f"{'metric':<24}{'value':>8}"]
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou"):
        lines.append(f"{key:<24}{scores[key]:>8.4f}")
    lines.append(f"{'class':<24}{'IoU':>8}{'acc':>8}")
    for name, iou in scores["per_class_iou"].items():
        accuracy = scores["per_class_accuracy"][name]
        lines.append(f"{name:<24}{iou:>8.4f}{accuracy:>8.4f}")
    return "\n".join(lines)


# === Keras metrics ===


def _labels_and_predictions(y_true, y_pred, num_classes, ignore_label, name):
    labels = tf.convert_to_tensor(y_true)
    if labels.shape.rank == 4:
        labels = tf.squeeze(labels, axis=-1)
    labels = tf.cast(tf.round(labels) if labels.dtype.is_floating else labels, tf.int32)
    predictions = tf.convert_to_tensor(y_pred)
    if predictions.shape.rank == 4 and predictions.shape[-1] == 1:
        predictions = tf.squeeze(predictions, axis=-1)
    if predictions.shape.rank == 4:
        if predictions.shape[-1] != num_classes:
            raise ValueError(
                f"{name}: predictions have {predictions.shape[-1]} classes, expected "
                f"num_classes={num_classes}."
            )
        if predictions.shape[1:3] != labels.shape[1:3] or predictions.shape[1] is None:
            predictions = tf.image.resize(tf.cast(predictions, tf.float32),
                                          tf.shape(labels)[1:3], method="bilinear")
        predictions = tf.argmax(predictions, axis=-1, output_type=tf.int32)
    else:
        if predictions.dtype.is_floating:
            predictions = tf.round(predictions)
        predictions = tf.cast(predictions, tf.int32)
        check_labels(predictions, num_classes, None, f"{name} (predictions)")
    check_labels(labels, num_classes, ignore_label, name)
    return labels, predictions


@keras.saving.register_keras_serializable(package="kerasseg")
class ConfusionMatrix(keras.metrics.Metric):
    """Streaming confusion matrix; `result()` is the (C, C) matrix of pixel counts.

    The base of the score metrics; rows are the ground truth, columns the
    prediction. Counts are kept in float64 so that large datasets stay exact.

    Args:
        num_classes: Number of classes.
        ignore_label: Ground-truth value left out of the count.
        name: Metric name.
        dtype: Dtype of `result()`.
    """

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, name="confusion_matrix", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.ignore_label = int(ignore_label)
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float64",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, predictions = _labels_and_predictions(
            y_true, y_pred, self.num_classes, self.ignore_label, self.name
        )
        valid = (labels >= 0) & (labels < self.num_classes)
        weights = tf.cast(valid, tf.float64)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, tf.float64)
            while sample_weight.shape.rank < weights.shape.rank:
                sample_weight = sample_weight[..., None]
            weights = weights * sample_weight
        batch = tf.math.confusion_matrix(
            tf.reshape(tf.where(valid, labels, 0), [-1]),
            tf.reshape(tf.clip_by_value(predictions, 0, self.num_classes - 1), [-1]),
            num_classes=self.num_classes,
            weights=tf.reshape(weights, [-1]),
            dtype=tf.float64,
        )
        self.confusion.assign_add(batch)

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def _parts(self):
        confusion = tf.convert_to_tensor(self.confusion)
        tp = tf.linalg.diag_part(confusion)
        truth = tf.reduce_sum(confusion, axis=1)
        predicted = tf.reduce_sum(confusion, axis=0)
        return tp, truth, truth + predicted - tp

    def result(self):
        return tf.cast(self.confusion, self.dtype)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_label": self.ignore_label}


def _mean_where(values, present):
    present = tf.cast(present, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * present), tf.reduce_sum(present))


# The FCN paper's scores, from each class's true positives, ground-truth
# pixels and union (`ConfusionMatrix._parts`).


def _pixel_accuracy(tp, truth, union):
    """Fraction of non-ignored pixels labelled correctly."""
    return tf.math.divide_no_nan(tf.reduce_sum(tp), tf.reduce_sum(truth))


def _mean_accuracy(tp, truth, union):
    """Per-class pixel accuracy averaged over classes present in the ground truth."""
    return _mean_where(tf.math.divide_no_nan(tp, truth), truth > 0)


def _mean_iou(tp, truth, union):
    """IoU averaged over classes present in the ground truth or the prediction."""
    return _mean_where(tf.math.divide_no_nan(tp, union), union > 0)


def _frequency_weighted_iou(tp, truth, union):
    """IoU per class weighted by the class's share of ground-truth pixels."""
    weighted = tf.reduce_sum(truth * tf.math.divide_no_nan(tp, union))
    return tf.math.divide_no_nan(weighted, tf.reduce_sum(truth))


def _score_metric(class_name, default_name, score):
    """A registered `ConfusionMatrix` subclass named `class_name` whose
    `result()` is `score(tp, truth, union)` and whose `name` defaults to
    `default_name`. Its docstring is `score`'s, with `ConfusionMatrix`'s Args."""

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, name=default_name, dtype=None):
        ConfusionMatrix.__init__(self, num_classes, ignore_label, name, dtype)

    def result(self):
        return tf.cast(score(*self._parts()), self.dtype)

    args = ConfusionMatrix.__doc__[ConfusionMatrix.__doc__.index("\n\n    Args:"):]
    namespace = {"__doc__": score.__doc__ + args, "__module__": __name__,
                 "__qualname__": class_name, "__init__": __init__, "result": result}
    metric = type(class_name, (ConfusionMatrix,), namespace)
    return keras.saving.register_keras_serializable(package="kerasseg")(metric)


PixelAccuracy = _score_metric("PixelAccuracy", "pixel_accuracy", _pixel_accuracy)
MeanAccuracy = _score_metric("MeanAccuracy", "mean_accuracy", _mean_accuracy)
MeanIoU = _score_metric("MeanIoU", "mean_iou", _mean_iou)
FrequencyWeightedIoU = _score_metric(
    "FrequencyWeightedIoU", "frequency_weighted_iou", _frequency_weighted_iou
)


@keras.saving.register_keras_serializable(package="kerasseg")
class PerClassIoU(ConfusionMatrix):
    """IoU of one class (`class_id`), or of every class as a (C,) vector.

    The IoU of a class absent from both ground truth and prediction is NaN. In
    `compile`, give one metric per class with `class_id` set (Keras logs
    scalars); `per_class_iou_metrics` builds that list.

    Args:
        num_classes: Number of classes.
        class_id: The class to report, or None for all.
        ignore_label: Ground-truth value left out of the count.
        name: Metric name.
        dtype: Dtype of `result()`.
    """

    def __init__(self, num_classes, class_id=None, ignore_label=IGNORE_LABEL, name="per_class_iou",
                 dtype=None):
        super().__init__(num_classes, ignore_label, name, dtype)
        if class_id is not None and not 0 <= class_id < num_classes:
            raise ValueError(
                f"`class_id` must be in [0, {num_classes}) or None. Received: {class_id=}"
            )
        self.class_id = class_id

    def result(self):
        tp, _, union = self._parts()
        iou = tf.where(union > 0, tf.math.divide_no_nan(tp, union), np.nan)
        if self.class_id is not None:
            iou = iou[self.class_id]
        return tf.cast(iou, self.dtype)

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}


def per_class_iou_metrics(num_classes, class_names=None, ignore_label=IGNORE_LABEL):
    """One `PerClassIoU` per class, named "iou_<class name>", for `compile`.

    Args:
        num_classes: Number of classes.
        class_names: Optional names used in the metric names (default: class ids).
        ignore_label: Ground-truth value left out of the count.

    Returns:
        A list of `num_classes` metrics.
    """
    names = class_names if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"`class_names` has {len(names)} names for {num_classes} classes.")
    return [
        PerClassIoU(num_classes, class_id=c, ignore_label=ignore_label, name=f"iou_{name}")
        for c, name in enumerate(names)
    ]


def segmentation_metrics(num_classes, ignore_label=IGNORE_LABEL):
    """The FCN paper's four metrics, ready for `compile(metrics=...)`.

    Args:
        num_classes: Number of classes.
        ignore_label: Ground-truth value left out of the count.

    Returns:
        [PixelAccuracy, MeanAccuracy, MeanIoU, FrequencyWeightedIoU] instances.
    """
    return [
        cls(num_classes, ignore_label=ignore_label)
        for cls in (PixelAccuracy, MeanAccuracy, MeanIoU, FrequencyWeightedIoU)
    ]


def majority_baseline(confusion):
    """The confusion matrix of always predicting the most frequent true class.

    A trivial baseline: a model whose scores do not beat this matrix's has
    learned nothing about the data.

    Args:
        confusion: (C, C) confusion matrix, rows ground truth.

    Returns:
        int64 (C, C): every row's pixels in the majority class's column.
    """
    confusion = np.asarray(confusion, np.int64)
    baseline = np.zeros_like(confusion)
    baseline[:, int(np.argmax(confusion.sum(axis=1)))] = confusion.sum(axis=1)
    return baseline
