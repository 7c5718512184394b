"""Custom Keras layers. Each is registered under the "kerasseg" package so
models that use them load with `keras.saving.load_model(..., safe_mode=True)`."""

from kerasseg.layers.adaptive_pooling import AdaptiveAveragePooling2D
from kerasseg.layers.boxes import BoxDecoder
from kerasseg.layers.crf import DenseCRF
from kerasseg.layers.geometry import CropLike, ResizeLike
from kerasseg.layers.normalization import (
    DEFAULT_NORM,
    BatchNormSettings,
    batch_norm_settings,
)
from kerasseg.layers.pooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
from kerasseg.layers.preprocessing import Preprocess
from kerasseg.layers.upsampling import LearnedUpsampling2D, bilinear_kernel

__all__ = [
    "AdaptiveAveragePooling2D",
    "BatchNormSettings",
    "DEFAULT_NORM",
    "BoxDecoder",
    "CropLike",
    "DenseCRF",
    "LearnedUpsampling2D",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "Preprocess",
    "ResizeLike",
    "batch_norm_settings",
    "bilinear_kernel",
]
