"""DeepLabv3 and DeepLabv3+: ASPP on a dilated backbone (Chen et al. 2017, 2018).

References: [Rethinking Atrous Convolution for Semantic Image Segmentation](
https://arxiv.org/abs/1706.05587); [Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation](https://arxiv.org/abs/1802.02611).
"""

import inspect

import keras

from kerasseg.backbones import backbone_name
from kerasseg.layers import ResizeLike
from kerasseg.models.blocks import classifier_head, conv_bn_relu
from kerasseg.models.decoders import aspp, aspp_rates, check_aspp_rates
from kerasseg.models.inputs import check_builder_arguments, image_and_features
from kerasseg.pretrained import load_model_weights, preset_defaults
from kerasseg.utils import check_choice, check_positive_int, check_rate

# ResNet blocks of the last stage get rates (1, 2, 4) x the stage's dilation
# in DeepLabv3 ("multi-grid"); other backbones have no such stage.
_MULTI_GRID = (1, 2, 4)
# Backbones whose DeepLabv3 defaults are the reference implementation's
# (tensorflow/models research/deeplab, model_variant "mobilenet_v2": empty
# atrous_rates, no decoder): ASPP of the 1x1 and image-pooling branches only,
# on the 320-channel last block rather than the 1280-channel last conv.
_REFERENCE_MOBILE = {"mobilenetv2": {"include_last_conv": False}}


def _encoder(
    num_classes, input_shape, backbone, *, output_stride, multi_grid, aspp_filters, rates,
    separable, dropout, backbone_kwargs, norm, backbone_weights,
):
    """Validates the shared arguments; returns (inputs, features, ASPP output,
    the `BatchNormSettings`)."""
    input_shape, norm = check_builder_arguments(
        num_classes, input_shape, backbone=backbone, output_stride=output_stride,
        backbone_weights=backbone_weights, norm=norm,
    )
    check_positive_int("aspp_filters", aspp_filters)
    check_rate("dropout", dropout)
    backbone_kwargs = dict(backbone_kwargs or {})
    if isinstance(backbone, str) and backbone.startswith("resnet"):
        backbone_kwargs["multi_grid"] = _MULTI_GRID if multi_grid is None else multi_grid
    elif multi_grid is not None:
        raise ValueError(
            "`multi_grid` applies to ResNet backbones only. "
            f"Received: backbone={backbone!r}, multi_grid={multi_grid!r}"
        )
    rates = aspp_rates(output_stride) if rates is None else check_aspp_rates(rates)

    inputs, features = image_and_features(
        input_shape, backbone, output_stride=output_stride, backbone_weights=backbone_weights,
        norm=norm, backbone_kwargs=backbone_kwargs,
    )
    x = aspp(features["P5"], aspp_filters, rates, separable=separable, dropout=dropout, norm=norm)
    return inputs, features, x, norm


