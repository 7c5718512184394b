"""Backbones: functions from an image tensor to feature maps keyed by level.

The backbone contract, written once here: a backbone maps a Keras tensor of
raw pixels in [0, 255] (it normalises them itself, with a `Preprocess` layer
named "preprocess") to `{"P1": ..., "P5": ...}`, level n being the output of
the stage with nominal stride 2^n, each map (batch, height, width, channels).
With `output_stride` 8 or 16 the deeper stages keep that stride and use
dilation instead, so "P5" of a ResNet at output stride 8 has stride 8.
`output_stride` is set here and nowhere else.

Every backbone of `BACKBONES` is called as
`fn(inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, **kwargs)`:
`norm` is the model's `kerasseg.layers.BatchNormSettings`, which makes every
BatchNormalization layer (`norm(x, name, epsilon)`, epsilon the layer's own,
that of its pretrained weights). Layer names are those of
`keras.applications`, so ImageNet weights load by name: `weights` is None,
"imagenet" (downloads the official Keras file) or the path of a weights file
of the matching `keras.applications` model.

Builders also take your own backbone in place of a name: a `keras.Model`
or any callable that maps the image tensor to the same dict (keras-hub's
`pyramid_outputs` are such a dict). It is called on the image alone; its
features are used as they are (`check_features` checks the contract).
"""

from kerasseg.backbones import mobilenet, mobilenet_edgetpu, resnet, vgg, xception
from kerasseg.layers import DEFAULT_NORM
from kerasseg.utils import check_choice

BACKBONES = {
    "vgg16": vgg.vgg16,
    "vgg16_bn": vgg.vgg16_bn,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
    "mobilenetv2": mobilenet.mobilenetv2,
    "mobilenetv3small": mobilenet.mobilenetv3small,
    "mobilenetv3large": mobilenet.mobilenetv3large,
    "mobilenet_edgetpu": mobilenet_edgetpu.mobilenet_edgetpu,
    "xception65": xception.xception65,
}

OUTPUT_STRIDES = (8, 16, 32)
LEVELS = ("P1", "P2", "P3", "P4", "P5")
FEATURES = (f"a dict of feature maps {{{', '.join(repr(level) for level in LEVELS)}}}, level n "
            "at stride 2^n, each (batch, height, width, channels)")
CONTRACT = ("a name in kerasseg.backbones.BACKBONES, or a keras.Model or callable mapping the "
            f"image tensor (raw pixels in [0, 255]) to {FEATURES}")


def build_backbone(name, inputs, output_stride=32, weights=None, norm=DEFAULT_NORM, **kwargs):
    """Builds backbone `name` on `inputs`; returns its feature maps by level."""
    check_choice("backbone", name, tuple(BACKBONES))
    check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    return BACKBONES[name](inputs, output_stride=output_stride, weights=weights, norm=norm,
                           **kwargs)


def check_backbone(backbone, names=tuple(BACKBONES)):
    """Raises ValueError unless `backbone` is one of `names`, or (when every
    backbone is allowed) a callable of the backbone contract."""
    if isinstance(backbone, str) or tuple(names) != tuple(BACKBONES):
        return check_choice("backbone", backbone, tuple(names))
    if not callable(backbone):
        raise ValueError(f"`backbone` must be {CONTRACT}. Received: backbone={backbone!r}")
    return backbone


def backbone_name(backbone):
    """The name a model built on `backbone` carries: its registry name, or
    the name of your model or function."""
    if isinstance(backbone, str):
        return backbone
    return getattr(backbone, "name", None) or getattr(backbone, "__name__", "custom")


def backbone_features(backbone, inputs, output_stride=32, weights=None, norm=DEFAULT_NORM,
                      **kwargs):
    """The features of `backbone` on `inputs`: a name of `BACKBONES`, built
    with the other arguments, or your own model or callable, called on
    `inputs` alone (ImageNet `weights` and `kwargs` apply to named backbones
    only); checked against the contract."""
    if isinstance(backbone, str):
        features = build_backbone(backbone, inputs, output_stride, weights, norm, **kwargs)
    else:
        check_backbone(backbone)
        if weights is not None or kwargs:
            raise ValueError(
                "`backbone_weights` and `backbone_kwargs` apply to named backbones; load your "
                f"own backbone's weights into it. Received: backbone_weights={weights!r}, "
                f"backbone_kwargs={kwargs!r}"
            )
        features = backbone(inputs)
    return check_features(features, backbone_name(backbone))


def check_features(features, name):
    """`features` if they keep the backbone contract, else a ValueError naming
    backbone `name` and what it returned."""
    maps = features if isinstance(features, dict) else {}
    if not all(len(getattr(maps.get(level), "shape", ())) == 4 for level in LEVELS):
        if isinstance(features, dict):
            received = {key: getattr(value, "shape", type(value).__name__)
                        for key, value in features.items()}
        else:
            received = type(features).__name__
        raise ValueError(f"Backbone {name!r} must return {FEATURES}. Received: {received}")
    return dict(features)
