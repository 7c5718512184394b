"""Losses against independent numpy computations, with ignore pixels and class weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg import losses

C = 4
IGNORE = 255


def _case(seed, batch=2, height=9, width=11, ignore_fraction=0.2):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (batch, height, width, C)).astype(np.float32)
    labels = rng.integers(0, C, (batch, height, width))
    labels[rng.random(labels.shape) < ignore_fraction] = IGNORE
    return labels.astype(np.int32), logits


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _pixel_terms(labels, logits):
    """Per-pixel log p_true, with ignored pixels dropped (boolean indexing)."""
    keep = labels != IGNORE
    log_p = _log_softmax(logits.astype(np.float64))
    return keep, np.take_along_axis(log_p, np.where(keep, labels, 0)[..., None], -1)[..., 0]


def _weighted_mean(values, weights):
    return (values * weights).sum() / weights.sum()


def _loss(loss, labels, logits):
    return float(loss(tf.constant(labels), tf.constant(logits)))


@pytest.mark.parametrize("class_weights", [None, [0.5, 1.0, 2.0, 0.0]])
def test_cross_entropy(class_weights):
    labels, logits = _case(0)
    keep, log_pt = _pixel_terms(labels, logits)
    w = np.ones(C) if class_weights is None else np.array(class_weights)
    expected = _weighted_mean(-log_pt[keep], w[labels[keep]])
    loss = losses.PixelCrossEntropy(class_weights=class_weights)
    np.testing.assert_allclose(_loss(loss, labels, logits), expected, rtol=1e-5)


def test_cross_entropy_accepts_float_and_channel_targets():
    labels, logits = _case(1)
    loss = losses.PixelCrossEntropy()
    expected = _loss(loss, labels, logits)
    as_float = labels.astype(np.float32)[..., None]
    np.testing.assert_allclose(_loss(loss, as_float, logits), expected, rtol=1e-6)


def test_ignored_pixels_do_not_matter():
    labels, logits = _case(2)
    other = logits.copy()
    other[labels == IGNORE] = 100.0 * np.random.default_rng(0).normal(size=C)
    for loss in (losses.PixelCrossEntropy(), losses.SoftDiceLoss(), losses.FocalLoss(),
                 losses.LovaszSoftmaxLoss(), losses.OHEMCrossEntropy(min_kept=20),
                 losses.BoundaryCrossEntropy()):
        np.testing.assert_allclose(
            _loss(loss, labels, logits), _loss(loss, labels, other), rtol=1e-5,
            err_msg=loss.name,
        )


def test_all_ignored_gives_zero():
    labels = np.full((1, 4, 4), IGNORE, np.int32)
    logits = np.random.default_rng(0).normal(size=(1, 4, 4, C)).astype(np.float32)
    for loss in (losses.PixelCrossEntropy(), losses.FocalLoss(), losses.LovaszSoftmaxLoss(),
                 losses.OHEMCrossEntropy()):
        assert _loss(loss, labels, logits) == 0.0


def _numpy_boundary(labels, width):
    padded = np.pad(labels, ((0, 0), (width, width), (width, width)), mode="edge")
    h, w = labels.shape[1:]
    boundary = np.zeros(labels.shape, bool)
    for dy in range(2 * width + 1):
        for dx in range(2 * width + 1):
            boundary |= padded[:, dy:dy + h, dx:dx + w] != labels
    return boundary


def test_boundary_cross_entropy():
    labels, logits = _case(3, height=12, width=12, ignore_fraction=0.0)
    labels[:, :6] = 1  # a horizontal boundary and random noise below it
    labels[0, 0, 0] = IGNORE
    keep, log_pt = _pixel_terms(labels, logits)
    weights = np.array([1.0, 2.0, 1.0, 0.5])[np.where(keep, labels, 0)]
    weights = weights * (1.0 + 3.0 * _numpy_boundary(labels, 1))
    expected = _weighted_mean(-log_pt[keep], weights[keep])
    loss = losses.BoundaryCrossEntropy(boundary_weight=3.0, boundary_width=1,
                                       class_weights=[1.0, 2.0, 1.0, 0.5])
    np.testing.assert_allclose(_loss(loss, labels, logits), expected, rtol=1e-5)
    boundary = losses.boundary_mask(tf.constant(labels), 1).numpy()
    np.testing.assert_array_equal(boundary, _numpy_boundary(labels, 1))


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal(gamma):
    labels, logits = _case(4)
    keep, log_pt = _pixel_terms(labels, logits)
    alpha = np.array([0.25, 1.0, 1.0, 0.5])
    values = -((1 - np.exp(log_pt)) ** gamma) * log_pt
    expected = _weighted_mean(values[keep], alpha[labels[keep]])
    loss = losses.FocalLoss(gamma=gamma, class_weights=alpha.tolist())
    np.testing.assert_allclose(_loss(loss, labels, logits), expected, rtol=1e-5)


@pytest.mark.parametrize("threshold, min_kept", [(0.7, 10), (0.2, 120), (None, 37)])
def test_ohem(threshold, min_kept):
    labels, logits = _case(5)
    keep, log_pt = _pixel_terms(labels, logits)
    probs = np.exp(log_pt[keep])
    ce = -log_pt[keep]
    kth = np.sort(probs)[min(min_kept, probs.size) - 1]
    cutoff = kth if threshold is None else max(kth, threshold)
    hard = probs <= cutoff
    if threshold is None:
        assert hard.sum() == min_kept
    expected = ce[hard].mean()
    loss = losses.OHEMCrossEntropy(threshold=threshold, min_kept=min_kept)
    np.testing.assert_allclose(_loss(loss, labels, logits), expected, rtol=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
def test_soft_dice(per_image):
    labels, logits = _case(6)
    probs = np.exp(_log_softmax(logits.astype(np.float64)))
    values = []
    groups = [(labels[i:i + 1], probs[i:i + 1]) for i in range(2)] if per_image else [
        (labels, probs)]
    for group_labels, group_probs in groups:
        keep = group_labels != IGNORE
        dices = []
        for c in range(C):
            p = group_probs[..., c][keep]
            g = (group_labels[keep] == c).astype(np.float64)
            dices.append((2 * (p * g).sum() + 1.0) / (p.sum() + g.sum() + 1.0))
        values.append(1.0 - np.mean(dices))
    loss = losses.SoftDiceLoss(per_image=per_image)
    np.testing.assert_allclose(_loss(loss, labels, logits), np.mean(values), rtol=1e-5)


def _numpy_lovasz(probs, labels, present_only):
    """Berman et al.'s Lovász-softmax on flat valid pixels, written with numpy loops."""
    keep = labels != IGNORE
    probs, labels = probs[keep], labels[keep]
    per_class = []
    for c in range(C):
        fg = (labels == c).astype(np.float64)
        if present_only and fg.sum() == 0:
            continue
        errors = np.abs(fg - probs[:, c])
        order = np.argsort(-errors, kind="stable")
        fg_sorted = fg[order]
        intersection = fg_sorted.sum() - np.cumsum(fg_sorted)
        union = fg_sorted.sum() + np.cumsum(1 - fg_sorted)
        jaccard = 1.0 - intersection / union
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
        per_class.append(np.dot(errors[order], jaccard))
    return np.mean(per_class) if per_class else 0.0


