"""FCN's learned upsampling: a transposed convolution that starts as exact
bilinear interpolation and can be trained (or frozen)."""

import keras
import numpy as np
import tensorflow as tf

from kerasseg.layers.geometry import crop_to
from kerasseg.utils import check_positive_int


def bilinear_kernel(factor, channels):
    """Transposed-conv kernel (2f, 2f, channels, channels) for bilinear x`factor`.

    Each channel is upsampled on its own (a diagonal kernel), as in the FCN
    reference code's `upsample_filt`.
    """
    size = 2 * factor
    center = factor - 0.5
    taps = 1.0 - np.abs(np.arange(size) - center) / factor
    kernel_2d = np.outer(taps, taps).astype("float32")
    kernel = np.zeros((size, size, channels, channels), dtype="float32")
    for c in range(channels):
        kernel[:, :, c, c] = kernel_2d
    return kernel


@keras.saving.register_keras_serializable(package="kerasseg")
class LearnedUpsampling2D(keras.layers.Layer):
    """Upsamples `inputs[0]` by `factor` and crops it to `inputs[1]`'s size.

    A transposed convolution with a (2f, 2f) kernel and stride f, initialised
    to bilinear interpolation. The input is first padded by one pixel with its
    edge values and the result cropped at offset f + f/2, which aligns pixel
    centres exactly: at initialisation the output equals
    `tf.image.resize(x, size, "bilinear")` for any input size, odd sizes
    included, so no 100-pixel padding (as in the Caffe FCN) is needed.

    Args:
        factor: even integer upsampling factor.
        trainable: False freezes the kernel at bilinear interpolation.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        if check_positive_int("factor", factor, 2) % 2:
            raise ValueError(f"`factor` must be an even integer >= 2. Received: factor={factor!r}")
        self.factor = factor

    def build(self, input_shapes):
        channels = input_shapes[0][-1]
        if channels is None:
            raise ValueError("LearnedUpsampling2D needs a known channel count.")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(2 * self.factor, 2 * self.factor, channels, channels),
            initializer=keras.initializers.Constant(bilinear_kernel(self.factor, channels)),
        )

    def call(self, inputs):
        x, reference = inputs
        f = self.factor
        # Width-1 symmetric padding replicates the edge (MIRROR_PAD in TFLite).
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        shape = tf.shape(x)
        output_shape = tf.stack(
            [shape[0], shape[1] * f + f, shape[2] * f + f, tf.shape(self.kernel)[2]]
        )
        y = tf.nn.conv2d_transpose(
            x, tf.cast(self.kernel, x.dtype), output_shape, strides=f, padding="VALID"
        )
        offset = f + f // 2
        return crop_to(y, reference, offset, offset)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
