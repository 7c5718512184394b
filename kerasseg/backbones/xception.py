"""Aligned Xception-65, the DeepLabv3+ backbone (Chen et al. 2018).

Reference: [Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation](https://arxiv.org/abs/1802.02611), section 3.3.

Differences from Chollet's Xception (`keras.applications.Xception`, which
has other layers and so cannot share weights): 16 middle-flow blocks instead
of 8, every max pooling replaced by a separable convolution with stride 2,
and batch normalisation plus ReLU after every 3x3 depthwise convolution, as
in MobileNet. Strided 3x3 convolutions pad one pixel on every side (DeepLab's
"fixed padding"), so their taps stay aligned with the strided 1x1 shortcuts.
"""

import keras

from kerasseg.backbones.strides import Strider
from kerasseg.backbones.weights import check_backbone_weights
from kerasseg.layers import DEFAULT_NORM, Preprocess

_EPSILON = 1e-3
_MIDDLE_BLOCKS = 16


def _pad_if_strided(x, strides, name):
    if strides == 1:
        return x, "same"
    return keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x), "valid"


def _conv(x, filters, strides, name, norm):
    x, padding = _pad_if_strided(x, strides, name)
    x = keras.layers.Conv2D(
        filters, 3, strides=strides, padding=padding, use_bias=False, name=name
    )(x)
    x = norm(x, f"{name}_bn", _EPSILON)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def _separable(x, filters, strides, dilation, name, norm, relu=True):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN (+ ReLU)."""
    x, padding = _pad_if_strided(x, strides, name)
    x = keras.layers.DepthwiseConv2D(
        3, strides=strides, dilation_rate=dilation, padding=padding, use_bias=False,
        name=f"{name}_depthwise",
    )(x)
    x = norm(x, f"{name}_depthwise_bn", _EPSILON)
    x = keras.layers.Activation("relu", name=f"{name}_depthwise_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pointwise")(x)
    x = norm(x, f"{name}_pointwise_bn", _EPSILON)
    if relu:
        x = keras.layers.Activation("relu", name=f"{name}_pointwise_relu")(x)
    return x


def _block(x, depths, stride, shortcut, strider, name, norm):
    """Three separable convs, the last one strided, plus a residual.

    Returns the block output and the output of the second conv (the last
    tensor at the block's input stride).
    """
    inputs = x
    # The whole block keeps the dilation it starts with, as in DeepLab.
    dilation = strider.dilation
    strides, _ = strider.step(stride)
    for index, filters in enumerate(depths, start=1):
        last = index == len(depths)
        x = _separable(
            x, filters, strides if last else 1, dilation, f"{name}_sepconv{index}",
            norm, relu=not (last and shortcut),
        )
        if index == 2:
            before_stride = x
    if shortcut == "conv":
        inputs = keras.layers.Conv2D(
            depths[-1], 1, strides=strides, use_bias=False, name=f"{name}_shortcut"
        )(inputs)
        inputs = norm(inputs, f"{name}_shortcut_bn", _EPSILON)
    if shortcut:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
        x = keras.layers.Activation("relu", name=f"{name}_out")(x)
    return x, before_stride


def xception65(inputs, output_stride=32, weights=None, norm=DEFAULT_NORM):
    """Aligned Xception-65 features by level.

    Levels ("Pn" is the last tensor at stride 2^n before the network strides
    again): "P1" `entry_flow_block1_sepconv2_pointwise_relu` (128 channels),
    "P2" `entry_flow_block2_sepconv2_pointwise_relu` (256, DeepLabv3+'s
    low-level feature), "P3" `entry_flow_block3_sepconv2_pointwise_relu`
    (728), "P4" `exit_flow_block1_sepconv2_pointwise_relu` (1024), "P5"
    `exit_flow_block2_sepconv3_pointwise_relu` (2048). Past `output_stride`
    the strided block keeps stride 1 and the blocks after it dilate.

    Args:
        inputs: Keras tensor of raw RGB pixels in [0, 255] (normalised to
            [-1, 1] inside, as in DeepLab).
        output_stride: 8, 16 or 32.
        weights: None or the path of a weights file saved from
            `keras.Model(inputs, xception65(inputs))`. No ImageNet weights
            exist in Keras for this network, so "imagenet" is an error.
        norm: the `BatchNormSettings` of every BatchNormalization layer.

    Returns:
        Dict "P1".."P5" of feature tensors.
    """
    if weights == "imagenet":
        raise ValueError(
            "No Keras ImageNet weights exist for the aligned Xception-65 "
            "(keras.applications.Xception is a different network). Pass "
            "backbone_weights=None, or the path of a weights file saved from "
            "`keras.Model(inputs, xception65(inputs))`. Received: backbone_weights='imagenet'"
        )
    check_backbone_weights(weights, inputs.shape[-1])
    strider = Strider(output_stride)
    features = {}
    x = Preprocess("tf", name="preprocess")(inputs)
    strides, _ = strider.step(2)
    x = _conv(x, 32, strides, "entry_flow_conv1", norm)
    x = _conv(x, 64, 1, "entry_flow_conv2", norm)
    for index, filters in enumerate((128, 256, 728), start=1):
        x, features[f"P{index}"] = _block(
            x, (filters,) * 3, 2, "conv", strider, f"entry_flow_block{index}", norm
        )
    for index in range(1, _MIDDLE_BLOCKS + 1):
        x, _ = _block(
            x, (728,) * 3, 1, "identity", strider, f"middle_flow_block{index}", norm
        )
    x, features["P4"] = _block(
        x, (728, 1024, 1024), 2, "conv", strider, "exit_flow_block1", norm
    )
    features["P5"], _ = _block(
        x, (1536, 1536, 2048), 1, None, strider, "exit_flow_block2", norm
    )
    if weights is not None:
        keras.Model(inputs, features).load_weights(weights)
    return features
