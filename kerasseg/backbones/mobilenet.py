"""MobileNetV2 and MobileNetV3 with `keras.applications` names and an output stride.

References: [MobileNetV2: Inverted Residuals and Linear Bottlenecks](
https://arxiv.org/abs/1801.04381); [Searching for MobileNetV3](
https://arxiv.org/abs/1905.02244).

Levels: "Pn" is the last tensor at nominal stride 2^n before the network
strides again, i.e. the expanded activation that feeds the next strided
depthwise convolution (the convention of segmentation_models and DeepLab's
decoders: it has the most channels at that resolution); "P5" is the final
activation of the `keras.applications` model without its top. Strided
depthwise convolutions use "same" padding, which equals Keras' explicit
`correct_pad` padding at every even size. Past `output_stride` the would-be
strided convolution keeps stride 1 and the following depthwise convolutions
dilate instead.
"""

import keras

from kerasseg.backbones.strides import Strider
from kerasseg.backbones.weights import load_application_weights
from kerasseg.layers import DEFAULT_NORM, Preprocess
from kerasseg.utils import check_number, check_positive_int


def _make_divisible(value, divisor=8):
    """Channel rounding of the MobileNet papers (never more than 10% down, never below 8)."""
    rounded = max(8, divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check_alpha(alpha):
    check_number("alpha", alpha, 0, low_open=True)


# === MobileNetV2 ===

# (expansion, filters, stride) per inverted residual block 0..16.
_V2_BLOCKS = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)


def mobilenetv2(
    inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, alpha=1.0,
    include_last_conv=True, divisible_by=8,
):
    """MobileNetV2 features by level, with `keras.applications.MobileNetV2` names.

    Levels: "P1" `block_1_expand_relu`, "P2" `block_3_expand_relu`, "P3"
    `block_6_expand_relu`, "P4" `block_13_expand_relu`, "P5" `out_relu`
    (1280 channels), or `block_16_project_BN` (320 channels) without the last
    1x1 conv: the "second last feature map" the MobileNetV2 paper uses for
    DeepLabv3 heads (section 6.3), 2.5 times cheaper there.

    Args:
        inputs: Keras tensor of raw RGB pixels in [0, 255].
        output_stride: 8, 16 or 32.
        weights: None, "imagenet" or the path of a `keras.applications.MobileNetV2`
            weights file built with the same `alpha`.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        alpha: width multiplier (ImageNet weights exist for 0.35, 0.5, 0.75,
            1.0, 1.3 and 1.4).
        include_last_conv: keep the application's last 1x1 conv (`Conv_1`);
            False makes "P5" the 320-channel `block_16_project_BN`.
        divisible_by: channel counts are rounded to a multiple of this (8 in
            `keras.applications`); the reference DeepLab rounds to 1 below
            width 1.0 (12 channels at alpha 0.5 where Keras has 16), as
            Google's `deeplabv3_mnv2_dm05_pascal_quant.tflite` does.

    Returns:
        Dict "P1".."P5" of feature tensors.
    """
    _check_alpha(alpha)
    check_positive_int("divisible_by", divisible_by)
    strider = Strider(output_stride)
    features = {}
    x = Preprocess("tf", name="preprocess")(inputs)
    strides, _ = strider.step(2)
    x = keras.layers.Conv2D(
        _make_divisible(32 * alpha, divisible_by), 3, strides=strides, padding="same",
        use_bias=False, name="Conv1",
    )(x)
    x = norm(x, "bn_Conv1")
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)

    level = 1
    for block_id, (expansion, filters, stride) in enumerate(_V2_BLOCKS):
        shortcut = x
        in_channels = x.shape[-1]
        out_channels = _make_divisible(int(filters * alpha), divisible_by)
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        if block_id:
            x = keras.layers.Conv2D(
                expansion * in_channels, 1, use_bias=False, name=f"{prefix}expand"
            )(x)
            x = norm(x, f"{prefix}expand_BN")
            x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
        if stride == 2:
            features[f"P{level}"] = x
            level += 1
        strides, dilation = strider.step(stride)
        x = keras.layers.DepthwiseConv2D(
            3, strides=strides, dilation_rate=dilation, padding="same", use_bias=False,
            name=f"{prefix}depthwise",
        )(x)
        x = norm(x, f"{prefix}depthwise_BN")
        x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
        x = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{prefix}project")(x)
        x = norm(x, f"{prefix}project_BN")
        if in_channels == out_channels and stride == 1:
            x = keras.layers.Add(name=f"{prefix}add")([shortcut, x])

    # No alpha below 1 on the last conv, as in the paper.
    last_filters = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    last = x
    x = keras.layers.Conv2D(last_filters, 1, use_bias=False, name="Conv_1")(x)
    x = norm(x, "Conv_1_bn")
    x = keras.layers.ReLU(6.0, name="out_relu")(x)

    if weights is not None:
        # Loads through the full graph; without the last conv, its layers
        # stay unconnected to the outputs and leave the final model.
        load_application_weights(
            inputs, {**features, "P5": x}, keras.applications.MobileNetV2, weights, alpha=alpha
        )
    features["P5"] = x if include_last_conv else last
    return features