@pytest.mark.parametrize("classes, per_image", [("present", False), ("all", False),
                                                ("present", True)])
def test_lovasz_softmax(classes, per_image):
    labels, logits = _case(7)
    labels[0][labels[0] == 3] = 1  # class 3 absent from image 0
    probs = np.exp(_log_softmax(logits.astype(np.float64)))
    if per_image:
        expected = np.mean([_numpy_lovasz(probs[i], labels[i], classes == "present")
                            for i in range(2)])
    else:
        expected = _numpy_lovasz(probs, labels, classes == "present")
    loss = losses.LovaszSoftmaxLoss(classes=classes, per_image=per_image)
    np.testing.assert_allclose(_loss(loss, labels, logits), expected, rtol=1e-5)


def test_mil_loss():
    labels, logits = _case(8)
    labels[1][labels[1] == 2] = 0  # class 2 absent from image 1
    log_p = _log_softmax(logits.astype(np.float64))
    expected = []
    for i in range(2):
        present = [c for c in range(C) if np.any(labels[i] == c)]
        expected.append(-np.mean([log_p[i, ..., c].max() for c in present]))
    loss = losses.MILLoss()
    np.testing.assert_allclose(_loss(loss, labels, logits), np.mean(expected), rtol=1e-5)
    multi_hot = np.array([[c in np.unique(labels[i]) for c in range(C)] for i in range(2)])
    np.testing.assert_allclose(
        _loss(loss, multi_hot.astype(np.float32), logits), np.mean(expected), rtol=1e-5
    )


