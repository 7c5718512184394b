"""How every builder starts: its shared arguments checked, then its image
input and backbone features. Builder-specific checks go between the two, so
every argument is checked before any layer is built."""

import keras

from kerasseg.backbones import BACKBONES, OUTPUT_STRIDES, backbone_features, check_backbone
from kerasseg.backbones.weights import check_backbone_weights
from kerasseg.layers import DEFAULT_NORM, batch_norm_settings
from kerasseg.pretrained import is_backbone_weights, load_backbone_weights
from kerasseg.utils import check_choice, check_input_shape, check_positive_int


def check_builder_arguments(
    num_classes, input_shape, *, backbone=None, output_stride=None, backbone_weights=None,
    backbones=tuple(BACKBONES), norm=None,
):
    """Checks the arguments builders share; returns (input_shape as a tuple,
    the `BatchNormSettings` of `norm`).

    Args:
        num_classes: the builder's `num_classes` (>= 1).
        input_shape: the builder's (height, width, channels).
        backbone: the builder's `backbone`, or None for a builder without one:
            a name of `backbones`, or (when every backbone is allowed) your
            own model or callable (`kerasseg.backbones.CONTRACT`).
        output_stride: the builder's `output_stride`, or None for a builder
            without one.
        backbone_weights: None, "imagenet" or a path; ImageNet weights need
            3 input channels.
        backbones: the names `backbone` may take.
        norm: the builder's `norm` (`kerasseg.layers.batch_norm_settings`).
    """
    check_positive_int("num_classes", num_classes)
    input_shape = check_input_shape(input_shape)
    if backbone is not None:
        check_backbone(backbone, backbones)
    if output_stride is not None:
        check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    check_backbone_weights(backbone_weights, input_shape[-1])
    return input_shape, batch_norm_settings(norm)


def image_input(input_shape):
    """The model input every builder takes: raw pixels, named "image"."""
    return keras.Input(shape=input_shape, name="image")


def image_and_features(
    input_shape, backbone, *, output_stride=32, backbone_weights=None, norm=DEFAULT_NORM,
    backbone_kwargs=None,
):
    """The image input and the backbone's features by level, for arguments
    already checked by `check_builder_arguments`; returns (inputs, features)."""
    inputs = image_input(input_shape)
    from_file = is_backbone_weights(backbone_weights)
    features = backbone_features(
        backbone, inputs, output_stride=output_stride,
        weights=None if from_file else backbone_weights, norm=norm,
        **(backbone_kwargs or {}),
    )
    if from_file:
        load_backbone_weights(keras.Model(inputs, features), backbone_weights)
    return inputs, features
