"""DenseCRF layer (CRF-as-RNN): serialisation, Potts initialisation,
agreement with the exact-filtering CRF, training and argument checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg.layers import DenseCRF
from kerasseg.layers.crf import crf_features, mean_field
from kerasseg.ops import custom_ops_available, permutohedral
from tests.layer_checks import check_layer_round_trip

NUM_CLASSES = 4


def scene(batch=2, height=24, width=20, seed=0):
    """Images of coloured blocks and noisy logits that favour the true block."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:height, :width]
    labels = (columns * 2 // width + 2 * (rows * 2 // height)) % NUM_CLASSES
    palette = rng.uniform(0, 255, (NUM_CLASSES, 3))
    images = np.stack([np.clip(palette[labels] + rng.normal(0, 10, (height, width, 3)), 0, 255)
                       for _ in range(batch)]).astype(np.float32)
    logits = 1.5 * np.eye(NUM_CLASSES)[labels] + rng.normal(0, 1.0, (batch, height, width,
                                                                    NUM_CLASSES))
    return images, logits.astype(np.float32), labels


def test_round_trip(tmp_path):
    images, logits, _ = scene()
    layer = DenseCRF(num_iterations=3, theta_alpha=20.0, theta_beta=10.0, theta_gamma=2.0,
                     appearance_weight=5.0, smoothness_weight=1.5, name="dense_crf")
    check_layer_round_trip(layer, [tf.constant(logits), tf.constant(images)], tmp_path)
    assert layer.supports_jit is False


def test_weights_start_as_potts_and_given_kernel_weights():
    images, logits, _ = scene(batch=1)
    layer = DenseCRF(appearance_weight=7.0, smoothness_weight=2.0)
    layer([logits, images])
    np.testing.assert_array_equal(layer.compatibility.numpy(), 1 - np.eye(NUM_CLASSES))
    np.testing.assert_array_equal(layer.appearance_weights.numpy(), [7.0] * NUM_CLASSES)
    np.testing.assert_array_equal(layer.smoothness_weights.numpy(), [2.0] * NUM_CLASSES)


def test_refines_noisy_logits():
    images, logits, labels = scene()
    refined = DenseCRF(theta_alpha=20.0)([logits, images]).numpy()
    assert refined.shape == logits.shape
    before = (logits.argmax(-1) == labels).mean()
    after = (refined.argmax(-1) == labels).mean()
    assert before < 0.9 and after > 0.99


@pytest.mark.skipif(not custom_ops_available(), reason="the kerasseg C++ op is unavailable")
def test_lattice_crf_matches_exact_crf(monkeypatch):
    # The permutohedral lattice approximates the Gaussian kernels; what matters
    # is that the CRF decides the same labels as with exact filtering.
    images, logits, _ = scene(height=30, width=26, seed=3)
    layer = DenseCRF(theta_alpha=20.0)
    approximate = layer([logits, images]).numpy()
    monkeypatch.setattr(permutohedral, "_ops", lambda: None)  # exact pure-TF fallback
    exact = layer([logits, images]).numpy()
    assert (approximate.argmax(-1) == exact.argmax(-1)).mean() >= 0.99


@pytest.mark.parametrize("weights", [(10.0, 3.0), (0.0, 3.0)])
def test_potts_shortcut_matches_the_compatibility_matrix(weights):
    # compatibility=None drops a per-point constant from the logits and folds
    # the kernel weights into the lattices: same probabilities as 1 - I.
    images, logits, _ = scene()
    unary = tf.reshape(logits, [2, -1, NUM_CLASSES])
    features = crf_features(images, 20.0, 13.0, 3.0)
    potts = mean_field(unary, *features, *weights, None, 3)
    matrix = mean_field(unary, *features, *weights, tf.constant(1 - np.eye(NUM_CLASSES),
                                                                tf.float32), 3)
    np.testing.assert_allclose(tf.nn.softmax(potts), tf.nn.softmax(matrix), atol=2e-6)
    assert np.abs(potts - matrix).max() > 0.1  # the dropped constant: a different path


def test_trains_end_to_end():
    images, logits, labels = scene(batch=1)
    logits_variable = tf.Variable(logits)
    layer = DenseCRF(num_iterations=2, theta_alpha=20.0)
    layer([logits, images])
    optimizer = keras.optimizers.SGD(0.5)
    targets = tf.one_hot(labels[None], NUM_CLASSES)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    losses = []
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = loss_fn(targets, layer([logits_variable, images]))
        variables = [*layer.trainable_weights, logits_variable]
        gradients = tape.gradient(loss, variables)
        for variable, gradient in zip(variables, gradients, strict=True):
            assert gradient is not None and np.isfinite(gradient.numpy()).all(), variable.name
            assert np.abs(gradient.numpy()).max() > 0, variable.name
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_mismatched_image_raises():
    images, logits, _ = scene(batch=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch, height and width"):
        DenseCRF()([logits, images[:, :-1]])


@pytest.mark.parametrize("argument,value", [
    ("num_iterations", 0), ("theta_alpha", 0.0), ("theta_beta", -1.0),
    ("theta_gamma", float("inf")), ("appearance_weight", float("nan")),
    ("smoothness_weight", -2.0),
])
def test_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=f"Received: {argument}="):
        DenseCRF(**{argument: value})


def test_bad_input_structure():
    with pytest.raises(ValueError, match="logits"):
        DenseCRF().build([(None, None, None, 4), (None, None, 3)])
