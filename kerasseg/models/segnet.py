"""SegNet: encoder-decoder with max-unpooling at the encoder's argmax.

Reference: Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.
"""

import keras

from kerasseg.backbones.vgg import VGG16_BLOCKS, vgg_bn_conv
from kerasseg.layers import MaxUnpooling2D
from kerasseg.models.blocks import output_layer
from kerasseg.models.inputs import check_builder_arguments, image_and_features
from kerasseg.utils import load_model_weights


def segnet(
    num_classes=11,
    input_shape=(None, None, 3),
    backbone="vgg16_bn",
    *,
    base_filters=64,
    norm=None,
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
    encoder from VGG16 as in the paper. About 29.5M parameters. Called
    without arguments it builds SegNet as its authors ship it for CamVid: 11
    classes, void pixels carrying the ignore label.

    Reference:
        Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional
        Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None.
        backbone: "vgg16_bn" (`kerasseg.backbones.vgg.vgg16_bn`), the only
            encoder SegNet defines.
        base_filters: width of the first block (64 in the paper); the others
            are 2x, 4x, 8x and 8x. ImageNet weights need 64.
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
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
        name: model name; None names it "segnet".

    Returns:
        A functional `keras.Model` from (B, H, W, C) images to (B, H, W,
        num_classes).

    Example:
        >>> model = kerasseg.segnet()  # CamVid, 11 classes
    """
    input_shape, norm = check_builder_arguments(
        num_classes, input_shape, backbone=backbone, backbone_weights=backbone_weights,
        backbones=("vgg16_bn",), norm=norm,
    )

    # === Encoder: VGG16-BN, whose poolings record their argmax ===
    inputs, features = image_and_features(
        input_shape, backbone, backbone_weights=backbone_weights, norm=norm,
        backbone_kwargs={"base_filters": base_filters, "index_dropout": index_dropout},
    )
    encoder = keras.Model(inputs, features)

    # === Decoder (mirror image of the encoder) ===
    x = features["P5"]
    for block in range(len(VGG16_BLOCKS), 0, -1):
        pool = encoder.get_layer(f"block{block}_pool")
        x = MaxUnpooling2D(name=f"decoder_block{block}_unpool")([x, pool.output[1], pool.input])
        convs, filters = VGG16_BLOCKS[block - 1]
        # The last conv of each block hands over to the next block's width;
        # in block 1 the classifier takes its place.
        widths = [filters] * (convs - 1) + ([VGG16_BLOCKS[block - 2][1]] if block > 1 else [])
        for index, width in enumerate(widths, start=1):
            x = vgg_bn_conv(x, width * base_filters // 64, f"decoder_block{block}_conv{index}",
                            norm=norm)

    x = keras.layers.Conv2D(num_classes, 3, padding="same", name="classifier")(x)
    outputs = output_layer(x, activation)
    model = keras.Model(inputs, outputs, name=name or "segnet")
    return load_model_weights(model, weights)
