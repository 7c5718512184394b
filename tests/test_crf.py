"""`kerasseg.crf.refine` against pydensecrf2, and `kerasseg.with_crf`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasseg
from kerasseg.crf import refine, with_crf

NUM_CLASSES = 5


def noisy_scene(height=64, width=80, seed=0):
    """A seeded image of coloured blocks and noisy softmax probabilities
    (about half the pixels wrong before the CRF)."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:height, :width]
    labels = (columns * 3 // width + 2 * (rows * 2 // height)) % NUM_CLASSES
    palette = rng.uniform(0, 255, (NUM_CLASSES, 3))
    image = np.clip(palette[labels] + rng.normal(0, 15, (height, width, 3)), 0, 255)
    logits = np.eye(NUM_CLASSES)[labels] + rng.normal(0, 1.0, (height, width, NUM_CLASSES))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return image.astype(np.uint8), probabilities.astype(np.float32), labels


def pydensecrf_refine(image, probabilities, iterations=5):
    dcrf = pytest.importorskip(
        "pydensecrf.densecrf", reason="pydensecrf2 (the oracle, `test` extra) is not installed")
    height, width, classes = probabilities.shape
    crf = dcrf.DenseCRF2D(width, height, classes)
    unary = -np.log(np.clip(probabilities, 1e-5, 1.0)).reshape(-1, classes).T
    crf.setUnaryEnergy(np.ascontiguousarray(unary, np.float32))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    return np.array(crf.inference(iterations)).reshape(classes, height, width).transpose(1, 2, 0)


@pytest.mark.parametrize("iterations", [1, 5])
def test_refine_agrees_with_pydensecrf(iterations):
    image, probabilities, labels = noisy_scene()
    expected = pydensecrf_refine(image, probabilities, iterations)
    refined = refine(image, probabilities, num_iterations=iterations)
    assert (refined.argmax(-1) == expected.argmax(-1)).mean() >= 0.99
    if iterations == 5:  # and it does the job
        assert (probabilities.argmax(-1) == labels).mean() < 0.7
        assert (refined.argmax(-1) == labels).mean() > 0.98


def test_refine_numpy_tensor_and_batch():
    scenes = [noisy_scene(24, 30, seed=s) for s in range(2)]
    images = np.stack([s[0] for s in scenes])
    probabilities = np.stack([s[1] for s in scenes])
    batched = refine(images, probabilities)
    assert isinstance(batched, np.ndarray) and batched.shape == probabilities.shape
    np.testing.assert_allclose(batched.sum(-1), 1.0, rtol=1e-5)
    single = refine(tf.constant(images[1]), tf.constant(probabilities[1]))
    assert tf.is_tensor(single)
    np.testing.assert_allclose(single.numpy(), batched[1], atol=1e-5)


def test_refine_huge_theta_is_fine():
    # A huge bandwidth makes every pixel the same feature point: a valid,
    # if useless, CRF whose messages are the same everywhere.
    image, probabilities, _ = noisy_scene(16, 16)
    refined = refine(image, probabilities, theta_alpha=1e30, theta_beta=1e30, theta_gamma=1e30)
    assert np.isfinite(refined).all()


@pytest.mark.parametrize("image_shape,probabilities_shape", [
    ((0, 8, 3), (0, 8, NUM_CLASSES)),
    ((8, 8, 3), (8, 9, NUM_CLASSES)),
    ((8, 8), (8, 8)),
    ((1, 8, 8, 3), (8, 8, NUM_CLASSES)),
])
def test_refine_bad_shapes(image_shape, probabilities_shape):
    with pytest.raises(ValueError, match="image.shape="):
        refine(np.zeros(image_shape, np.uint8), np.ones(probabilities_shape, np.float32))


@pytest.mark.parametrize("argument,value", [
    ("num_iterations", 0), ("theta_alpha", 0.0), ("theta_beta", float("inf")),
    ("theta_gamma", -3.0), ("appearance_weight", -1.0),
])
def test_refine_bad_arguments(argument, value):
    image, probabilities, _ = noisy_scene(8, 8)
    with pytest.raises(ValueError, match=f"Received: {argument}="):
        refine(image, probabilities, **{argument: value})


def tiny_segmenter(activation=None):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(NUM_CLASSES, 1, activation=activation, name="logits")(x)
    return keras.Model(inputs, x, name="tiny")


def test_with_crf_trains_end_to_end_and_saves(tmp_path):
    assert kerasseg.with_crf is with_crf
    model = with_crf(tiny_segmenter(), num_iterations=2, theta_alpha=20.0)
    assert model.name == "tiny_crf" and model.layers[-1].name == "crf"
    image, _, labels = noisy_scene(20, 24)
    images, targets = image[None].astype(np.float32), tf.one_hot(labels[None], NUM_CLASSES)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(targets, model(images, training=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    names = [w.path for w, g in zip(model.trainable_weights, gradients, strict=True)
             if g is None or not np.abs(g.numpy()).max() > 0]
    assert not names, f"no gradient reaches {names}"

    path = tmp_path / "crf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-4)


def test_with_crf_rejects_probability_outputs():
    with pytest.raises(ValueError, match="activation=None"):
        with_crf(tiny_segmenter(activation="softmax"))
