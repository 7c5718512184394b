"""Lite R-ASPP (LR-ASPP), the mobile segmentation head of MobileNetV3."""

import keras

from kerasseg.backbones import backbone_name
from kerasseg.layers import ResizeLike
from kerasseg.models.blocks import output_layer
from kerasseg.models.inputs import check_builder_arguments, image_and_features
from kerasseg.utils import check_choice, check_positive_int, load_model_weights

_LEVELS = ("P2", "P3", "P4", "P5")


def lraspp(
    num_classes=19,
    input_shape=(None, None, 3),
    backbone="mobilenetv3large",
    *,
    output_stride=16,
    high_level="P5",
    low_level="P3",
    head_filters=128,
    backbone_kwargs=None,
    norm=None,
    weights=None,
    backbone_weights=None,
    activation=None,
    name=None,
):
    """Builds a Lite R-ASPP segmentation model (MobileNetV3's head).

    The high-level features (stride 16: the backbone runs at `output_stride`
    16, its last stage dilated) go through a 1x1 convolution + BN + ReLU,
    gated channel-wise by a global-average-pooling branch (1x1 convolution,
    sigmoid), in the manner of squeeze-and-excitation. The result is upsampled
    to the low-level (stride 8) features, classified by a 1x1 convolution and
    added to a 1x1 classifier of the low-level features; the sum is resized to
    the input size. Called without arguments it builds the paper's Cityscapes
    configuration: MobileNetV3-Large at output stride 16, 19 classes.

    The paper pools with a large fixed window (49x49, stride (16, 20)); a global
    pool is used here instead (as torchvision does), so the model takes any
    input size and the branch lowers to a single TFLite MEAN at a fixed size.
    Every op is a TFLite builtin: with `num_classes=1, activation="sigmoid"`
    the graph ends in LOGISTIC, with no ARG_MAX for GPU delegates to reject.

    Reference:
        Howard et al., "Searching for MobileNetV3", ICCV 2019.

    Args:
        num_classes: Number of output channels; 1 with `activation="sigmoid"`
            gives a one-channel foreground mask (portrait mode).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None.
        backbone: Name of a backbone in `kerasseg.backbones.BACKBONES`.
        output_stride: Backbone output stride, 8, 16 or 32.
        high_level: Backbone level feeding the R-ASPP branch ("P4" drops the
            backbone's last stage entirely: a smaller, faster model).
        low_level: Backbone level of the skip classifier (stride 8 is "P3").
        head_filters: Channels of the R-ASPP branch.
        backbone_kwargs: Extra keyword arguments for the backbone function
            (for instance the MobileNet width multiplier `alpha`).
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
        weights: Path of a full-model weights file to load, or None.
        backbone_weights: None, "imagenet" or a path, passed to the backbone.
        activation: None for logits, or an activation for the output
            ("sigmoid", "softmax").
        name: Model name; None names it "lraspp_{backbone}".

    Returns:
        A `keras.Model` from images (batch, H, W, channels) to
        (batch, H, W, num_classes); its last layer is named "logits".

    Example:
        >>> cityscapes = lraspp()  # MobileNetV3-Large, 19 classes
        >>> model = lraspp(1, (256, 256, 3), backbone="mobilenetv3small",
        ...                activation="sigmoid")
    """
    input_shape, norm = check_builder_arguments(
        num_classes, input_shape, backbone=backbone, output_stride=output_stride,
        backbone_weights=backbone_weights, norm=norm,
    )
    check_choice("high_level", high_level, _LEVELS)
    check_choice("low_level", low_level, _LEVELS)
    if _LEVELS.index(low_level) >= _LEVELS.index(high_level):
        raise ValueError(
            "`low_level` must be a shallower level than `high_level`. "
            f"Received: low_level={low_level!r}, high_level={high_level!r}"
        )
    check_positive_int("head_filters", head_filters)

    inputs, features = image_and_features(
        input_shape, backbone, output_stride=output_stride, backbone_weights=backbone_weights,
        norm=norm, backbone_kwargs=backbone_kwargs,
    )
    high, low = features[high_level], features[low_level]

    # === Lite R-ASPP ===
    x = keras.layers.Conv2D(head_filters, 1, use_bias=False, name="lraspp_conv")(high)
    x = norm(x, "lraspp_conv_bn")
    x = keras.layers.ReLU(name="lraspp_conv_relu")(x)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(high)
    gate = keras.layers.Conv2D(head_filters, 1, name="lraspp_pool_conv")(gate)
    gate = keras.layers.Activation("sigmoid", name="lraspp_pool_sigmoid")(gate)
    x = keras.layers.Multiply(name="lraspp_gate")([x, gate])
    x = ResizeLike(name="lraspp_upsample")([x, low])

    # === Head ===
    x = keras.layers.Conv2D(num_classes, 1, name="lraspp_high_classifier")(x)
    skip = keras.layers.Conv2D(num_classes, 1, name="lraspp_low_classifier")(low)
    x = keras.layers.Add(name="classifier")([x, skip])
    x = ResizeLike(name="upsample_logits")([x, inputs])
    x = output_layer(x, activation)

    model = keras.Model(inputs, x, name=name or f"lraspp_{backbone_name(backbone)}")
    return load_model_weights(model, weights)
