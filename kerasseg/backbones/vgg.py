"""VGG16 (Simonyan & Zisserman 2015) with `keras.applications.VGG16` names."""

import keras

from kerasseg.backbones.weights import load_application_weights
from kerasseg.layers import Preprocess

# (number of 3x3 convolutions, filters) per block.
_VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg16(inputs, output_stride=32, weights=None, synchronized_bn=False):
    """VGG16 features: "P1".."P5" are the outputs of block1_pool..block5_pool.

    VGG has no batch normalisation, so `synchronized_bn` has no effect. An
    `output_stride` below 32 replaces the last pools with stride-1 pooling and
    dilates the following convolutions, as in DeepLab-v1.
    """
    x = Preprocess("caffe", name="preprocess")(inputs)
    features = {}
    stride, dilation = 1, 1
    for block, (convs, filters) in enumerate(_VGG16_BLOCKS, start=1):
        for index in range(1, convs + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                dilation_rate=dilation,
                activation="relu",
                name=f"block{block}_conv{index}",
            )(x)
        if stride * 2 <= output_stride:
            stride *= 2
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
        else:
            x = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"block{block}_pool")(
                x
            )
            dilation *= 2
        features[f"P{block}"] = x
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
