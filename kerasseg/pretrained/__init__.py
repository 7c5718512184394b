"""Pretrained weights: Google's published `.tflite` files as kerasseg presets.

    model = kerasseg.deeplabv3(backbone="mobilenetv2", weights="pascal_voc")
    model = kerasseg.deeplabv3(backbone="mobilenet_edgetpu", weights="cityscapes")
    model = kerasseg.deeplabv3(2, backbone="mobilenetv2",
                               backbone_weights="mobilenetv2_imagenet_quant")

`PRESETS` lists them (`kerasseg pretrained` prints the table);
`load_tflite_weights` reads any `.tflite` file whose tensors carry the
reference implementations' names into a kerasseg model.
"""

import os

from kerasseg.pretrained.presets import (
    PRESETS,
    Preset,
    PresetFileError,
    backbone_width,
    find_preset,
    home,
    is_preset,
    layer_name,
    preset_defaults,
    preset_file,
    resolve_preset,
)
from kerasseg.pretrained.tflite import FileLayer, TFLiteFile, load_tflite_weights

__all__ = [
    "PRESETS", "FileLayer", "Preset", "PresetFileError", "TFLiteFile", "find_preset", "home",
    "load_model_weights", "load_backbone_weights", "load_tflite_weights", "preset_file",
    "is_tflite", "preset_defaults", "is_backbone_weights", "is_preset", "resolve_preset",
    "backbone_width",
]


def is_tflite(weights):
    """Whether a `weights` value is the path of a `.tflite` file (by its extension)."""
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(
        ".tflite"
    )


def _file_scope(path):
    """The backbone scope of a file's tensors: "MobilenetV2", "MobilenetEdgeTPU"."""
    for scope in TFLiteFile(path).scopes():
        if "/" in scope and not scope.startswith("logits/"):
            return scope.split("/")[0]
    return ""


def load_model_weights(model, weights, builder, backbone, backbone_kwargs=None):
    """The `weights` argument of a builder: None, a Keras weights file, a
    `.tflite` file, or a preset (its name, or its dataset such as
    "pascal_voc" for this builder, backbone and width).

    A preset whose class count differs from the model's leaves the
    classifier at its initialisation: its other layers load.
    """
    if weights is None:
        return model
    preset = find_preset(builder, weights, backbone, backbone_width(backbone_kwargs))
    if preset is not None and preset.builder == "backbone":
        raise ValueError(f"Preset {preset.name!r} holds backbone weights: pass it as "
                         f"`backbone_weights`. Received: weights={weights!r}")
    if preset is not None:
        path, scope = preset_file(preset.name), preset.scope
        skip = () if model.output_shape[-1] == len(preset.classes) else ("classifier",)
    elif is_tflite(weights):
        path, skip = os.fspath(weights), ()
        scope = _file_scope(path)
    elif isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        model.load_weights(weights)
        return model
    else:
        raise ValueError(
            "`weights` must be None, a weights file, a .tflite file or a preset "
            f"({', '.join(sorted(PRESETS))}). Received: weights={weights!r}"
        )
    load_tflite_weights(model, path, lambda s: layer_name(s, scope), skip=skip)
    return model


def load_backbone_weights(backbone_model, weights):
    """Loads a `.tflite` file or backbone preset into a backbone's layers
    (`keras.Model` from the image to its features).

    The file's layers outside its backbone scope (an ImageNet classifier, a
    segmentation head) and those past the backbone's last feature (e.g.
    `Conv_1` without `include_last_conv`) are left out; every convolution
    of the backbone must be in the file.
    """
    if isinstance(weights, str) and weights in PRESETS:
        path, scope = preset_file(weights), PRESETS[weights].scope
    else:
        path = os.fspath(weights)
        scope = _file_scope(path)
    names = {layer.name for layer in backbone_model.layers}

    def naming(file_scope):
        if not file_scope.startswith(scope + "/"):
            return None
        name = layer_name(file_scope, scope)
        return name if name in names else None

    return load_tflite_weights(backbone_model, path, naming)


def is_backbone_weights(weights):
    """Whether a `backbone_weights` value is ours to load (a preset or a `.tflite` file)."""
    return is_tflite(weights) or (isinstance(weights, str) and weights in PRESETS)