def test_logits_at_lower_resolution_are_resized():
    labels, _ = _case(9, height=8, width=8, ignore_fraction=0.1)
    low = np.random.default_rng(1).normal(size=(2, 4, 4, C)).astype(np.float32)
    resized = tf.image.resize(low, (8, 8), method="bilinear").numpy()
    loss = losses.PixelCrossEntropy()
    np.testing.assert_allclose(_loss(loss, labels, low), _loss(loss, labels, resized), rtol=1e-6)


@pytest.mark.parametrize("bad", [4, -1, 254])
def test_out_of_range_labels_raise(bad):
    labels, logits = _case(10)
    labels[1, 2, 3] = bad
    for loss in (losses.PixelCrossEntropy(), losses.LovaszSoftmaxLoss()):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 4\).*255"):
            _loss(loss, labels, logits)

    @tf.function
    def graph_loss(y, p):
        return losses.SoftDiceLoss()(y, p)

    with pytest.raises(tf.errors.InvalidArgumentError, match="soft_dice_loss"):
        graph_loss(tf.constant(labels), tf.constant(logits))


def test_bad_arguments():
    with pytest.raises(ValueError, match="class_weights"):
        losses.PixelCrossEntropy(class_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="class_weights"):
        _loss(losses.PixelCrossEntropy(class_weights=[1.0, 1.0]), *_case(0))
    with pytest.raises(ValueError, match="classes"):
        losses.LovaszSoftmaxLoss(classes="some")
    with pytest.raises(ValueError, match="min_kept"):
        losses.OHEMCrossEntropy(min_kept=0)
    with pytest.raises(ValueError, match="aux_weight"):
        losses.auxiliary_head_losses(losses.PixelCrossEntropy(), aux_weight=-1)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_serialization_round_trip(name):
    kwargs = {"class_weights": [1.0, 2.0, 3.0, 4.0]} if name in (
        "cross_entropy", "focal", "dice") else {}
    loss = losses.LOSSES[name](ignore_label=0, **kwargs)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    labels, logits = _case(11)
    labels[labels == IGNORE] = 0
    np.testing.assert_allclose(_loss(restored, labels, logits), _loss(loss, labels, logits))


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    logits = keras.layers.Conv2D(C, 1, name="logits")(features)
    aux = keras.layers.Conv2D(C, 1, name="aux_logits")(features)
    return inputs, logits, aux


def test_losses_train_in_compile():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    masks = rng.integers(0, C, (4, 8, 8)).astype(np.int32)
    masks[:, 0] = IGNORE
    inputs, logits, _ = _tiny_model()
    model = keras.Model(inputs, logits)
    # Cross-entropy trains in test_auxiliary_head_losses and in test_metrics.py.
    for loss in (losses.LovaszSoftmaxLoss(), losses.OHEMCrossEntropy(min_kept=16),
                 losses.MILLoss()):
        model.compile(keras.optimizers.Adam(1e-2), loss=loss)
        history = model.fit(images, masks, batch_size=4, epochs=3, verbose=0)
        assert np.all(np.isfinite(history.history["loss"])), loss.name
        assert history.history["loss"][-1] < history.history["loss"][0], loss.name


