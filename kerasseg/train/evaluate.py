"""Scores of a semantic model over a dataset (confusion matrix and metrics), for
a Keras model or an exported file run by `kerasseg.runtime.Segmenter`."""

import numpy as np

from kerasseg import inference, metrics
from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.runtime import Segmenter


def probabilities(model, images, options):
    """Class probabilities of `images` by a Keras model or a `Segmenter`, through
    the one inference path (`kerasseg.runtime.inference`) with `options`."""
    if isinstance(model, Segmenter):
        return model.predict_proba(np.asarray(images), **options)
    return inference.predict(model, np.asarray(images), **options)


def evaluate(model, dataset, num_classes, ignore_label=IGNORE_LABEL, class_names=None,
             **inference_options):
    """Confusion matrix and scores of `model` on `dataset` of (image, mask).

    Args:
        model: A Keras segmentation model returning logits, or a
            `kerasseg.runtime.Segmenter` running an exported file.
        dataset: `tf.data.Dataset` (batched or not) or iterable of (image, mask).
        num_classes: Number of classes.
        ignore_label: Mask value left out of the scores.
        class_names: Names for the per-class scores.
        **inference_options: tile_size, overlap, weighting, scales, flip (see
            `kerasseg.runtime.inference.predict`).

    Returns:
        The dict of `kerasseg.metrics.segmentation_scores` plus "confusion"
        (int64 (C, C), rows ground truth).
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for images, masks in dataset:
        labels = probabilities(model, images, inference_options).argmax(-1)
        confusion += metrics.confusion_matrix(masks, labels, num_classes, ignore_label)
    return {**metrics.segmentation_scores(confusion, class_names), "confusion": confusion}
