"""Dilated ResNet-50/101 (He et al. 2016) with `keras.applications` names.

Reference: [Deep Residual Learning for Image Recognition](https://arxiv.org/abs/1512.03385);
dilation and multi-grid from [Rethinking Atrous Convolution for Semantic
Image Segmentation](https://arxiv.org/abs/1706.05587) (DeepLabv3).
"""

import keras

from kerasseg.backbones.weights import load_application_weights
from kerasseg.layers import DEFAULT_NORM, Preprocess

# (stage name, bottleneck filters) per stage; blocks per stage depend on depth.
_STAGES = (("conv2", 64), ("conv3", 128), ("conv4", 256), ("conv5", 512))
_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
_APPLICATIONS = {50: "ResNet50", 101: "ResNet101"}
_EPSILON = 1.001e-5


def _bottleneck(x, filters, stride, dilation, shortcut_conv, name, norm):
    """Keras' ResNet v1 bottleneck: the stride sits in the first 1x1 conv."""
    if shortcut_conv:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = norm(shortcut, f"{name}_0_bn", _EPSILON)
    else:
        shortcut = x
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = norm(x, f"{name}_1_bn", _EPSILON)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = keras.layers.Conv2D(
        filters, 3, padding="same", dilation_rate=dilation, name=f"{name}_2_conv"
    )(x)
    x = norm(x, f"{name}_2_bn", _EPSILON)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = norm(x, f"{name}_3_bn", _EPSILON)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _resnet(depth, inputs, output_stride, weights, norm, multi_grid):
    blocks = _BLOCKS[depth]
    if multi_grid is None:
        multi_grid = (1,) * blocks[-1]
    if (
        not isinstance(multi_grid, (tuple, list))
        or len(multi_grid) != blocks[-1]
        or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in multi_grid)
    ):
        raise ValueError(
            f"`multi_grid` must be None or {blocks[-1]} positive integers (one per block "
            f"of the last stage), e.g. (1, 2, 4). Received: multi_grid={multi_grid!r}"
        )

    x = Preprocess("caffe", name="preprocess")(inputs)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = norm(x, "conv1_bn", _EPSILON)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    features = {"P1": x}
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    stride, dilation = 4, 1
    for level, ((stage, filters), count) in enumerate(zip(_STAGES, blocks), start=2):
        stage_stride = 1 if level == 2 else 2
        # Past the output stride a stage keeps the resolution and dilates instead.
        if stride * stage_stride > output_stride:
            dilation *= stage_stride
            stage_stride = 1
        stride *= stage_stride
        for index in range(1, count + 1):
            rate = dilation * (multi_grid[index - 1] if stage == "conv5" else 1)
            x = _bottleneck(
                x,
                filters,
                stride=stage_stride if index == 1 else 1,
                dilation=rate,
                shortcut_conv=index == 1,
                name=f"{stage}_block{index}",
                norm=norm,
            )
        features[f"P{level}"] = x

    if weights is not None:
        application = getattr(keras.applications, _APPLICATIONS[depth])
        load_application_weights(inputs, features, application, weights)
    return features


def resnet50(inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, multi_grid=None):
    """ResNet-50 features by level, with `keras.applications.ResNet50` names.

    Levels: "P1" `conv1_relu`, "P2" `conv2_block3_out`, "P3" `conv3_block4_out`,
    "P4" `conv4_block6_out`, "P5" `conv5_block3_out`. Stages past
    `output_stride` keep their input resolution and dilate every 3x3
    convolution instead (rate 2 for conv5 at output stride 16; 2 and 4 for
    conv4 and conv5 at output stride 8).

    Args:
        inputs: Keras tensor of raw RGB pixels in [0, 255].
        output_stride: 8, 16 or 32.
        weights: None, "imagenet" or the path of a `keras.applications.ResNet50`
            weights file.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        multi_grid: None or three rates multiplying the dilation of the three
            conv5 blocks, e.g. (1, 2, 4) as in DeepLabv3.

    Returns:
        Dict "P1".."P5" of feature tensors.
    """
    return _resnet(50, inputs, output_stride, weights, norm, multi_grid)


def resnet101(inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, multi_grid=None):
    """ResNet-101 features by level, with `keras.applications.ResNet101` names.

    As `resnet50` (the same arguments, levels and dilation), with 23 conv4
    blocks: "P4" is `conv4_block23_out`, and `weights` is None, "imagenet" or
    the path of a `keras.applications.ResNet101` weights file.
    """
    return _resnet(101, inputs, output_stride, weights, norm, multi_grid)
