"""Metrics against an independent per-class numpy computation on random cases."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg import metrics

C = 5
IGNORE = 255


def _reference(truth, predicted):
    """Scores computed per class from the label maps, without a confusion matrix."""
    keep = truth != IGNORE
    truth, predicted = truth[keep], predicted[keep]
    ious, accuracies, fw = [], [], 0.0
    per_class_iou = []
    for c in range(C):
        in_truth, in_prediction = truth == c, predicted == c
        union = np.sum(in_truth | in_prediction)
        if union == 0:  # absent from both: excluded, never 1.0
            per_class_iou.append(np.nan)
            continue
        iou = np.sum(in_truth & in_prediction) / union
        per_class_iou.append(iou)
        ious.append(iou)
        if in_truth.any():
            accuracies.append(np.sum(in_truth & in_prediction) / np.sum(in_truth))
            fw += np.sum(in_truth) * iou
    return {
        "pixel_accuracy": np.mean(truth == predicted),
        "mean_accuracy": np.mean(accuracies),
        "mean_iou": np.mean(ious),
        "frequency_weighted_iou": fw / truth.size,
        "per_class_iou": np.array(per_class_iou),
    }


def _case(seed, batch=3, size=10):
    """Random labels with ignore pixels, one class absent from both, one only predicted."""
    rng = np.random.default_rng(seed)
    truth = rng.choice([0, 1, 2, 4], size=(batch, size, size), p=[0.5, 0.3, 0.15, 0.05])
    predicted = np.where(rng.random(truth.shape) < 0.7, truth, rng.choice([0, 1, 2, 4],
                                                                         truth.shape))
    predicted[0, 0, :3] = 4 if seed % 2 else 2
    truth[rng.random(truth.shape) < 0.15] = IGNORE
    # Class 3 is absent from both; class 4 absent from the truth in some seeds.
    if seed % 3 == 0:
        truth[truth == 4] = 0
    return truth.astype(np.int32), predicted.astype(np.int32)


KERAS_METRICS = {
    "pixel_accuracy": metrics.PixelAccuracy,
    "mean_accuracy": metrics.MeanAccuracy,
    "mean_iou": metrics.MeanIoU,
    "frequency_weighted_iou": metrics.FrequencyWeightedIoU,
}


@pytest.mark.parametrize("seed", range(6))
def test_numpy_scores_match_reference(seed):
    truth, predicted = _case(seed)
    expected = _reference(truth, predicted)
    confusion = metrics.confusion_matrix(truth, predicted, C)
    assert confusion.sum() == np.sum(truth != IGNORE)
    scores = metrics.segmentation_scores(confusion)
    for key in KERAS_METRICS:
        np.testing.assert_allclose(scores[key], expected[key], rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(list(scores["per_class_iou"].values()), expected["per_class_iou"])
    assert np.isnan(scores["per_class_iou"]["3"])


@pytest.mark.parametrize("seed", range(6))
def test_keras_metrics_stream_over_batches(seed):
    truth, predicted = _case(seed)
    expected = _reference(truth, predicted)
    for key, cls in KERAS_METRICS.items():
        metric = cls(C)
        for i in range(truth.shape[0]):  # one image at a time: streaming
            metric.update_state(truth[i:i + 1], predicted[i:i + 1])
        np.testing.assert_allclose(float(metric.result()), expected[key], rtol=1e-6,
                                   err_msg=key)
    per_class = metrics.PerClassIoU(C)
    per_class.update_state(truth, predicted)
    np.testing.assert_allclose(per_class.result().numpy(), expected["per_class_iou"], rtol=1e-6)
    single = metrics.PerClassIoU(C, class_id=1)
    single.update_state(truth, predicted)
    np.testing.assert_allclose(float(single.result()), expected["per_class_iou"][1], rtol=1e-6)


def test_absent_class_is_not_scored_as_one():
    truth = np.zeros((1, 4, 4), np.int32)
    truth[0, :2] = 1
    predicted = truth.copy()
    predicted[0, 0, 0] = 0
    metric = metrics.MeanIoU(C)
    metric.update_state(truth, predicted)
    # Classes 2, 3, 4 are absent from both: mean over classes 0 and 1 only.
    np.testing.assert_allclose(float(metric.result()), np.mean([8 / 9, 7 / 8]), rtol=1e-6)


def test_metrics_from_logits_and_one_hot():
    truth, predicted = _case(1)
    expected = _reference(truth, predicted)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=predicted.shape + (C,)).astype(np.float32)
    logits += 10.0 * np.eye(C, dtype=np.float32)[predicted]
    for y_pred in (logits, predicted[..., None].astype(np.float32)):
        metric = metrics.MeanIoU(C)
        metric.update_state(truth[..., None], y_pred)
        np.testing.assert_allclose(float(metric.result()), expected["mean_iou"], rtol=1e-6)


def test_sample_weight_and_reset():
    truth, predicted = _case(2)
    metric = metrics.PixelAccuracy(C)
    metric.update_state(truth, predicted, sample_weight=np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(float(metric.result()),
                               _reference(truth[:1], predicted[:1])["pixel_accuracy"], rtol=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert float(tf.reduce_sum(metrics.ConfusionMatrix(C).result())) == 0.0


@pytest.mark.parametrize("where", ["truth", "prediction"])
def test_out_of_range_labels_are_rejected(where):
    truth, predicted = _case(0)
    if where == "truth":
        truth[0, 1, 1] = 7
    else:
        predicted[0, 1, 1] = -2
    metric = metrics.MeanIoU(C)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mean_iou.*\[0, 5\)"):
        metric.update_state(truth, predicted)

    @tf.function
    def update(y, p):
        metric.update_state(y, p)

    with pytest.raises(tf.errors.InvalidArgumentError, match="mean_iou"):
        update(tf.constant(truth), tf.constant(predicted))
    with pytest.raises(ValueError, match="label values must be in"):
        metrics.confusion_matrix(truth, predicted, C, name="masks/0001.png")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        metrics.MeanIoU(1)
    with pytest.raises(ValueError, match="class_id"):
        metrics.PerClassIoU(3, class_id=3)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.confusion_matrix(np.zeros(3), np.zeros(4), 2)
    with pytest.raises(ValueError, match="classes"):
        metrics.MeanIoU(3).update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 4)))


def test_serialization_round_trip():
    for metric in [*metrics.segmentation_metrics(C, ignore_label=0),
                   metrics.PerClassIoU(C, class_id=2, name="iou_x")]:
        restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert type(restored) is type(metric)
        assert restored.get_config() == metric.get_config()


def test_metrics_in_compile_and_evaluate():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    masks = rng.integers(0, C, (4, 8, 8)).astype(np.int32)
    masks[:, 0] = IGNORE
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(C, 1, name="logits")(inputs))
    from kerasseg.losses import PixelCrossEntropy

    model.compile(
        "adam",
        loss=PixelCrossEntropy(),
        metrics=[*metrics.segmentation_metrics(C),
                 *metrics.per_class_iou_metrics(C, ["a", "b", "c", "d", "e"])],
    )
    logs = model.evaluate(images, masks, batch_size=2, verbose=0, return_dict=True)
    predicted = model.predict(images, verbose=0).argmax(-1)
    expected = _reference(masks, predicted)
    for key in KERAS_METRICS:
        np.testing.assert_allclose(logs[key], expected[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(logs["iou_b"], expected["per_class_iou"][1], rtol=1e-5)


def test_scores_table_lists_every_class():
    truth, predicted = _case(0)
    scores = metrics.segmentation_scores(metrics.confusion_matrix(truth, predicted, C),
                                         class_names=list("vwxyz"))
    table = metrics.scores_table(scores)
    assert "mean_iou" in table and all(f"\n{name} " in table for name in "vwxyz")
