"""Trained models by preset name (`kerasseg.pretrained.PRESETS`)."""

from kerasseg.models.deeplab import deeplabv3
from kerasseg.pretrained import resolve_preset

_BUILDERS = {"deeplabv3": deeplabv3}


def from_preset(name, input_shape=(None, None, 3), **overrides):
    """The kerasseg model of a preset, with its trained weights.

    Args:
        name: a preset's name ("deeplabv3_mobilenetv2_pascal_voc") or its
            dataset ("pascal_voc", "cityscapes").
        input_shape: the model's input; Google's files run at (513, 513, 3).
        **overrides: other builder arguments, e.g. `num_classes=2`, which
            loads every layer but the classifier.

    Returns:
        A `keras.Model` with the attributes `class_names` (when the class
        count is the preset's) and `palette` ((classes, 3) uint8, or None).

    Example:
    >>> model = kerasseg.from_preset("pascal_voc")
    >>> model.class_names[15]
    'person'
    """
    preset = resolve_preset(name)
    if preset.builder not in _BUILDERS:
        raise ValueError(
            f"Preset {preset.name!r} holds {preset.builder} weights, not a whole model; pass "
            "it as a builder's `backbone_weights`"
        )
    model = _BUILDERS[preset.builder](
        input_shape=input_shape, **{**preset.arguments, **overrides}, weights=preset.name
    )
    same_classes = model.output_shape[-1] == len(preset.classes)
    model.class_names = list(preset.classes) if same_classes else None
    model.palette = preset.palette if same_classes else None
    return model
