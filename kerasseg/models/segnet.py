"""SegNet: encoder-decoder with max-unpooling at the encoder's argmax.

Reference: Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.
"""

import keras

from kerasseg.backbones.weights import check_backbone_weights, load_application_weights
from kerasseg.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D, Preprocess
from kerasseg.models.blocks import output_layer
from kerasseg.utils import check_input_shape, check_positive_int, check_rate, load_model_weights

# VGG16's 13 convolutions: width of each conv per block, in units of base_filters.
_ENCODER = ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))


def _conv_bn_relu(x, filters, name, synchronized_bn):
    # Convs keep their bias, as in the Caffe SegNet and VGG16 (weights copy 1:1).
    x = keras.layers.Conv2D(filters, 3, padding="same", name=name)(x)
    x = keras.layers.BatchNormalization(synchronized=synchronized_bn, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def segnet(
    num_classes,
    input_shape=(None, None, 3),
    backbone="vgg16_bn",
    base_filters=64,
    synchronized_bn=False,
    index_dropout=0.0,
    weights=None,
    backbone_weights=None,
    activation=None,
    name=None,
):
    """SegNet with a VGG16-BN encoder and a mirrored decoder.

    Each encoder block ends in 2x2 max pooling that remembers where every
    maximum came from; the matching decoder block puts its values back at
    exactly those positions (zeros elsewhere) and densifies them with
    convolutions. The pooling and unpooling are built from TFLite builtins
    (SPACE_TO_DEPTH, ARG_MAX, EQUAL, SELECT_V2, DEPTH_TO_SPACE), so the model converts
    without Flex ops. Pooling uses "ceil" mode, so odd sizes work and the
    output always has the input's size.

    Encoder conv layers carry `keras.applications.VGG16` names
    ("block1_conv1", ...), so `backbone_weights="imagenet"` initialises the
    encoder from VGG16 as in the paper. About 29.4M parameters.

    Reference:
        Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional
        Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None.
        backbone: "vgg16_bn", the only encoder SegNet defines.
        base_filters: width of the first block (64 in the paper); the others
            are 2x, 4x, 8x and 8x. ImageNet weights need 64.
        synchronized_bn: use synchronised batch norm across replicas.
        index_dropout: in training only, the share of pooling indices replaced
            by a random position in their 2x2 window (0 in the paper). A
            model for int8 inference wants about 0.5: 8-bit activations move
            the maxima of near-tied windows, and a decoder trained this way
            tolerates it (on the synthetic scenes, int8 agreement with the
            float model 96.7% -> 98.5%, with no loss of accuracy; see
            `benchmarks/segnet_int8_indices.py`). Inference always uses the
            true argmax.
        weights: None or the path of a full-model weights file.
        backbone_weights: None, "imagenet" or the path of a
            `keras.applications.VGG16` weights file for the encoder convs.
        activation: None for logits, or e.g. "softmax".
        name: model name.

    Returns:
        A functional `keras.Model` from (B, H, W, C) images to (B, H, W,
        num_classes).

    Example:
        >>> model = kerasseg.segnet(num_classes=12)
    """
    check_positive_int("num_classes", num_classes)
    input_shape = check_input_shape(input_shape)
    if backbone != "vgg16_bn":
        raise ValueError(f"`backbone` must be 'vgg16_bn'. Received: backbone={backbone!r}")
    check_positive_int("base_filters", base_filters)
    check_rate("index_dropout", index_dropout)
    check_backbone_weights(backbone_weights, input_shape[-1])
    if backbone_weights is not None and base_filters != 64:
        raise ValueError(
            "VGG16 weights need base_filters=64. "
            f"Received: base_filters={base_filters}, backbone_weights={backbone_weights!r}"
        )

    inputs = keras.Input(shape=input_shape, name="image")
    x = Preprocess("caffe", name="preprocess")(inputs)

    # === Encoder ===
    unpool_sources = []  # (pre-pool tensor, argmax indices) per block
    widths = [[base_filters * units for units in block] for block in _ENCODER]
    for block, filters in enumerate(widths, start=1):
        for index, f in enumerate(filters, start=1):
            x = _conv_bn_relu(x, f, f"block{block}_conv{index}", synchronized_bn)
        pre_pool = x
        x, indices = MaxPoolingWithArgmax2D(index_dropout, name=f"block{block}_pool")(x)
        unpool_sources.append((pre_pool, indices))
    encoder_output = x

    # === Decoder (mirror image of the encoder) ===
    for block in range(len(widths), 0, -1):
        pre_pool, indices = unpool_sources[block - 1]
        x = MaxUnpooling2D(name=f"decoder_block{block}_unpool")([x, indices, pre_pool])
        filters = widths[block - 1]
        # The last conv of each decoder block hands over to the next block's width.
        out_filters = list(filters[:-1]) + [widths[block - 2][-1] if block > 1 else filters[-1]]
        if block == 1:
            out_filters = out_filters[:-1]  # the classifier takes the last slot
        for index, f in enumerate(out_filters, start=1):
            x = _conv_bn_relu(x, f, f"decoder_block{block}_conv{index}", synchronized_bn)

    x = keras.layers.Conv2D(num_classes, 3, padding="same", name="classifier")(x)
    outputs = output_layer(x, activation)
    model = keras.Model(inputs, outputs, name=name or "segnet")

    if backbone_weights is not None:
        load_application_weights(inputs, encoder_output, keras.applications.VGG16, backbone_weights)
    return load_model_weights(model, weights)
