"""Fully convolutional networks: FCN-32s, FCN-16s and FCN-8s.

Reference: Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015.
"""

import keras

from kerasseg.backbones.vgg import convolutionalize_classifier, has_classifier
from kerasseg.layers import LearnedUpsampling2D
from kerasseg.models.blocks import output_layer
from kerasseg.models.inputs import check_builder_arguments, image_and_features
from kerasseg.utils import check_rate, load_model_weights

FCN_BACKBONES = ("vgg16", "resnet50", "mobilenetv2")


def _convolutionalized_classifier(x, reduced_fc, dropout, backbone_weights):
    """VGG16's fc6/fc7 as convolutions, with ReLU and dropout; loads fc1/fc2
    into them when `backbone_weights` include VGG16's classifier."""
    if reduced_fc:
        # DeepLab-v1: fc6 as a 3x3 conv dilated by 12 with 1024 channels.
        fc6 = keras.layers.Conv2D(1024, 3, dilation_rate=12, padding="same", name="fc6")
        fc7 = keras.layers.Conv2D(1024, 1, name="fc7")
    else:
        fc6 = keras.layers.Conv2D(4096, 7, padding="same", name="fc6")
        fc7 = keras.layers.Conv2D(4096, 1, name="fc7")
    x = keras.layers.ReLU(name="relu6")(fc6(x))
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = keras.layers.ReLU(name="relu7")(fc7(x))
    x = keras.layers.Dropout(dropout, name="drop7")(x)
    if backbone_weights is not None and not reduced_fc and has_classifier(backbone_weights):
        convolutionalize_classifier(fc6, fc7, backbone_weights)
    return x


def _scores(x, features, inputs, stride, num_classes, trainable_upsampling):
    """Class scores at stride 32, fused with those of the skips `stride`
    asks for and upsampled to the input size."""
    # Skip scores start at zero so the finer net starts as the coarser one.
    x = keras.layers.Conv2D(num_classes, 1, name="score_fr")(x)
    for level in (4, 3)[: {32: 0, 16: 1, 8: 2}[stride]]:
        skip = features[f"P{level}"]
        x = LearnedUpsampling2D(2, trainable=trainable_upsampling, name=f"upscore_p{level + 1}")(
            [x, skip]
        )
        score = keras.layers.Conv2D(
            num_classes, 1, kernel_initializer="zeros", name=f"score_pool{level}"
        )(skip)
        x = keras.layers.Add(name=f"fuse_pool{level}")([x, score])
    return LearnedUpsampling2D(stride, trainable=trainable_upsampling, name=f"upscore{stride}")(
        [x, inputs]
    )


def _make_builder(stride):
    def builder(
        num_classes=21,
        input_shape=(None, None, 3),
        backbone="vgg16",
        *,
        reduced_fc=False,
        dropout=0.5,
        trainable_upsampling=True,
        backbone_kwargs=None,
        norm=None,
        weights=None,
        backbone_weights=None,
        activation=None,
        name=None,
    ):
        input_shape, norm = check_builder_arguments(
            num_classes, input_shape, backbone=backbone, backbone_weights=backbone_weights,
            backbones=FCN_BACKBONES, norm=norm,
        )
        check_rate("dropout", dropout)
        if reduced_fc and backbone != "vgg16":
            raise ValueError(
                "`reduced_fc` replaces VGG16's fc6/fc7 and needs backbone='vgg16'. "
                f"Received: backbone={backbone!r}, reduced_fc=True"
            )

        # === Backbone ===
        inputs, features = image_and_features(
            input_shape, backbone, backbone_weights=backbone_weights, norm=norm,
            backbone_kwargs=backbone_kwargs,
        )
        x = features["P5"]

        # === Convolutionalised classifier (VGG16 only) ===
        if backbone == "vgg16":
            x = _convolutionalized_classifier(x, reduced_fc, dropout, backbone_weights)

        # === Scores and skip fusion ===
        x = _scores(x, features, inputs, stride, num_classes, trainable_upsampling)
        outputs = output_layer(x, activation)
        model = keras.Model(inputs, outputs, name=name or f"fcn{stride}s_{backbone}")
        return load_model_weights(model, weights)

    builder.__name__ = builder.__qualname__ = f"fcn{stride}s"
    builder.__doc__ = _docstring(stride)
    return builder


def _docstring(stride):
    skips = {32: "no skip", 16: "a skip from pool4", 8: "skips from pool4 and pool3"}[stride]
    return f"""FCN-{stride}s: a convolutionalised classifier with {skips}.

    VGG16's fc6/fc7 become a 7x7x4096 and a 1x1x4096 convolution (with
    dropout); 1x1 "score" layers give class scores at stride 32, which are
    upsampled by transposed convolutions initialised to exact bilinear
    interpolation and fused with scores of finer pooling layers. Skips are
    aligned for any input size, odd sizes included (see
    `kerasseg.layers.LearnedUpsampling2D`).

    Called without arguments it builds the paper's PASCAL VOC configuration:
    VGG16 and 21 classes (20 object classes and background). So configured,
    FCN-8s has 134,489,759 parameters (the paper's 134M): 14,714,688 in
    VGG16's convolutions, 119,545,856 in fc6/fc7, 102,207 in the score layers
    and 127,008 in the upsampling.

    Reference:
        Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
        Segmentation", CVPR 2015.

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images; height
            and width may be None. Extra channels (e.g. depth) are allowed
            when `backbone_weights` is None.
        backbone: one of {FCN_BACKBONES}.
        reduced_fc: DeepLab-v1's lighter head: fc6 as a 3x3 convolution
            dilated by 12 with 1024 channels, fc7 with 1024 (VGG16 only).
        dropout: dropout rate after fc6 and fc7.
        trainable_upsampling: False freezes the upsampling at bilinear.
        backbone_kwargs: extra backbone arguments, e.g. {{"alpha": 0.35}} for
            MobileNetV2.
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
        weights: None or the path of a full-model weights file.
        backbone_weights: None, "imagenet" or the path of a
            `keras.applications` weights file for the backbone. With VGG16,
            "imagenet" or a file that includes the classifier (saved from
            `VGG16(include_top=True)`) also loads fc1/fc2 into fc6/fc7,
            reshaped to convolutions as in the paper.
        activation: None for logits, or e.g. "softmax".
        name: model name; None names it "fcn{stride}s_<backbone>".

    Returns:
        A functional `keras.Model` from images (B, H, W, C) to (B, H, W,
        num_classes).

    Example:
        >>> model = kerasseg.fcn{stride}s()  # PASCAL VOC: VGG16, 21 classes
        >>> small = kerasseg.fcn{stride}s(2, backbone="mobilenetv2")
    """


fcn32s = _make_builder(32)
fcn16s = _make_builder(16)
fcn8s = _make_builder(8)
