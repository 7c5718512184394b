"""LPSNet: a lightweight one-stage panoptic segmentation network.

Reference: Hong, Huang, Yeh, Lin, Wang, Wang & Chen, "LPSNet: A Lightweight
Solution for Fast Panoptic Segmentation", CVPR 2021. The paper has no public
code; this is an implementation from its text. (Not LPS-Net, Zhang et al.
2022, a semantic segmentation network.)

Backbone -> FPN P2..P7 (pyramid pooling on the top backbone level) -> two
heads:

- Box head, shared across P3..P7, anchor-free as FCOS: a classification tower
  and a box tower of `head_convs` 3x3 convs with group norm; per cell, thing
  class logits, box distances (l, t, r, b) and a border-ness logit (on the box
  tower). The distances are exp(x) * stride, decoded inside the model into
  boxes (x1, y1, x2, y2) in input pixels by `kerasseg.layers.BoxDecoder`.
- Semantic head on P2..P5: a 3x3 conv per level (the paper uses deformable
  convs; standard ones here, which TFLite runs with builtins), bilinear
  upsampling to 1/4, concatenation, 1x1 conv; logits resized to the input.

The panoptic head has no weights: `kerasseg.panoptic.panoptic_merge` (numpy)
or `kerasseg.panoptic.panoptic_merge_tf` turns the outputs into a panoptic map.
Training targets: `kerasseg.panoptic.targets`; losses: `kerasseg.panoptic.losses`.
"""

import math

import keras

from kerasseg.backbones import backbone_name
from kerasseg.data.labels import COCO_PANOPTIC_CLASSES, COCO_THING_CLASSES
from kerasseg.layers import BoxDecoder, ResizeLike
from kerasseg.models.blocks import conv_bn_relu, output_layer
from kerasseg.models.fpn import feature_pyramid
from kerasseg.models.inputs import check_builder_arguments, image_and_features
from kerasseg.utils import check_positive_int, load_model_weights

BOX_LEVELS = (3, 4, 5, 6, 7)
SEMANTIC_LEVELS = (2, 3, 4, 5)


def _is_class_id(value, num_classes):
    try:
        return check_positive_int("thing_classes", value, 0) < num_classes
    except ValueError:
        return False


def _check_thing_classes(thing_classes, num_classes):
    """`thing_classes` as a tuple of distinct ids in [0, num_classes)."""
    if thing_classes is None:
        return tuple(range(num_classes))
    thing_classes = tuple(thing_classes)
    if not thing_classes or len(set(thing_classes)) != len(thing_classes) or not all(
        _is_class_id(t, num_classes) for t in thing_classes
    ):
        hint = ""
        if thing_classes == COCO_THING_CLASSES:
            hint = " (the default is COCO's 80 thing classes; None makes every class a thing)"
        raise ValueError(
            f"`thing_classes` must be distinct class ids in [0, {num_classes}){hint}. "
            f"Received: thing_classes={thing_classes!r}"
        )
    return thing_classes


def _box_head(pyramid, num_things, filters, head_convs):
    """The FCOS-style head, its layers shared by every level."""
    # 32 groups as FCOS at 256 channels; narrower heads keep >= 8 channels a
    # group, so the 1x1 maps of P6/P7 on small inputs still normalise.
    groups = math.gcd(32, max(1, filters // 8))

    def tower(prefix):
        layers = []
        for index in range(1, head_convs + 1):
            layers += [
                keras.layers.Conv2D(filters, 3, padding="same",
                                    kernel_initializer=keras.initializers.RandomNormal(0, 0.01),
                                    name=f"box_head_{prefix}_conv{index}"),
                keras.layers.GroupNormalization(groups, name=f"box_head_{prefix}_gn{index}"),
                keras.layers.ReLU(name=f"box_head_{prefix}_relu{index}"),
            ]
        return layers

    class_tower, box_tower = tower("class"), tower("box")
    small = keras.initializers.RandomNormal(0, 0.01)
    # Focal-loss prior: every class starts at probability 0.01 (RetinaNet).
    classifier = keras.layers.Conv2D(
        num_things, 3, padding="same", kernel_initializer=small,
        bias_initializer=keras.initializers.Constant(-math.log(99.0)), name="box_head_classifier",
    )
    regressor = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=small,
                                    name="box_head_regressor")
    border = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=small,
                                 name="box_head_borderness")
    outputs = {"class_logits": [], "boxes": [], "borderness": []}
    for level in BOX_LEVELS:
        x = y = pyramid[f"P{level}"]
        for layer in class_tower:
            x = layer(x)
        for layer in box_tower:
            y = layer(y)
        suffix = f"p{level}"
        outputs["class_logits"].append(
            keras.layers.Reshape((-1, num_things), name=f"class_logits_{suffix}")(classifier(x))
        )
        # float32 even under mixed precision: exp(8) * 128 overflows float16.
        outputs["boxes"].append(
            BoxDecoder(2**level, dtype="float32", name=f"boxes_{suffix}")(regressor(y))
        )
        outputs["borderness"].append(
            keras.layers.Reshape((-1, 1), name=f"borderness_{suffix}")(border(y))
        )
    return {
        key: keras.layers.Activation("linear", dtype="float32", name=key)(
            keras.layers.Concatenate(axis=1, name=f"{key}_levels")(tensors)
        )
        for key, tensors in outputs.items()
    }


