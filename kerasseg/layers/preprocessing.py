"""Input normalisation inside the model, so exported files take raw pixels."""

import keras
import numpy as np

from kerasseg.utils import check_choice

# Per-mode (channel order, mean, std) for the three RGB channels, in the
# conventions of `keras.applications.imagenet_utils.preprocess_input`.
NORMALIZATIONS = {
    "caffe": ((2, 1, 0), (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
    "torch": ((0, 1, 2), (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    "tf": ((0, 1, 2), (127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "none": ((0, 1, 2), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def _constant(values):
    """`values` as one Python float when all its entries are equal, else as they are."""
    return float(values[0]) if np.all(values == values[0]) else values


@keras.saving.register_keras_serializable(package="kerasseg")
class Preprocess(keras.layers.Layer):
    """Normalises images given as float pixels in [0, 255].

    The first three channels are treated as RGB and normalised the way the
    backbone's ImageNet weights expect (`mode`). Extra channels (depth in an
    RGB-D early-fusion input, say) are scaled to [-1, 1]; with one or two
    channels every channel is scaled that way. Lowers to MUL and ADD in
    TFLite (GATHER first for "caffe"'s BGR order). Where every channel gets
    the same scale or offset ("tf", "none") it is a scalar: LiteRT's XNNPACK
    kernels broadcast a scalar about ten times faster than a 3-vector at the
    input's full resolution (0.14 against 1.2 ms for an int8 MUL at 512x512).

    Args:
        mode: "caffe" (BGR, mean subtracted: VGG, ResNet), "torch" (RGB,
            ImageNet mean/std), "tf" (scaled to [-1, 1]: MobileNet, Xception)
            or "none".
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, tuple(NORMALIZATIONS))

    def build(self, input_shape):
        channels = input_shape[-1]
        order, mean, std = NORMALIZATIONS[self.mode]
        if self.mode == "none":
            order, mean, std = tuple(range(channels)), (0.0,) * channels, (1.0,) * channels
        elif channels < 3:
            order, mean, std = tuple(range(channels)), (127.5,) * channels, (127.5,) * channels
        else:
            extra = channels - 3
            order = order + tuple(range(3, channels))
            mean, std = mean + (127.5,) * extra, std + (127.5,) * extra
        self._order = np.asarray(order, dtype="int32")
        self._scale = (1.0 / np.asarray(std)).astype("float32")
        self._offset = (-np.asarray(mean) / np.asarray(std)).astype("float32")

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if not np.array_equal(self._order, np.arange(len(self._order))):
            x = keras.ops.take(x, self._order, axis=-1)
        scale, offset = _constant(self._scale), _constant(self._offset)
        if not (isinstance(scale, float) and scale == 1.0):
            x = x * keras.ops.cast(scale, self.compute_dtype)
        if not (isinstance(offset, float) and offset == 0.0):
            x = x + keras.ops.cast(offset, self.compute_dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
