"""MobileNet-EdgeTPU: fused expansion convolutions early, 5x5 depthwise ones late.

Reference: [Searching for MobileNetV3](https://arxiv.org/abs/1905.02244) and
Google's MobileNet-EdgeTPU (tensorflow/models research/slim
`mobilenet_v3.V3_EDGETPU`), the backbone of the Coral
`deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite` file.

Early stages use *fused* inverted residual blocks: the 1x1 expansion and
the 3x3 depthwise convolution of MobileNetV2 are one plain 3x3 convolution,
which accelerators (and XNNPACK's int8 kernels) run far better than a
depthwise one. Later stages are MobileNetV2 blocks with ReLU, 5x5 depthwise
kernels in the stride-32 stage. The first block of each stage (expansion 8)
has no residual connection, as in the reference graph.

Layer names follow the reference's scopes with "/" as "_"
(`expanded_conv_3_expand`, `expanded_conv_3_expand_bn`, ...), so that
`kerasseg.pretrained` maps the file's tensors onto them by name.
"""

import keras

from kerasseg.backbones.mobilenet import _check_alpha, _make_divisible
from kerasseg.backbones.strides import Strider
from kerasseg.layers import DEFAULT_NORM, Preprocess

# (fused, expansion, filters, kernel, stride, residual) per block 0..21.
_BLOCKS = (
    (True, 1, 16, 3, 1, False),
    (True, 8, 32, 3, 2, False), (True, 4, 32, 3, 1, True), (True, 4, 32, 3, 1, True),
    (True, 4, 32, 3, 1, True),
    (True, 8, 48, 3, 2, False), (True, 4, 48, 3, 1, True), (True, 4, 48, 3, 1, True),
    (True, 4, 48, 3, 1, True),
    (False, 8, 96, 3, 2, False), (False, 4, 96, 3, 1, True), (False, 4, 96, 3, 1, True),
    (False, 4, 96, 3, 1, True),
    (False, 8, 96, 3, 1, False), (False, 4, 96, 3, 1, True), (False, 4, 96, 3, 1, True),
    (False, 4, 96, 3, 1, True),
    (False, 8, 160, 5, 2, False), (False, 4, 160, 5, 1, True), (False, 4, 160, 5, 1, True),
    (False, 4, 160, 5, 1, True),
    (False, 8, 192, 3, 1, False),
)


def _conv_bn(x, filters, kernel, name, norm, strides=1, relu=True):
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=name
    )(x)
    x = norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def mobilenet_edgetpu(
    inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, alpha=0.75,
):
    """MobileNet-EdgeTPU features by level.

    Levels: "Pn" is the last tensor at stride 2^n before the network strides
    again: the input of a fused strided block (its 3x3 expansion strides),
    the expanded activation before a strided depthwise convolution, and
    "P5" the 1280-channel last 1x1 convolution (`Conv_1_relu`).

    Args:
        inputs: Keras tensor of raw RGB pixels in [0, 255].
        output_stride: 8, 16 or 32.
        weights: None; trained weights come from a preset
            (`kerasseg.pretrained`), e.g. the builder's
            `weights="cityscapes"`.
        norm: the model's `kerasseg.layers.BatchNormSettings`.
        alpha: width multiplier; 0.75 is the Coral Cityscapes file's
            ("slim") width, 1.0 the paper's.

    Returns:
        Dict "P1".."P5" of feature tensors.
    """
    _check_alpha(alpha)
    if weights is not None:
        raise ValueError(
            "mobilenet_edgetpu has no keras.applications weights; load a preset with the "
            f"builder's `weights=` instead. Received: weights={weights!r}"
        )
    strider = Strider(output_stride)
    features = {}
    x = Preprocess("tf", name="preprocess")(inputs)
    strides, _ = strider.step(2)
    x = _conv_bn(x, _make_divisible(32 * alpha), 3, "Conv", norm, strides=strides)

    level = 1
    for block_id, (fused, expansion, filters, kernel, stride, residual) in enumerate(_BLOCKS):
        prefix = f"expanded_conv_{block_id}" if block_id else "expanded_conv"
        shortcut = x
        inner = _make_divisible(x.shape[-1] * expansion)
        if stride == 2 and fused:
            features[f"P{level}"] = x
        strides, dilation = strider.step(stride)
        if fused and inner != x.shape[-1]:
            # The reference skips an expansion to the input width: block 0
            # is its 1x1 projection alone.
            x = keras.layers.Conv2D(
                inner, kernel, strides=strides, dilation_rate=dilation, padding="same",
                use_bias=False, name=f"{prefix}_expand",
            )(x)
            x = norm(x, f"{prefix}_expand_bn")
            x = keras.layers.ReLU(name=f"{prefix}_expand_relu")(x)
        elif not fused:
            x = _conv_bn(x, inner, 1, f"{prefix}_expand", norm)
            if stride == 2:
                features[f"P{level}"] = x
            x = keras.layers.DepthwiseConv2D(
                kernel, strides=strides, dilation_rate=dilation, padding="same",
                use_bias=False, name=f"{prefix}_depthwise",
            )(x)
            x = norm(x, f"{prefix}_depthwise_bn")
            x = keras.layers.ReLU(name=f"{prefix}_depthwise_relu")(x)
        if stride == 2:
            level += 1
        x = _conv_bn(
            x, _make_divisible(filters * alpha), 1, f"{prefix}_project", norm, relu=False,
        )
        if residual:
            x = keras.layers.Add(name=f"{prefix}_add")([shortcut, x])

    features["P5"] = _conv_bn(x, 1280, 1, "Conv_1", norm)
    return features
