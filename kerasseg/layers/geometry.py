"""Layers that align one feature map with another of a different size."""

import keras
import tensorflow as tf

from kerasseg.utils import check_choice

_INTERPOLATIONS = ("bilinear", "nearest")


@keras.saving.register_keras_serializable(package="kerasseg")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` to the spatial size of `inputs[1]`.

    Works with dynamic sizes in Keras and becomes a single RESIZE_BILINEAR
    (or RESIZE_NEAREST_NEIGHBOR) builtin in TFLite. Uses half-pixel centres,
    as `tf.image.resize` does, or with `align_corners` the corner-aligned
    bilinear resize of TF1 (`resize_bilinear(align_corners=True)`), which the
    reference DeepLab and Google's published DeepLab files use.

    Args:
        interpolation: "bilinear" or "nearest".
        align_corners: align the corner pixels (bilinear only).
    """

    def __init__(self, interpolation="bilinear", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        self.interpolation = check_choice("interpolation", interpolation, _INTERPOLATIONS)
        self.align_corners = check_choice("align_corners", align_corners, (False, True))
        if align_corners and interpolation != "bilinear":
            raise ValueError(
                "`align_corners` needs interpolation='bilinear'. "
                f"Received: interpolation={interpolation!r}"
            )

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        if self.align_corners:
            # The raw op: tf.compat.v1.image.resize_bilinear warns of its deprecation.
            resized = tf.raw_ops.ResizeBilinear(
                images=x, size=size, align_corners=True, half_pixel_centers=False
            )
        else:
            resized = tf.image.resize(x, size, method=self.interpolation)
        return tf.cast(resized, x.dtype)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation,
                "align_corners": self.align_corners}


def crop_to(x, reference, offset_y, offset_x):
    """Crops NHWC `x` to `reference`'s height and width from (offset_y, offset_x)."""
    size = tf.shape(reference)[1:3]
    return x[:, offset_y : offset_y + size[0], offset_x : offset_x + size[1], :]


@keras.saving.register_keras_serializable(package="kerasseg")
class CropLike(keras.layers.Layer):
    """Crops `inputs[0]` to the spatial size of `inputs[1]`.

    Args:
        offset: None crops the centre (U-Net's "valid" skips); an int crops
            from that offset in both directions (0 keeps the top-left corner).
    """

    def __init__(self, offset=None, **kwargs):
        super().__init__(**kwargs)
        if offset is not None and (not isinstance(offset, int) or offset < 0):
            raise ValueError(
                f"`offset` must be None or an integer >= 0. Received: offset={offset!r}"
            )
        self.offset = offset

    def call(self, inputs):
        x, reference = inputs
        if self.offset is not None:
            return crop_to(x, reference, self.offset, self.offset)
        excess = tf.shape(x)[1:3] - tf.shape(reference)[1:3]
        return crop_to(x, reference, excess[0] // 2, excess[1] // 2)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