def lpsnet(
    num_classes=COCO_PANOPTIC_CLASSES,
    input_shape=(None, None, 3),
    backbone="resnet50",
    *,
    thing_classes=COCO_THING_CLASSES,
    fpn_filters=256,
    semantic_filters=128,
    head_convs=4,
    ppm=True,
    backbone_kwargs=None,
    norm=None,
    weights=None,
    backbone_weights=None,
    activation=None,
    name=None,
):
    """LPSNet (Hong et al., CVPR 2021): one-stage panoptic segmentation.

    A functional model with a dict of outputs; the panoptic map comes from the
    non-parametric head `kerasseg.panoptic.panoptic_merge` (numpy, TF-free) or
    `panoptic_merge_tf`. Train it with `kerasseg train` (a config with
    `model: {name: lpsnet}`, see `kerasseg.train.config`), or with
    `kerasseg.panoptic.compile_lpsnet` and `kerasseg.panoptic.panoptic_dataset`
    in your own loop. The box head reads P3..P7 (strides
    8..128); any input size works, training sizes are multiples of 32.
    Called without arguments it builds the paper's COCO panoptic
    configuration: ResNet-50, 133 categories of which the first 80 are things.

    Reference:
        Hong et al., "LPSNet: A Lightweight Solution for Fast Panoptic
        Segmentation", CVPR 2021.

    Args:
        num_classes: number of semantic categories (stuff and things).
        input_shape: (height, width, channels); height and width may be None.
        backbone: a name in `kerasseg.backbones.BACKBONES` (the paper: resnet50).
        thing_classes: semantic ids of the thing categories, the order of the
            class head's channels; default `COCO_THING_CLASSES` (0..79, COCO
            panoptic's things when its categories are numbered in id order);
            None makes every category a thing.
        fpn_filters: channels of the FPN and the box head (the paper: 256).
        semantic_filters: channels of the semantic head's per-level convs.
        head_convs: 3x3 convs in each box-head tower (FCOS: 4).
        ppm: pyramid pooling module on the top backbone level.
        backbone_kwargs: extra keyword arguments of the backbone, e.g.
            {"alpha": 0.35} for MobileNets.
        norm: the model's `BatchNormSettings`, which makes every
            BatchNormalization layer (a dict of its fields; None for
            `BatchNormSettings()`).
        weights: None or the path of a full-model weights file.
        backbone_weights: None, "imagenet" or a backbone weights file.
        activation: None for semantic logits, or e.g. "softmax".
        name: model name; None names it "lpsnet_{backbone}".

    Returns:
        A `keras.Model` from raw pixels [0, 255] (B, H, W, C) to a dict:
        "semantic" (B, H, W, num_classes) semantic logits at input resolution
        (its layer is named "logits"); and over the N box-head cells, levels
        P3..P7 concatenated in row-major order, "class_logits" (B, N, T),
        "boxes" (B, N, 4) decoded boxes (x1, y1, x2, y2) in input pixels and
        "borderness" (B, N, 1) border-ness logits.

    Example:
        >>> coco = lpsnet()  # ResNet-50, 133 categories, 80 things
        >>> model = lpsnet(7, backbone="mobilenetv2", thing_classes=(4, 5, 6))
        >>> outputs = model(images)  # dict of four tensors
    """
    input_shape, norm = check_builder_arguments(
        num_classes, input_shape, backbone=backbone, backbone_weights=backbone_weights, norm=norm,
    )
    check_positive_int("fpn_filters", fpn_filters)
    check_positive_int("semantic_filters", semantic_filters)
    check_positive_int("head_convs", head_convs, minimum=0)
    thing_classes = _check_thing_classes(thing_classes, num_classes)

    # === Backbone and FPN ===
    inputs, features = image_and_features(
        input_shape, backbone, backbone_weights=backbone_weights,
        norm=norm, backbone_kwargs=backbone_kwargs,
    )
    pyramid = feature_pyramid(features, fpn_filters, top_level=max(BOX_LEVELS), ppm=ppm,
                              norm=norm)

    # === Box head (P3-P7) ===
    outputs = _box_head(pyramid, len(thing_classes), fpn_filters, head_convs)

    # === Semantic head (P2-P5) ===
    branches = []
    for level in SEMANTIC_LEVELS:
        x = conv_bn_relu(pyramid[f"P{level}"], semantic_filters, 3, name=f"semantic_p{level}_conv",
                         norm=norm)
        if level != SEMANTIC_LEVELS[0]:
            x = ResizeLike(name=f"semantic_p{level}_upsample")([x, pyramid["P2"]])
        branches.append(x)
    x = keras.layers.Concatenate(name="semantic_concat")(branches)
    x = keras.layers.Conv2D(num_classes, 1, name="semantic_classifier")(x)
    x = ResizeLike(name="semantic_upsample")([x, inputs])
    semantic = output_layer(x, activation)

    outputs = {"semantic": semantic, **outputs}
    model = keras.Model(inputs, outputs, name=name or f"lpsnet_{backbone_name(backbone)}")
    return load_model_weights(model, weights)