# === MobileNetV3 ===

# (expansion, filters, kernel size, stride, squeeze-excite, hard-swish) per block.
_V3_SMALL = (
    (1, 16, 3, 2, True, False),
    (72 / 16, 24, 3, 2, False, False),
    (88 / 24, 24, 3, 1, False, False),
    (4, 40, 5, 2, True, True),
    (6, 40, 5, 1, True, True),
    (6, 40, 5, 1, True, True),
    (3, 48, 5, 1, True, True),
    (3, 48, 5, 1, True, True),
    (6, 96, 5, 2, True, True),
    (6, 96, 5, 1, True, True),
    (6, 96, 5, 1, True, True),
)
_V3_LARGE = (
    (1, 16, 3, 1, False, False),
    (4, 24, 3, 2, False, False),
    (3, 24, 3, 1, False, False),
    (3, 40, 5, 2, True, False),
    (3, 40, 5, 1, True, False),
    (3, 40, 5, 1, True, False),
    (6, 80, 3, 2, False, True),
    (2.5, 80, 3, 1, False, True),
    (2.3, 80, 3, 1, False, True),
    (2.3, 80, 3, 1, False, True),
    (6, 112, 3, 1, True, True),
    (6, 112, 3, 1, True, True),
    (6, 160, 5, 2, True, True),
    (6, 160, 5, 1, True, True),
    (6, 160, 5, 1, True, True),
)


def _activation(x, hard_swish, name):
    if hard_swish:
        return keras.layers.Activation("hard_swish", name=name)(x)
    return keras.layers.ReLU(name=name)(x)


