"""Backbones: functions from an image tensor to feature maps keyed by level.

Every backbone is called as `fn(inputs, output_stride=32, weights=None,
synchronized_bn=False)` on a Keras tensor of raw pixels in [0, 255] (it
normalises them itself with a `Preprocess` layer named "preprocess") and
returns `{"P1": ..., "P5": ...}`: level n is the output of the stage with
nominal stride 2^n. With `output_stride` 8 or 16 the deeper stages keep that
stride and use dilation instead, so "P5" of a ResNet at output stride 8 has
stride 8. `output_stride` is set here and nowhere else.

Layer names are those of `keras.applications`, so ImageNet weights load by
name: `weights` is None, "imagenet" (downloads the official Keras file) or the
path of a weights file of the matching `keras.applications` model.
"""

from kerasseg.backbones import mobilenet, mobilenet_edgetpu, resnet, vgg, xception
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


def build_backbone(name, inputs, output_stride=32, weights=None, synchronized_bn=False, **kwargs):
    """Builds backbone `name` on `inputs`; returns its feature maps by level."""
    check_choice("backbone", name, tuple(BACKBONES))
    check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    return BACKBONES[name](
        inputs,
        output_stride=output_stride,
        weights=weights,
        synchronized_bn=synchronized_bn,
        **kwargs,
    )
