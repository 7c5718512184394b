"""AdaptiveAveragePooling2D against an independent NumPy reference, at
dynamic sizes in Keras and as builtin-only TFLite at a fixed size."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasseg.layers.adaptive_pooling import AdaptiveAveragePooling2D
from tests.layer_checks import assert_outputs_close, check_layer_round_trip

TFLITE_ATOL = 1e-5


def reference_adaptive_pool(x, rows, cols):
    """PyTorch's adaptive_avg_pool2d definition: the mean of each rectangle."""
    batch, height, width, channels = x.shape
    out = np.zeros((batch, rows, cols, channels), "float64")
    for i in range(rows):
        top, bottom = (i * height) // rows, math.ceil((i + 1) * height / rows)
        for j in range(cols):
            left, right = (j * width) // cols, math.ceil((j + 1) * width / cols)
            out[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("output_size", [1, 2, 3, 6, (2, 5)])
@pytest.mark.parametrize("size", [(12, 12), (7, 10), (5, 3), (65, 33)])
def test_matches_reference(output_size, size):
    x = np.random.default_rng(0).normal(size=(2, *size, 4)).astype("float32")
    layer = AdaptiveAveragePooling2D(output_size)
    rows, cols = layer.output_size
    assert_outputs_close(layer(x), reference_adaptive_pool(x, rows, cols))


def test_divisible_size_equals_average_pooling():
    x = np.random.default_rng(1).normal(size=(1, 12, 18, 3)).astype("float32")
    expected = keras.layers.AveragePooling2D((4, 6))(x)
    assert_outputs_close(AdaptiveAveragePooling2D(3)(x), expected)


def test_dynamic_sizes_in_one_model():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, AdaptiveAveragePooling2D(6)(inputs))
    assert model.output.shape == (None, 6, 6, 2)
    for size in [(6, 6), (13, 29), (40, 7)]:
        x = np.random.default_rng(2).normal(size=(1, *size, 2)).astype("float32")
        assert_outputs_close(model(x), reference_adaptive_pool(x, 6, 6))


def test_round_trip(tmp_path):
    x = np.random.default_rng(3).normal(size=(1, 9, 11, 2)).astype("float32")
    check_layer_round_trip(AdaptiveAveragePooling2D((3, 2), name="pool"), x, tmp_path)


def test_converts_to_builtin_tflite_and_matches():
    from ai_edge_litert.interpreter import Interpreter

    inputs = keras.Input((13, 9, 4), batch_size=1)
    model = keras.Model(inputs, AdaptiveAveragePooling2D(6)(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    x = np.random.default_rng(4).normal(size=(1, 13, 9, 4)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert_outputs_close(out, reference_adaptive_pool(x, 6, 6), atol=TFLITE_ATOL)


@pytest.mark.parametrize("output_size", [0, (2, 0), (1, 2, 3), 2.5, True])
def test_rejects_bad_output_size(output_size):
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAveragePooling2D(output_size)