def test_auxiliary_head_losses():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    masks = rng.integers(0, C, (2, 8, 8)).astype(np.int32)
    inputs, logits, aux = _tiny_model()
    model = keras.Model(inputs, {"logits": logits, "aux_logits": aux})
    loss = losses.PixelCrossEntropy()
    model.compile("sgd", **losses.auxiliary_head_losses(loss))
    total = model.evaluate(images, {"logits": masks, "aux_logits": masks}, verbose=0,
                           return_dict=True)["loss"]
    outputs = model.predict(images, verbose=0)
    expected = float(loss(masks, outputs["logits"])) + 0.4 * float(
        loss(masks, outputs["aux_logits"]))
    np.testing.assert_allclose(total, expected, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_gradients_are_finite_and_ignore_void(name):
    labels, logits = _case(12)
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = losses.LOSSES[name]()(tf.constant(labels), logits)
    gradient = tape.gradient(value, logits).numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).sum() > 0
    if name != "mil":  # MIL reads image-level labels; the argmax pixel may be anywhere
        np.testing.assert_array_equal(gradient[labels == IGNORE], 0.0)


@pytest.mark.parametrize("class_weights", [None, [1.0, 3.0]])
def test_one_channel_probabilities_are_binary_cross_entropy(class_weights):
    # A sigmoid model's one channel p: cross-entropy over background and
    # foreground is -log(1 - p) or -log(p), with the ignore label left out.
    rng = np.random.default_rng(7)
    probabilities = rng.uniform(0.01, 0.99, (2, 6, 7, 1)).astype(np.float32)
    labels = rng.integers(0, 2, (2, 6, 7)).astype(np.int32)
    labels[0, :2] = IGNORE
    keep = labels != IGNORE
    p = probabilities[..., 0].astype(np.float64)
    terms = np.where(labels == 1, -np.log(p), -np.log(1 - p))
    weights = np.ones(2) if class_weights is None else np.asarray(class_weights)
    pixel_weights = weights[np.where(keep, labels, 0)] * keep
    expected = (terms * pixel_weights).sum() / pixel_weights.sum()
    loss = losses.PixelCrossEntropy(class_weights=class_weights)
    assert _loss(loss, labels, probabilities) == pytest.approx(expected, rel=1e-5)
    labels[1, 0, 0] = 2  # only 0, 1 and the ignore label exist for a binary mask
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 2\)"):
        _loss(loss, labels, probabilities)


@pytest.mark.parametrize("make, message", [
    (lambda: losses.BoundaryCrossEntropy(boundary_weight="a"), "`boundary_weight` must be a num"),
    (lambda: losses.BoundaryCrossEntropy(boundary_width=True), "`boundary_width` must be an int"),
    (lambda: losses.BoundaryCrossEntropy(boundary_width=1.5), "`boundary_width` must be an int"),
    (lambda: losses.FocalLoss(gamma=None), "`gamma` must be a number"),
    (lambda: losses.OHEMCrossEntropy(min_kept=True), "`min_kept` must be an integer"),
    (lambda: losses.OHEMCrossEntropy(threshold="0.7"), "`threshold` must be a number"),
    (lambda: losses.SoftDiceLoss(smooth="1"), "`smooth` must be a number"),
    (lambda: losses.SoftDiceLoss(per_image=1), "`per_image` must be of type bool"),
    (lambda: losses.PixelCrossEntropy(class_weights=["a", 1.0]), "`class_weights` must be a list"),
])
def test_bad_argument_types_get_a_value_error_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_one_channel_logits_are_refused_with_a_clear_error():
    # A one-channel model must end in a sigmoid: its output is read as a probability.
    inputs = keras.Input((8, 8, 3))
    logits = keras.layers.Conv2D(1, 1, kernel_initializer="ones", name="logits")(inputs)
    model = keras.Model(inputs, logits)
    model.compile("sgd", loss=losses.PixelCrossEntropy())
    images = np.full((2, 8, 8, 3), 5.0, np.float32)
    masks = np.ones((2, 8, 8), np.int32)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="probability in .0, 1. .a model ending in a sigmoid"):
        model.fit(images, masks, epochs=1, verbose=0)
    probabilities = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    probabilities.compile("sgd", loss=losses.PixelCrossEntropy())
    assert np.isfinite(probabilities.fit(images, masks, epochs=1, verbose=0).history["loss"][0])