def _squeeze_excite(x, filters, prefix):
    s = keras.layers.GlobalAveragePooling2D(
        keepdims=True, name=f"{prefix}squeeze_excite_avg_pool"
    )(x)
    s = keras.layers.Conv2D(
        _make_divisible(filters * 0.25), 1, name=f"{prefix}squeeze_excite_conv"
    )(s)
    s = keras.layers.ReLU(name=f"{prefix}squeeze_excite_relu")(s)
    s = keras.layers.Conv2D(filters, 1, name=f"{prefix}squeeze_excite_conv_1")(s)
    # hard_sigmoid(x) = relu6(x + 3) / 6, Keras' formula.
    s = keras.layers.Activation("hard_sigmoid", name=f"{prefix}squeeze_excite_hard_sigmoid")(s)
    return keras.layers.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _mobilenetv3(
    blocks, application, inputs, output_stride, weights, norm, alpha, minimalistic
):
    _check_alpha(alpha)
    strider = Strider(output_stride)
    features = {}
    x = Preprocess("tf", name="preprocess")(inputs)
    strides, _ = strider.step(2)
    x = keras.layers.Conv2D(16, 3, strides=strides, padding="same", use_bias=False, name="conv")(x)
    x = norm(x, "conv_bn")
    x = _activation(x, not minimalistic, "conv_activation")

    level = 1
    for block_id, (expansion, filters, kernel, stride, se, swish) in enumerate(blocks):
        if minimalistic:
            kernel, se, swish = 3, False, False
        shortcut = x
        in_channels = x.shape[-1]
        out_channels = _make_divisible(filters * alpha)
        prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
        if block_id:
            x = keras.layers.Conv2D(
                _make_divisible(in_channels * expansion), 1, use_bias=False,
                name=f"{prefix}expand",
            )(x)
            x = norm(x, f"{prefix}expand_bn")
            x = _activation(x, swish, f"{prefix}expand_activation")
        if stride == 2:
            features[f"P{level}"] = x
            level += 1
        strides, dilation = strider.step(stride)
        x = keras.layers.DepthwiseConv2D(
            kernel, strides=strides, dilation_rate=dilation, padding="same", use_bias=False,
            name=f"{prefix}depthwise",
        )(x)
        x = norm(x, f"{prefix}depthwise_bn")
        x = _activation(x, swish, f"{prefix}depthwise_activation")
        if se:
            x = _squeeze_excite(x, _make_divisible(in_channels * expansion), prefix)
        x = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{prefix}project")(x)
        x = norm(x, f"{prefix}project_bn")
        if stride == 1 and in_channels == out_channels:
            x = keras.layers.Add(name=f"{prefix}add")([shortcut, x])

    x = keras.layers.Conv2D(
        _make_divisible(x.shape[-1] * 6), 1, use_bias=False, name="conv_1"
    )(x)
    x = norm(x, "conv_1_bn")
    features["P5"] = _activation(x, not minimalistic, "conv_1_activation")

    if weights is not None:
        load_application_weights(
            inputs, features, application, weights, alpha=alpha, minimalistic=minimalistic
        )
    return features


def mobilenetv3small(
    inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, alpha=1.0, minimalistic=False
):
    """MobileNetV3-Small features by level, with `keras.applications` names.

    Levels: "P1" `conv_activation`, "P2" `expanded_conv_1_expand_activation`,
    "P3" `expanded_conv_3_expand_activation`, "P4"
    `expanded_conv_8_expand_activation`, "P5" `conv_1_activation`. Keras
    leaves activation layers unnamed (they hold no weights); ours are named
    after the batch normalisation they follow. The application's `Rescaling`
    layer is our `Preprocess("tf")`: the same x / 127.5 - 1.

    Args:
        inputs: Keras tensor of raw RGB pixels in [0, 255].
        output_stride: 8, 16 or 32.
        weights: None, "imagenet" or the path of a
            `keras.applications.MobileNetV3Small` weights file built with the
            same `alpha` and `minimalistic`.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        alpha: width multiplier (ImageNet weights: 0.75 and 1.0).
        minimalistic: 3x3 kernels, ReLU and no squeeze-and-excite.

    Returns:
        Dict "P1".."P5" of feature tensors.
    """
    return _mobilenetv3(
        _V3_SMALL, keras.applications.MobileNetV3Small, inputs, output_stride, weights,
        norm, alpha, minimalistic,
    )


def mobilenetv3large(
    inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, alpha=1.0, minimalistic=False
):
    """MobileNetV3-Large features by level, with `keras.applications` names.

    Levels: "P1" `expanded_conv_1_expand_activation`, "P2"
    `expanded_conv_3_expand_activation`, "P3" `expanded_conv_6_expand_activation`,
    "P4" `expanded_conv_12_expand_activation`, "P5" `conv_1_activation`.
    Arguments and activation names as in `mobilenetv3small`; `weights` is
    None, "imagenet" or the path of a `keras.applications.MobileNetV3Large`
    weights file built with the same `alpha` and `minimalistic`.
    """
    return _mobilenetv3(
        _V3_LARGE, keras.applications.MobileNetV3Large, inputs, output_stride, weights,
        norm, alpha, minimalistic,
    )
