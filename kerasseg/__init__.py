"""kerasseg: semantic, instance and panoptic segmentation models for Keras 3.

`import kerasseg` is cheap: it imports neither TensorFlow nor Keras. Builders
and submodules resolve on first use, e.g. `kerasseg.fcn8s(num_classes=21)`.
"""

from kerasseg.utils import KerassegError, lazy_attributes  # noqa: F401
from kerasseg.version import __version__  # noqa: F401

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
    "portrait_model": "kerasseg.models.portrait",
    "with_crf": "kerasseg.crf",
    "load_model": "kerasseg.saving",
    "from_preset": "kerasseg.models.presets",
    "register_builder": "kerasseg.train.model",
}
_SUBMODULES = (
    "backbones", "cli", "configs", "crf", "data", "export", "layers", "losses", "metrics",
    "models", "ops", "panoptic", "pretrained", "runtime", "train",
)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_ATTRIBUTES, _SUBMODULES)
