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
            x = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"block{block}_pool")(x)
            dilation *= 2
        features[f"P{block}"] = x
    if weights is not None:
        load_application_weights(inputs, features, keras.applications.VGG16, weights)
    return features