def deeplabv3(
    num_classes=21,
    input_shape=(None, None, 3),
    backbone="resnet101",
    *,
    output_stride=16,
    multi_grid=None,
    aspp_filters=256,
    aspp_rates=None,
    separable=False,
    dropout=0.1,
    backbone_kwargs=None,
    align_corners=False,
    norm=None,
    weights=None,
    backbone_weights=None,
    activation=None,
    name=None,
):
    """DeepLabv3: atrous spatial pyramid pooling on a dilated backbone.

    ASPP (a 1x1 conv, three 3x3 atrous convs, image-level pooling, each with
    BN and ReLU, then a 1x1 projection with dropout) on the backbone's "P5",
    a 1x1 classifier and bilinear upsampling of the logits to the input size.
    The atrous rates follow the output stride: (6, 12, 18) at 16, doubled at 8.
    Called without arguments it builds the paper's PASCAL VOC configuration:
    ResNet-101 at output stride 16, multi-grid (1, 2, 4), 21 classes.

    With backbone="mobilenetv2" the defaults are those of the reference
    implementation's MobileNetV2 model (tensorflow/models research/deeplab,
    the model of Google's quantized `deeplabv3_mnv2_pascal_quant.tflite`):
    no atrous branches, only the 1x1 and image-pooling ones, on the
    320-channel last block (the MobileNetV2 paper's DeepLabv3 head, section
    6.3): 2.1M parameters for 21 classes. `aspp_rates=(6, 12, 18)` and
    `backbone_kwargs={"include_last_conv": True}` give the full ASPP on the
    1280-channel last conv (12.1M).

    Reference: [Rethinking Atrous Convolution for Semantic Image
    Segmentation](https://arxiv.org/abs/1706.05587).

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None.
        backbone: a name in `kerasseg.backbones.BACKBONES`, or your own
            `keras.Model` or callable returning {"P1": ..., "P5": ...}
            (`kerasseg.backbones`).
        output_stride: 8, 16 or 32.
        multi_grid: rates of the last ResNet stage's blocks relative to its
            dilation; None uses the paper's (1, 2, 4) on ResNets. Other
            backbones take None only.
        aspp_filters: channels of the ASPP branches and projection.
        aspp_rates: atrous rates of the 3x3 branches; None derives them
            from `output_stride` (`kerasseg.models.decoders.aspp_rates`), or
            none for "mobilenetv2" (the reference's).
        separable: depthwise-separable ASPP convolutions.
        dropout: dropout rate after the ASPP projection.
        backbone_kwargs: extra backbone arguments, e.g. {"alpha": 0.5}.
        align_corners: upsample the logits with TF1's corner-aligned
            bilinear resize, as the reference implementation and Google's
            files do (the presets set it).
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
        weights: None, the path of a full-model weights file or `.tflite`
            file, or a preset: its name or its dataset for this backbone and
            width ("pascal_voc" for "mobilenetv2" at alpha 1.0 and 0.5,
            "cityscapes" for "mobilenet_edgetpu"; `kerasseg.pretrained`).
            A preset with another class count loads all but the classifier.
        backbone_weights: None, "imagenet", a backbone preset
            ("mobilenetv2_imagenet_quant") or the path of a backbone weights
            or `.tflite` file.
        activation: None for logits, or e.g. "softmax".
        name: model name; None names it "deeplabv3_<backbone>".

    Returns:
        A functional `keras.Model` from images (B, H, W, C) to (B, H, W,
        num_classes).

    Example:

    >>> model = kerasseg.deeplabv3(21, backbone="resnet50", backbone_weights="imagenet")
    >>> phone = kerasseg.deeplabv3(21, backbone="mobilenetv2", backbone_weights="imagenet")
    >>> voc = kerasseg.deeplabv3(backbone="mobilenetv2", align_corners=True, weights="pascal_voc")
    """
    from_preset = preset_defaults("deeplabv3", locals(), _DEFAULTS)
    if from_preset is not None:
        return deeplabv3(**from_preset)
    if isinstance(backbone, str) and backbone in _REFERENCE_MOBILE:
        aspp_rates = () if aspp_rates is None else aspp_rates
        backbone_kwargs = {**_REFERENCE_MOBILE[backbone], **(backbone_kwargs or {})}
    inputs, _, x, _ = _encoder(
        num_classes, input_shape, backbone, output_stride=output_stride, multi_grid=multi_grid,
        aspp_filters=aspp_filters, rates=aspp_rates, separable=separable, dropout=dropout,
        backbone_kwargs=backbone_kwargs, norm=norm, backbone_weights=backbone_weights,
    )
    outputs = classifier_head(x, num_classes, inputs, activation, align_corners=align_corners)
    model = keras.Model(inputs, outputs, name=name or f"deeplabv3_{backbone_name(backbone)}")
    return load_model_weights(model, weights, "deeplabv3", backbone, backbone_kwargs)


_DEFAULTS = {
    key: parameter.default for key, parameter in inspect.signature(deeplabv3).parameters.items()
}


