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
    "backbone_width", "check_class_mapping", "map_classifier",
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


def check_class_mapping(preset, mapping, classes, argument, owner):
    """Raise a one-line ValueError, naming `argument`, unless every key of
    `mapping` is a class of `preset` (a `Preset`) and every value one of
    `classes`, the class names of `owner` (e.g. "the model")."""
    for source, target in mapping.items():
        if source not in preset.classes:
            raise ValueError(f"{argument}: {source!r} is not a class of preset "
                             f"{preset.name!r} ({', '.join(preset.classes)})")
        if target not in classes:
            raise ValueError(f"{argument}: {source!r} -> {target!r}, which is not a class "
                             f"of {owner} ({', '.join(classes)})")


def map_classifier(model, preset, mapping, classes):
    """Initialises `model`'s classifier from a preset's, class by class.

    Each model class gets the mean kernel and bias of the preset classes
    that `mapping` sends to it (Cityscapes' car, truck, bus and train all
    become CamVid's Car); a class nothing maps to keeps its initialisation.
    A one-channel model (a sigmoid) scores its second class against its
    first: its kernel is the second's minus the first's, so that
    sigmoid(z_person - z_background) is the preset's softmax over the two.

    Args:
        model: a model with a 1x1 convolution named "classifier".
        preset: a model preset's name (or its `Preset`).
        mapping: {preset class name: model class name}; preset classes
            left out are not used.
        classes: the model's class names by channel; for a one-channel
            model the names of (background, foreground).

    Returns:
        The model classes that received weights, in channel order.

    Raises:
        ValueError: in one line, for a name that is not a class of the
            preset or of the model, or a model without that classifier.
    """
    import numpy as np

    preset = preset if isinstance(preset, Preset) else resolve_preset(preset)
    check_class_mapping(preset, mapping, classes, "class_mapping", "the model")
    try:
        classifier = model.get_layer("classifier")
    except ValueError:
        raise ValueError(f"Model {model.name!r} has no layer 'classifier' to map classes "
                         "into") from None
    source = next(layer for layer in TFLiteFile(preset_file(preset.name)).layers()
                  if layer.scope == "logits/semantic")
    kernels, biases = {}, {}
    for target in classes:
        indices = [preset.classes.index(s) for s, t in mapping.items() if t == target]
        if indices:
            kernels[target] = source.kernel[..., indices].mean(axis=-1)
            biases[target] = source.bias[indices].mean()
    kernel, bias = classifier.kernel.numpy(), classifier.bias.numpy()
    if kernel.shape[-1] == 1:
        if len(classes) != 2 or len(kernels) != 2:
            raise ValueError("class_mapping: a one-channel model needs preset classes mapped "
                             f"to both of {classes!r}. Received: {mapping!r}")
        background, foreground = classes
        kernel[..., 0] = kernels[foreground] - kernels[background]
        bias[0] = biases[foreground] - biases[background]
        filled = [foreground]
    else:
        if len(classes) != kernel.shape[-1]:
            raise ValueError(f"`classes` names {len(classes)} classes; the model has "
                             f"{kernel.shape[-1]}")
        filled = [c for c in classes if c in kernels]
        for target in filled:
            kernel[..., classes.index(target)] = kernels[target]
            bias[classes.index(target)] = biases[target]
    classifier.kernel.assign(np.asarray(kernel, np.float32))
    classifier.bias.assign(np.asarray(bias, np.float32))
    return filled
