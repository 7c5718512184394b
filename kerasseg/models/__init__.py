"""Architectures. `MODELS` maps each public builder name to its function."""

from kerasseg.models.deeplab import deeplabv3, deeplabv3plus
from kerasseg.models.fcn import fcn8s, fcn16s, fcn32s
from kerasseg.models.lpsnet import lpsnet
from kerasseg.models.lraspp import lraspp
from kerasseg.models.pspnet import pspnet
from kerasseg.models.segnet import segnet
from kerasseg.models.unet import unet

MODELS = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "segnet": segnet,
    "unet": unet,
    "pspnet": pspnet,
    "deeplabv3": deeplabv3,
    "deeplabv3plus": deeplabv3plus,
    "lraspp": lraspp,
    "lpsnet": lpsnet,
}
