"""Checks shared by the backbone tests: weight copy from `keras.applications`
and feature geometry at each output stride."""

import math

import numpy as np

from tests.layer_checks import assert_outputs_close


def randomize_batch_norm(model, seed=0):
    """Gives every BatchNormalization non-trivial statistics, so a copy that
    skipped the non-trainable weights would be caught."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.1, beta.shape).astype("float32"),
                rng.normal(0, 0.1, mean.shape).astype("float32"),
                rng.uniform(0.5, 1.5, variance.shape).astype("float32"),
            ])


def check_weights_match_application(
    backbone, application, reference_outputs, tmp_path, preprocess=None, size=64, **kwargs
):
    """Saves a randomly initialised `keras.applications` model, builds our
    backbone with `weights=<that file>`, and compares every level with the
    application's tensor `reference_outputs[level](reference_model)` on the
    same image (preprocessed by `preprocess` for the application)."""
    import keras

    reference = application(include_top=False, weights=None, input_shape=(None, None, 3), **kwargs)
    randomize_batch_norm(reference)
    path = tmp_path / "application.weights.h5"
    reference.save_weights(path)

    inputs = keras.Input((None, None, 3))
    features = backbone(inputs, weights=str(path), **kwargs)
    ours = keras.Model(inputs, features)

    levels = sorted(reference_outputs)
    probe = keras.Model(reference.input, [reference_outputs[level](reference) for level in levels])
    images = np.random.default_rng(1).uniform(0, 255, (1, size, size, 3)).astype("float32")
    # Eager calls: much cheaper than tracing `predict` for a single batch.
    expected = probe(preprocess(images.copy()) if preprocess else images)
    actual = {level: np.asarray(value) for level, value in ours(images).items()}
    assert sorted(actual) == ["P1", "P2", "P3", "P4", "P5"]
    for level, value in zip(levels, expected):
        value = np.asarray(value)
        scale = max(1.0, float(np.abs(value).max()))
        assert actual[level].shape == value.shape, level
        assert_outputs_close(actual[level] / scale, value / scale, atol=1e-4)


def expected_sizes(size, output_stride):
    """Spatial size of P1..P5 for a square input: ceil(size / stride), with
    the stride capped at the output stride."""
    return {f"P{n}": math.ceil(size / min(2**n, output_stride)) for n in range(1, 6)}


def check_geometry(backbone, size, output_stride, **kwargs):
    """Static feature sizes of a fixed-size build at `output_stride`."""
    import keras

    inputs = keras.Input((size, size, 3))
    features = backbone(inputs, output_stride=output_stride, **kwargs)
    sizes = {level: tuple(f.shape[1:3]) for level, f in features.items()}
    expected = {level: (s, s) for level, s in expected_sizes(size, output_stride).items()}
    assert sizes == expected, (output_stride, sizes)
    return features
