"""VGG16 (Simonyan & Zisserman 2015) with `keras.applications.VGG16` names,
and VGG16-BN, SegNet's encoder (Badrinarayanan et al. 2017)."""

import keras

from kerasseg.backbones.weights import load_application_weights
from kerasseg.layers import DEFAULT_NORM, MaxPoolingWithArgmax2D, Preprocess
from kerasseg.utils import check_positive_int, check_rate

# (number of 3x3 convolutions, filters) per block.
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def _blocks(x, output_stride, conv, pool):
    """The five blocks: `conv(x, filters, dilation, name)` per convolution and
    `pool(x, name)` for each stride-2 pooling. An `output_stride` below 32
    replaces the last pools with stride-1 pooling and dilates the following
    convolutions, as in DeepLab-v1."""
    features = {}
    stride, dilation = 1, 1
    for block, (convs, filters) in enumerate(VGG16_BLOCKS, start=1):
        for index in range(1, convs + 1):
            x = conv(x, filters, dilation, f"block{block}_conv{index}")
        if stride * 2 <= output_stride:
            stride *= 2
            x = pool(x, f"block{block}_pool")
        else:
            x = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"block{block}_pool")(
                x
            )
            dilation *= 2
        features[f"P{block}"] = x
    return features


def vgg16(inputs, output_stride=32, weights=None, norm=DEFAULT_NORM):
    """VGG16 features: "P1".."P5" are the outputs of block1_pool..block5_pool.

    VGG has no batch normalisation, so `norm` has no effect. An
    `output_stride` below 32 replaces the last pools with stride-1 pooling and
    dilates the following convolutions, as in DeepLab-v1.
    """

    def conv(x, filters, dilation, name):
        return keras.layers.Conv2D(
            filters, 3, padding="same", dilation_rate=dilation, activation="relu", name=name
        )(x)

    def pool(x, name):
        return keras.layers.MaxPooling2D(2, strides=2, name=name)(x)

    x = Preprocess("caffe", name="preprocess")(inputs)
    features = _blocks(x, output_stride, conv, pool)
    if weights is not None:
        load_application_weights(inputs, features, keras.applications.VGG16, weights)
    return features


def vgg_bn_conv(x, filters, name, dilation_rate=1, norm=DEFAULT_NORM):
    """VGG16-BN's unit, also SegNet's decoder's: a 3x3 conv that keeps its
    bias (as VGG16's and the Caffe SegNet's, so weights copy 1:1), batch
    norm and ReLU, named `{name}`, `{name}_bn` and `{name}_relu`."""
    x = keras.layers.Conv2D(
        filters, 3, padding="same", dilation_rate=dilation_rate, name=name
    )(x)
    x = norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def vgg16_bn(
    inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, base_filters=64,
    index_dropout=0.0,
):
    """VGG16 with batch norm after every convolution: SegNet's encoder.

    "P1".."P5" are the outputs of block1_pool..block5_pool. Each 2x2 pool is
    a `kerasseg.layers.MaxPoolingWithArgmax2D` in "ceil" mode, so odd sizes
    work; its second output holds the argmax indices that SegNet's decoder
    unpools at (read them from the layer, e.g. `encoder.get_layer(
    "block1_pool").output[1]`). Convolutions carry `keras.applications.VGG16`
    names ("block1_conv1", ...) and keep their bias, so VGG16's weights load
    by name; the batch norms start fresh. An `output_stride` below 32 replaces
    the last pools with plain stride-1 max pooling (no indices) and dilates
    the following convolutions, as `vgg16` does.

    Args:
        inputs: Keras tensor of raw RGB pixels in [0, 255].
        output_stride: 8, 16 or 32.
        weights: None, "imagenet" or the path of a `keras.applications.VGG16`
            weights file, for the convolutions; needs `base_filters=64`.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        base_filters: width of the first block (64 in VGG16); the others are
            2x, 4x, 8x and 8x.
        index_dropout: in training only, the share of pooling indices
            replaced by a random position in their window (see
            `MaxPoolingWithArgmax2D`).

    Returns:
        Dict "P1".."P5" of feature tensors.
    """
    check_positive_int("base_filters", base_filters)
    check_rate("index_dropout", index_dropout)
    if weights is not None and base_filters != 64:
        raise ValueError(
            "VGG16 weights need base_filters=64. "
            f"Received: base_filters={base_filters}, backbone_weights={weights!r}"
        )

    def conv(x, filters, dilation, name):
        return vgg_bn_conv(x, filters * base_filters // 64, name, dilation, norm)

    def pool(x, name):
        return MaxPoolingWithArgmax2D(index_dropout, name=name)(x)[0]

    x = Preprocess("caffe", name="preprocess")(inputs)
    features = _blocks(x, output_stride, conv, pool)
    if weights is not None:
        load_application_weights(inputs, features, keras.applications.VGG16, weights)
    return features


def has_classifier(weights):
    """Whether a VGG16 weights file includes the fc1/fc2 classifier."""
    import h5py

    if weights == "imagenet":
        return True
    names = []
    with h5py.File(weights, "r") as file:
        file.visit(names.append)
    # Legacy .h5 files (the official downloads) name groups by layer ("fc1");
    # Keras 3 .weights.h5 files by layer type ("layers/dense").
    return any(name.split("/")[-1] == "fc1" or name == "layers/dense" for name in names)


def convolutionalize_classifier(fc6, fc7, weights):
    """Loads VGG16's fc1/fc2 into the convolutions fc6 (7x7x512x4096) and fc7
    (1x1x4096x4096): the FCN paper's "convolutionalisation". A Flatten of a
    7x7x512 map orders inputs (row, column, channel), so fc1's kernel reshapes
    to the conv kernel directly."""
    reference = keras.applications.VGG16(include_top=True, weights=weights)
    for conv, dense in ((fc6, "fc1"), (fc7, "fc2")):
        kernel, bias = reference.get_layer(dense).get_weights()
        conv.set_weights([kernel.reshape(conv.kernel.shape), bias])
