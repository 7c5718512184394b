"""Context decoders on the deepest feature map: ASPP (DeepLab) and the
pyramid pooling module (PSPNet). Each is a function from a Keras tensor to a
Keras tensor, so any builder (LPSNet too) can reuse it.

Both work at any input size in Keras and lower to TFLite builtins at a fixed
size: global and adaptive pooling become MEAN (and STRIDED_SLICE), the
resizes RESIZE_BILINEAR.
"""

import keras

from kerasseg.layers import DEFAULT_NORM, ResizeLike
from kerasseg.layers.adaptive_pooling import AdaptiveAveragePooling2D
from kerasseg.models.blocks import conv_bn_relu
from kerasseg.utils import check_choice, check_positive_int

# Atrous rates of the three 3x3 ASPP branches at output stride 16 (DeepLabv3).
ASPP_RATES_AT_16 = (6, 12, 18)


def aspp_rates(output_stride):
    """ASPP rates for `output_stride`: (6, 12, 18) at 16, doubled at 8 and
    halved at 32, so the branches see the same image area at every stride."""
    check_choice("output_stride", output_stride, (8, 16, 32))
    return tuple(rate * 16 // output_stride for rate in ASPP_RATES_AT_16)


def check_aspp_rates(rates):
    """Raise ValueError unless `rates` is a sequence of positive integers."""
    if not isinstance(rates, (tuple, list)) or not all(
        isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rates
    ):
        raise ValueError(
            f"`aspp_rates` must be positive integers, e.g. (6, 12, 18). Received: {rates!r}"
        )
    return tuple(rates)


def aspp(
    x,
    filters=256,
    rates=ASPP_RATES_AT_16,
    *,
    separable=False,
    image_pooling=True,
    dropout=0.1,
    norm=DEFAULT_NORM,
    name="aspp",
):
    """Atrous spatial pyramid pooling (DeepLabv3, section 3.3).

    A 1x1 conv, one 3x3 atrous conv per rate, and an image-level branch
    (global average pooling, 1x1 conv, bilinear resize back), each with BN
    and ReLU; concatenated and projected by a 1x1 conv with BN, ReLU and
    dropout.

    Reference: [Rethinking Atrous Convolution for Semantic Image
    Segmentation](https://arxiv.org/abs/1706.05587).

    Args:
        x: feature map (NHWC Keras tensor).
        filters: channels of every branch and of the projection.
        rates: dilation rates of the 3x3 branches (see `aspp_rates`).
        separable: depthwise-separable 3x3 branches, as in DeepLabv3+.
        image_pooling: include the image-level pooling branch.
        dropout: dropout rate after the projection.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        name: prefix of every layer name.

    Returns:
        Tensor with `filters` channels at the resolution of `x`.

    Example:

    >>> features = keras.Input((None, None, 320))
    >>> y = aspp(features, filters=64, rates=aspp_rates(16), separable=True)
    """
    check_positive_int("filters", filters)
    check_aspp_rates(rates)
    branches = [conv_bn_relu(x, filters, 1, f"{name}_conv_0", norm=norm)]
    for index, rate in enumerate(rates, start=1):
        branches.append(
            conv_bn_relu(
                x, filters, 3, f"{name}_conv_{index}", dilation_rate=rate,
                separable=separable, norm=norm,
            )
        )
    if image_pooling:
        pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
        pooled = conv_bn_relu(
            pooled, filters, 1, f"{name}_pool_conv", norm=norm
        )
        # A bilinear resize of a 1x1 map is a broadcast; it stays one builtin op.
        branches.append(ResizeLike(name=f"{name}_pool_resize")([pooled, x]))
    y = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_bn_relu(y, filters, 1, f"{name}_projection", norm=norm)
    return keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)


def pyramid_pooling_module(x, bins=(1, 2, 3, 6), filters=None, *, norm=DEFAULT_NORM,
                           name="ppm"):
    """Pyramid pooling module (PSPNet, section 3.2).

    For each bin count b: adaptive average pooling to b x b, 1x1 conv with BN
    and ReLU, bilinear upsampling to the size of `x`; the branches are
    concatenated with `x` itself.

    Reference: [Pyramid Scene Parsing Network](https://arxiv.org/abs/1612.01105).

    Args:
        x: feature map (NHWC Keras tensor).
        bins: grid sizes of the pooling branches.
        filters: channels per branch; None uses C / len(bins), the paper's
            C / 4 for four bins.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        name: prefix of every layer name.

    Returns:
        Tensor with C + len(bins) * filters channels at the resolution of `x`.

    Example:

    >>> features = keras.Input((None, None, 2048))
    >>> y = pyramid_pooling_module(features)  # 4096 channels
    """
    if (
        not isinstance(bins, (tuple, list))
        or not bins
        or len(set(bins)) != len(bins)
        or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in bins)
    ):
        raise ValueError(
            f"`bins` must be distinct positive integers, e.g. (1, 2, 3, 6). Received: bins={bins!r}"
        )
    if filters is None:
        filters = max(1, x.shape[-1] // len(bins))
    check_positive_int("filters", filters)
    branches = [x]
    for size in bins:
        y = AdaptiveAveragePooling2D(size, name=f"{name}_pool_{size}")(x)
        y = conv_bn_relu(y, filters, 1, f"{name}_conv_{size}", norm=norm)
        branches.append(ResizeLike(name=f"{name}_resize_{size}")([y, x]))
    return keras.layers.Concatenate(name=f"{name}_concat")(branches)