def deeplabv3plus(
    num_classes=21,
    input_shape=(None, None, 3),
    backbone="xception65",
    *,
    output_stride=16,
    multi_grid=None,
    aspp_filters=256,
    aspp_rates=None,
    separable=True,
    low_level_filters=48,
    decoder_filters=256,
    dropout=0.1,
    backbone_kwargs=None,
    norm=None,
    weights=None,
    backbone_weights=None,
    activation=None,
    name=None,
):
    """DeepLabv3+: DeepLabv3's ASPP encoder with a light decoder at stride 4.

    Called without arguments it builds the paper's PASCAL VOC configuration:
    aligned Xception-65 at output stride 16, ASPP rates (6, 12, 18), 21
    classes, depthwise-separable ASPP and decoder convolutions (41.3M
    parameters). The decoder projects the stride-4 features ("P2") to
    `low_level_filters` channels (1x1 conv, BN, ReLU), concatenates them with
    the ASPP output upsampled to their size, applies two 3x3 convs of
    `decoder_filters` (BN, ReLU), a 1x1 classifier, and upsamples the logits
    to the input size.

    Reference: [Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation](https://arxiv.org/abs/1802.02611).

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None.
        backbone: a name in `kerasseg.backbones.BACKBONES`, e.g.
            "mobilenetv2" or "mobilenetv3small" for phones, or your own
            `keras.Model` or callable returning {"P1": ..., "P5": ...}
            (`kerasseg.backbones`).
        output_stride: 8, 16 or 32.
        multi_grid: rates of the last ResNet stage's blocks relative to its
            dilation; None uses (1, 2, 4) on ResNets. Other backbones take
            None only.
        aspp_filters: channels of the ASPP branches and projection.
        aspp_rates: atrous rates of the three 3x3 branches; None derives them
            from `output_stride`.
        separable: True for depthwise-separable ASPP and decoder
            convolutions (the paper's), False for plain ones, or "aspp" for
            separable ASPP branches and plain 3x3 decoder convolutions, the
            quickstart model's choice for int8 on CPUs: XNNPACK runs int8
            depthwise convolutions no faster than float ones and plain ones
            several times faster (figures: the README's "int8 speed").
        low_level_filters: channels of the projected stride-4 features.
        decoder_filters: channels of the two decoder convolutions.
        dropout: dropout rate after the ASPP projection.
        backbone_kwargs: extra backbone arguments, e.g. {"alpha": 0.5}.
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
        weights: None or the path of a full-model weights file.
        backbone_weights: None, "imagenet" or the path of a backbone weights
            file (Xception-65 has no Keras ImageNet weights).
        activation: None for logits, or e.g. "softmax".
        name: model name; None names it "deeplabv3plus_<backbone>".

    Returns:
        A functional `keras.Model` from images (B, H, W, C) to (B, H, W,
        num_classes).

    Example:

    >>> model = kerasseg.deeplabv3plus()  # the paper's configuration
    >>> phone = kerasseg.deeplabv3plus(2, backbone="mobilenetv3small", backbone_weights="imagenet")
    """
    check_positive_int("low_level_filters", low_level_filters)
    check_positive_int("decoder_filters", decoder_filters)
    check_choice("separable", separable, (True, False, "aspp"))
    separable_decoder = bool(separable) and separable != "aspp"
    inputs, features, x, norm = _encoder(
        num_classes, input_shape, backbone, output_stride=output_stride, multi_grid=multi_grid,
        aspp_filters=aspp_filters, rates=aspp_rates, separable=bool(separable), dropout=dropout,
        backbone_kwargs=backbone_kwargs, norm=norm, backbone_weights=backbone_weights,
    )

    # === Decoder ===
    low_level = conv_bn_relu(
        features["P2"], low_level_filters, 1, "decoder_low_level", norm=norm
    )
    x = ResizeLike(name="decoder_upsample")([x, low_level])
    x = keras.layers.Concatenate(name="decoder_concat")([x, low_level])
    for index in (1, 2):
        x = conv_bn_relu(
            x, decoder_filters, 3, f"decoder_conv{index}", separable=separable_decoder,
            norm=norm,
        )
    outputs = classifier_head(x, num_classes, inputs, activation)
    model = keras.Model(inputs, outputs, name=name or f"deeplabv3plus_{backbone_name(backbone)}")
    return load_model_weights(model, weights, "deeplabv3plus", backbone, backbone_kwargs)
