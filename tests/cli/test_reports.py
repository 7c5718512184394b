"""What evaluate reports: the majority-class verdict."""

import numpy as np

from kerasseg.cli.reports import baseline_verdict
from kerasseg.metrics import majority_baseline, segmentation_scores


def _scores(confusion):
    return {**segmentation_scores(confusion), "confusion": np.asarray(confusion)}


def test_majority_baseline_predicts_the_most_frequent_class_everywhere():
    confusion = np.array([[50, 10, 0], [5, 20, 5], [0, 0, 10]])
    np.testing.assert_array_equal(majority_baseline(confusion),
                                  [[60, 0, 0], [30, 0, 0], [10, 0, 0]])


def test_a_model_no_better_than_the_majority_class_is_called_out():
    # Some of the majority class's pixels taken for another class, nothing else learned.
    confused = np.array([[50, 10, 0], [30, 0, 0], [10, 0, 0]])
    verdict = baseline_verdict(_scores(confused))
    assert verdict.startswith("Warning: this model does no better than predicting the "
                              "majority class")
    assert "pixel_accuracy 0.5000 vs 0.6000" in verdict and "mean_iou 0.1667 vs 0.2000" in verdict
    good = np.array([[55, 5, 0], [3, 25, 2], [0, 1, 9]])
    assert baseline_verdict(_scores(good)) is None
