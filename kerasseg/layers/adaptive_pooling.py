"""Adaptive average pooling to a fixed grid, for any input size."""

import keras
import tensorflow as tf


def _bin_means(x, bins, axis):
    """Means of `x` over `bins` ranges along `axis`, concatenated on `axis`.

    Bin i covers [floor(i * n / bins), ceil((i + 1) * n / bins)), as in
    PyTorch's `adaptive_avg_pool2d`: bins overlap when n is not a multiple of
    `bins` and are never empty.
    """
    size = tf.shape(x)[axis]
    means = []
    for i in range(bins):
        start = (i * size) // bins
        end = ((i + 1) * size + bins - 1) // bins
        piece = x[:, start:end] if axis == 1 else x[:, :, start:end]
        means.append(tf.reduce_mean(piece, axis=axis, keepdims=True))
    return means[0] if bins == 1 else tf.concat(means, axis=axis)


@keras.saving.register_keras_serializable(package="kerasseg")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Averages NHWC feature maps over an `output_size` grid of bins.

    The bins are computed from the dynamic input shape, so the layer works at
    any input size in Keras. A rectangle's mean is the mean of its row means,
    so the layer pools rows then columns: 2 x bins slices and means in all.
    At a fixed input size the bounds are constants and the layer lowers to
    STRIDED_SLICE, MEAN and CONCATENATION builtins in TFLite (no Flex op).

    Args:
        output_size: int or (height, width): number of bins per axis.

    Example:

    >>> layer = AdaptiveAveragePooling2D(3)
    >>> layer(np.ones((1, 7, 10, 4), "float32")).shape
    TensorShape([1, 3, 3, 4])
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        size = output_size
        if isinstance(size, int):
            size = (size, size)
        if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size
        ):
            raise ValueError(
                "`output_size` must be a positive integer or two of them. "
                f"Received: output_size={output_size!r}"
            )
        self.output_size = tuple(size)

    def call(self, inputs):
        rows, cols = self.output_size
        return _bin_means(_bin_means(inputs, rows, axis=1), cols, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}
