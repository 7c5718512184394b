"""TFLite checks for the context models (PSPNet, DeepLab): builtin-only
conversion at a fixed size and parity with the Keras model."""

import numpy as np

from tests.backbones.backbone_checks import randomize_batch_norm

# Max |logit difference| allowed between TFLite and Keras, relative to the
# largest Keras logit (float32 kernels differ in summation order).
TFLITE_RELATIVE_ATOL = 1e-4
# Pixels whose argmax may differ (near-ties between classes).
ARGMAX_AGREEMENT = 0.999


def check_tflite_parity(model, seed=0):
    """Converts `model` (built with a fixed input size) with builtin ops only,
    runs it with LiteRT and compares with Keras. Returns the op names."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    # Non-trivial BN statistics, so folding them into convolutions is tested.
    randomize_batch_norm(model, seed)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops

    size = tuple(model.input.shape[1:])
    image = np.random.default_rng(seed).uniform(0, 255, (1, *size)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    actual = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = np.asarray(model(image, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual / scale, expected / scale, atol=TFLITE_RELATIVE_ATOL, rtol=0)
    agreement = np.mean(actual.argmax(-1) == expected.argmax(-1))
    assert agreement >= ARGMAX_AGREEMENT, agreement
    return ops
