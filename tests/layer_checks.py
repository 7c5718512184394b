"""Checks for custom layers: config round trip and save/load in a model."""

import numpy as np

OUTPUT_ATOL = 1e-5


def assert_outputs_close(actual, expected, atol=OUTPUT_ATOL):
    """Compares (possibly nested) outputs with a named tolerance."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            assert_outputs_close(actual[key], expected[key], atol)
        return
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_outputs_close(a, e, atol)
        return
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=0)


def check_layer_round_trip(layer, inputs, tmp_path):
    """`from_config` rebuilds the layer, and a model holding it survives a
    `.keras` save/load with `safe_mode=True`, with identical outputs."""
    import keras

    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    expected = layer(inputs)
    clone(inputs)  # builds the clone's weights
    clone.set_weights(layer.get_weights())
    assert_outputs_close(clone(inputs), expected)

    structure = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    symbolic = [keras.Input(shape=(None,) * (len(x.shape) - 2) + (x.shape[-1],), dtype=x.dtype)
                for x in structure]
    model_inputs = symbolic if isinstance(inputs, (list, tuple)) else symbolic[0]
    model = keras.Model(model_inputs, layer(model_inputs))
    path = tmp_path / f"{layer.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert_outputs_close(loaded(inputs), expected)
    return loaded
