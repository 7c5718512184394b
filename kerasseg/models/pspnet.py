"""PSPNet: pyramid pooling on a dilated backbone (Zhao et al. 2017).

Reference: [Pyramid Scene Parsing Network](https://arxiv.org/abs/1612.01105).
"""

import keras

from kerasseg.backbones import backbone_name
from kerasseg.layers import ResizeLike
from kerasseg.models.blocks import classifier_head, conv_bn_relu
from kerasseg.models.decoders import pyramid_pooling_module
from kerasseg.models.inputs import check_builder_arguments, image_and_features
from kerasseg.utils import check_positive_int, check_rate, load_model_weights

# Weight of the auxiliary loss in training, from the paper (section 3.3).
AUX_LOSS_WEIGHT = 0.4


def pspnet(
    num_classes=21,
    input_shape=(None, None, 3),
    backbone="resnet50",
    *,
    output_stride=8,
    bins=(1, 2, 3, 6),
    ppm_filters=None,
    head_filters=512,
    dropout=0.1,
    auxiliary=False,
    aux_filters=256,
    backbone_kwargs=None,
    norm=None,
    weights=None,
    backbone_weights=None,
    activation=None,
    name=None,
):
    """PSPNet: a pyramid pooling module on the last feature map of a dilated
    backbone.

    The backbone's "P5" is pooled to each of `bins` x `bins` grids, each
    branch reduced by a 1x1 conv (BN, ReLU) to C / len(bins) channels,
    upsampled bilinearly and concatenated with "P5"; a 3x3 conv (BN, ReLU),
    dropout and a 1x1 classifier follow, and the logits are resized to the
    input. The pooling bins are computed from the dynamic shape, so the model
    runs at any input size and converts to builtin-only TFLite at a fixed one.
    Called without arguments it builds the paper's PASCAL VOC configuration:
    ResNet-50 at output stride 8, 21 classes.

    With `auxiliary=True` a second head on "P4" (3x3 conv, BN, ReLU, dropout,
    classifier) gives a second output "aux_logits", for deep supervision: the
    model returns [logits, aux_logits]; train with
    `loss_weights=[1.0, AUX_LOSS_WEIGHT]` and drop the head with
    `without_auxiliary(model)` for inference and export.

    With ResNet-50, 150 classes and `auxiliary=True`: 49.1M parameters
    (46.7M without the auxiliary head).

    Reference: [Pyramid Scene Parsing Network](https://arxiv.org/abs/1612.01105).

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None.
        backbone: a name in `kerasseg.backbones.BACKBONES`.
        output_stride: 8, 16 or 32 (the paper uses 8).
        bins: grid sizes of the pyramid pooling branches.
        ppm_filters: channels per pooling branch; None uses C / len(bins).
        head_filters: channels of the 3x3 conv after the pyramid pooling.
        dropout: dropout rate before each classifier.
        auxiliary: add the auxiliary "aux_logits" output on "P4".
        aux_filters: channels of the auxiliary head's 3x3 conv.
        backbone_kwargs: extra backbone arguments, e.g. {"alpha": 0.5} for
            MobileNets or {"multi_grid": (1, 2, 4)} for ResNets.
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
        weights: None or the path of a full-model weights file.
        backbone_weights: None, "imagenet" or the path of a backbone weights
            file.
        activation: None for logits, or e.g. "softmax".
        name: model name; None names it "pspnet_<backbone>".

    Returns:
        A functional `keras.Model` from images (B, H, W, C) to (B, H, W,
        num_classes), or to [logits, aux_logits] with `auxiliary=True`.

    Example:

    >>> voc = kerasseg.pspnet()  # PASCAL VOC: ResNet-50, output stride 8, 21 classes
    >>> model = kerasseg.pspnet(150, auxiliary=True)  # ADE20K, with deep supervision
    >>> model.compile("adam", loss=[loss, loss], loss_weights=[1.0, AUX_LOSS_WEIGHT])
    >>> deployable = without_auxiliary(model)
    """
    input_shape, norm = check_builder_arguments(
        num_classes, input_shape, backbone=backbone, output_stride=output_stride,
        backbone_weights=backbone_weights, norm=norm,
    )
    check_positive_int("head_filters", head_filters)
    check_positive_int("aux_filters", aux_filters)
    check_rate("dropout", dropout)

    # === Backbone ===
    inputs, features = image_and_features(
        input_shape, backbone, output_stride=output_stride, backbone_weights=backbone_weights,
        norm=norm, backbone_kwargs=backbone_kwargs,
    )

    # === Auxiliary head (training only) ===
    if auxiliary:
        aux = conv_bn_relu(
            features["P4"], aux_filters, 3, "aux_conv", norm=norm
        )
        aux = keras.layers.Dropout(dropout, name="aux_dropout")(aux)
        aux = keras.layers.Conv2D(num_classes, 1, name="aux_classifier")(aux)
        aux = ResizeLike(name="aux_upsample")([aux, inputs])
        aux = keras.layers.Activation(
            activation or "linear", dtype="float32", name="aux_logits"
        )(aux)

    # === Pyramid pooling and head ===
    x = pyramid_pooling_module(features["P5"], bins, ppm_filters, norm=norm)
    x = conv_bn_relu(x, head_filters, 3, "head_conv", norm=norm)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = classifier_head(x, num_classes, inputs, activation)

    outputs = [logits, aux] if auxiliary else logits
    model = keras.Model(inputs, outputs, name=name or f"pspnet_{backbone_name(backbone)}")
    return load_model_weights(model, weights)


def without_auxiliary(model):
    """The same model (shared layers and weights) with only its "logits"
    output, for inference and export of a model trained with auxiliary heads."""
    return keras.Model(model.input, model.get_layer("logits").output, name=model.name)
