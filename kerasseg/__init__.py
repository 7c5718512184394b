"""kerasseg: semantic, instance and panoptic segmentation models for Keras 3.

`import kerasseg` is cheap: it imports neither TensorFlow nor Keras. Builders
and submodules resolve on first use, e.g. `kerasseg.fcn8s(num_classes=21)`.
"""

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it. Submodules map to themselves.
_LAZY_ATTRIBUTES = {
    "fcn32s": "kerasseg.models.fcn",
    "fcn16s": "kerasseg.models.fcn",
    "fcn8s": "kerasseg.models.fcn",
    "segnet": "kerasseg.models.segnet",
    "unet": "kerasseg.models.unet",
    "pspnet": "kerasseg.models.pspnet",
    "deeplabv3": "kerasseg.models.deeplab",
    "deeplabv3plus": "kerasseg.models.deeplab",
    "lraspp": "kerasseg.models.lraspp",
    "lpsnet": "kerasseg.models.lpsnet",
    "with_crf": "kerasseg.crf",
    "load_model": "kerasseg.saving",
}
_SUBMODULES = (
    "backbones", "cli", "configs", "crf", "data", "export", "layers", "losses", "metrics",
    "models", "ops", "panoptic", "portrait", "runtime", "train",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"kerasseg.{name}")
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'kerasseg' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY_ATTRIBUTES, *_SUBMODULES])
