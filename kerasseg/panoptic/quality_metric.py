"""`PanopticQuality`, the Keras metric of `kerasseg.panoptic.quality`.

In a module of its own so that `kerasseg.panoptic.quality` (numpy) imports
without TensorFlow; `kerasseg.panoptic` resolves this name on first use.
"""

import keras
import tensorflow as tf

from kerasseg.panoptic.quality import (
    _RESULT_KEYS,
    _batch_statistics,
    _check_metric_arguments,
    _result_values,
)
from kerasseg.panoptic.targets import LABEL_DIVISOR


@keras.saving.register_keras_serializable(package="kerasseg")
class PanopticQuality(keras.metrics.Metric):
    """Panoptic quality over a dataset (Kirillov et al., CVPR 2019).

    Accumulates per-category TP, FP, FN and IoU sums of batches of
    panoptic id maps (see `kerasseg.panoptic.quality`); `result()` returns
    a dict with "pq", "sq", "rq" and their "_things" and "_stuff" versions.
    The matching runs in numpy through `tf.numpy_function`, so the metric
    works in graph mode but not under XLA (`jit_compile=False`).

    Args:
        num_classes: number of categories.
        thing_classes: category ids that are things; the rest are stuff.
        label_divisor: panoptic id = category * label_divisor + instance.

    Example:
        >>> metric = PanopticQuality(num_classes=7, thing_classes=(4, 5, 6))
        >>> metric.update_state(gt_panoptic, predicted_panoptic)
        >>> metric.result()["pq"]
    """

    def __init__(self, num_classes, thing_classes, label_divisor=LABEL_DIVISOR,
                 name="panoptic_quality", **kwargs):
        super().__init__(name=name, **kwargs)
        self.thing_classes = _check_metric_arguments(num_classes, thing_classes)
        self.num_classes = num_classes
        self.label_divisor = label_divisor
        self.supports_jit = False
        self.statistics = self.add_variable(
            shape=(num_classes, 4), initializer="zeros", dtype="float64", name="statistics"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.convert_to_tensor(y_true)
        y_pred = tf.convert_to_tensor(y_pred)
        if y_true.shape.rank == 2:
            y_true, y_pred = y_true[None], y_pred[None]
        stats = tf.numpy_function(
            lambda g, p: _batch_statistics(g, p, self.num_classes, self.thing_classes,
                                           self.label_divisor),
            [y_true, y_pred], tf.float64,
        )
        self.statistics.assign_add(tf.reshape(stats, (self.num_classes, 4)))

    def result(self):
        values = tf.numpy_function(
            lambda stats: _result_values(stats, self.thing_classes), [self.statistics],
            tf.float64,
        )
        values = tf.reshape(values, (len(_RESULT_KEYS),))
        return {key: values[i] for i, key in enumerate(_RESULT_KEYS)}

    def reset_state(self):
        self.statistics.assign(tf.zeros_like(self.statistics))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "thing_classes": self.thing_classes,
            "label_divisor": self.label_divisor,
        }
