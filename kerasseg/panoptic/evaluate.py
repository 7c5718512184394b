"""Panoptic quality of a model over a dataset: LPSNet's outputs through the
non-parametric panoptic head, scored against panoptic ground truth."""

import numpy as np

from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.panoptic.targets import LABEL_DIVISOR, compose_panoptic


def evaluate_panoptic(model, dataset, num_classes, thing_classes, label_divisor=LABEL_DIVISOR,
                      class_names=None, **merge_options):
    """PQ, SQ, RQ and semantic scores of an LPSNet model over a dataset.

    Each image goes through the model, then the numpy panoptic head
    (`panoptic_merge`, with `merge_options`), and is scored against its
    panoptic ground truth (`kerasseg.panoptic.quality`); the argmax of the
    semantic output is scored against the ground truth's categories (void
    left out) as `kerasseg.metrics.segmentation_scores`.

    Args:
        model: a model from `kerasseg.lpsnet`.
        dataset: unbatched (image (H, W, 3), panoptic id map (H, W)) pairs, or
            (image, {"semantic", "instances"}) as the synthetic dataset yields.
        num_classes: number of categories.
        thing_classes: thing category ids, in the class head's order.
        label_divisor: panoptic id divisor.
        class_names: names of the categories, for the semantic per-class scores.
        **merge_options: overrides of `kerasseg.panoptic.MERGE_DEFAULTS`.

    Returns:
        The dict of `kerasseg.panoptic.quality.summarize`, plus "semantic":
        the dict of `kerasseg.metrics.segmentation_scores` with "confusion".
    """
    from kerasseg import metrics
    from kerasseg.panoptic.merge import panoptic_merge
    from kerasseg.panoptic.quality import panoptic_statistics, summarize

    stats = np.zeros((num_classes, 4))
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for image, truth in dataset.as_numpy_iterator():
        if isinstance(truth, dict):
            truth = compose_panoptic(truth["semantic"], truth["instances"], thing_classes,
                                     label_divisor)
        outputs = {k: np.asarray(v)[0] for k, v in model(image[None], training=False).items()}
        prediction = panoptic_merge(outputs["semantic"], outputs["class_logits"],
                                    outputs["boxes"], outputs["borderness"], thing_classes,
                                    label_divisor, **merge_options)
        stats += panoptic_statistics(truth, prediction, num_classes, thing_classes,
                                     label_divisor)
        categories = np.where(truth < 0, IGNORE_LABEL, truth // label_divisor)
        confusion += metrics.confusion_matrix(categories, outputs["semantic"].argmax(-1),
                                              num_classes, IGNORE_LABEL)
    semantic = {**metrics.segmentation_scores(confusion, class_names), "confusion": confusion}
    return {**summarize(stats, thing_classes), "semantic": semantic}
