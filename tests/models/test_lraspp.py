"""Lite R-ASPP: the shared model checks, the head's gating against NumPy, and
builtin-only TFLite export of the portrait configuration."""

import numpy as np
import pytest

import kerasseg
from tests.model_tester import ModelTester


class TestLRASPP(ModelTester):
    builder = staticmethod(kerasseg.lraspp)
    config = {
        "backbone": "mobilenetv3small",
        "head_filters": 16,
        "backbone_kwargs": {"alpha": 0.35},
    }
    overfit_learning_rate = 1e-2
    overfit_steps = 40


def _small(**overrides):
    arguments = {"backbone": "mobilenetv3small", "head_filters": 8,
                 "backbone_kwargs": {"alpha": 0.35}, **overrides}
    return kerasseg.lraspp(1, (64, 64, 3), activation="sigmoid", **arguments)


def test_gate_is_sigmoid_of_global_pool_times_branch():
    """lraspp_gate = relu(bn(conv(high))) * sigmoid(W mean(high) + b), in NumPy."""
    import keras

    model = _small()
    high = model.get_layer("lraspp_pool").input
    probe = keras.Model(
        model.inputs,
        [high, model.get_layer("lraspp_conv_relu").output, model.get_layer("lraspp_gate").output],
    )
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    high, branch, gated = probe.predict(x, verbose=0)
    kernel, bias = model.get_layer("lraspp_pool_conv").get_weights()
    pooled = high.mean(axis=(1, 2))
    gate = 1.0 / (1.0 + np.exp(-(pooled @ kernel[0, 0] + bias)))
    np.testing.assert_allclose(gated, branch * gate[:, None, None, :], atol=1e-5, rtol=1e-5)


def test_sigmoid_output_is_one_channel_probability():
    model = _small()
    out = model.predict(np.full((1, 64, 64, 3), 128.0, "float32"), verbose=0)
    assert out.shape == (1, 64, 64, 1)
    assert (out > 0).all() and (out < 1).all()


def test_high_level_p4_drops_the_last_stage():
    full, truncated = _small(), _small(high_level="P4")
    names = {layer.name for layer in truncated.layers}
    assert "conv_1" in {layer.name for layer in full.layers}
    assert "conv_1" not in names and "expanded_conv_10_project" not in names
    assert truncated.count_params() < full.count_params()


def test_stride_of_features():
    """At output stride 16, the branch runs at 1/16 and the skip at 1/8 of the input."""
    model = _small()
    assert model.get_layer("lraspp_conv").output.shape[1:3] == (4, 4)
    assert model.get_layer("lraspp_low_classifier").output.shape[1:3] == (8, 8)


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"high_level": "P6"}, "high_level"),
        ({"low_level": "P4", "high_level": "P4"}, "low_level"),
        ({"head_filters": 0}, "head_filters"),
        ({"output_stride": 12}, "output_stride"),
        ({"backbone": "mobilenetv4"}, "backbone"),
    ],
)
def test_rejects_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        _small(**arguments)


# Both sizes and both quantisations, in two conversions (each takes seconds);
# benchmarks/portrait.py converts all four combinations.
@pytest.mark.parametrize("size, quantization", [((256, 256), "fp16"), ((144, 256), "int8")])
def test_portrait_tflite_builtin_only_and_close_to_keras(size, quantization, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from kerasseg.data.synthetic import make_portrait_scene
    from kerasseg.export import to_tflite
    from kerasseg.models.portrait import portrait_model

    model = portrait_model("lraspp_mobilenetv3small", input_shape=(*size, 3))
    images = np.stack([make_portrait_scene(seed, *size)[0] for seed in range(4)]).astype(
        "float32"
    )
    path = to_tflite(model, tmp_path / "portrait.tflite", quantization=quantization,
                     representative_data=images, calibration_steps=4, output="probabilities")
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    # Builtins are upper-case names; custom or Flex ops are not.
    assert all(op.isupper() for op in ops), ops
    assert not ops & {"ARG_MAX", "FlexArgMax"}, ops
    interpreter.allocate_tensors()
    expected = model.predict(images[:2], verbose=0)
    for image, want in zip(images[:2], expected, strict=True):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        assert got.shape == (*size, 1)
        # Probabilities: fp16 weights stay within 0.02; int8 activations within 0.1
        # on average (max 0.35 at a few edge pixels).
        error = np.abs(got - want)
        if quantization == "fp16":
            assert error.max() < 0.02, error.max()
        else:
            assert error.mean() < 0.1 and error.max() < 0.35, (error.mean(), error.max())


def test_weights_argument_loads_a_full_model_file(tmp_path):
    model = _small()
    path = str(tmp_path / "lraspp.weights.h5")
    model.save_weights(path)
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    assert not np.allclose(_small().predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_allclose(
        _small(weights=path).predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
