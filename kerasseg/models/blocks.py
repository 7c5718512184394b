"""Small functional building blocks shared by the decoders and heads."""

import keras

from kerasseg.layers import DEFAULT_NORM


def conv_bn_relu(
    x,
    filters,
    kernel_size,
    name,
    *,
    strides=1,
    dilation_rate=1,
    separable=False,
    norm=DEFAULT_NORM,
    activation="relu",
):
    """Conv (or depthwise-separable conv) + BatchNorm + activation.

    Layer names: `{name}` for the conv (`{name}_depthwise` / `{name}_pointwise`
    when separable, each followed by its own BN, as in DeepLabv3+), `{name}_bn`
    and `{name}_relu`.
    """
    if separable and kernel_size > 1:
        x = keras.layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=False,
            name=f"{name}_depthwise",
        )(x)
        x = norm(x, f"{name}_depthwise_bn")
        x = keras.layers.Activation(activation, name=f"{name}_depthwise_relu")(x)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pointwise")(x)
    else:
        x = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=False,
            name=name,
        )(x)
    x = norm(x, f"{name}_bn")
    return keras.layers.Activation(activation, name=f"{name}_relu")(x)


def classifier_head(x, num_classes, inputs, activation=None, align_corners=False):
    """1x1 classifier "classifier", bilinear resize to the input size
    ("upsample_logits", corner-aligned with `align_corners`), then `output_layer`."""
    from kerasseg.layers import ResizeLike

    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = ResizeLike(align_corners=align_corners, name="upsample_logits")([x, inputs])
    return output_layer(x, activation)


def output_layer(x, activation=None):
    """The last layer of every builder: named "logits", float32 even under a
    mixed-precision policy, applying `activation` (None keeps logits)."""
    return keras.layers.Activation(activation or "linear", dtype="float32", name="logits")(x)
