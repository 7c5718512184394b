"""SegNet's max pooling with indices and max unpooling, from TFLite builtins.

`tf.nn.max_pool_with_argmax` is not a TFLite builtin (it becomes a Flex op).
Here each 2x2 window is moved into the channel axis with SPACE_TO_DEPTH, its
maximum and ARG_MAX taken there, and unpooling puts each value back at its
index with EQUAL, SELECT_V2 and DEPTH_TO_SPACE: every step is a builtin.
"""

import keras
import tensorflow as tf

from kerasseg.layers.geometry import crop_to
from kerasseg.utils import check_rate


def _pad_to_even(x):
    """Pads odd height/width at the end by repeating the last row/column.

    The copy never wins the argmax (ties go to the first index, and the copy
    comes after its original), so pooling behaves as "ceil" mode over the
    real pixels only. A known even size is not padded at all: a converter
    keeps even a zero-width MIRROR_PAD, which LiteRT runs as a full copy
    (28 ms of a 512x512 SegNet's 340 in float32, 33 of 163 in int8).
    """
    if x.shape[1] is not None and x.shape[2] is not None:
        if x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0:
            return x
    shape = tf.shape(x)
    pad_h, pad_w = shape[1] % 2, shape[2] % 2
    return tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")


@keras.saving.register_keras_serializable(package="kerasseg")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2x2, stride-2 max pooling that also returns where each maximum was.

    Returns `[pooled, indices]`: `pooled` has shape (B, ceil(H/2), ceil(W/2),
    C); `indices` (int32, same shape) holds the position of the maximum inside
    its window, 0..3 in row-major order. Ties go to the first position.

    Args:
        index_dropout: in training only, the share of indices replaced by a
            position drawn uniformly from their window (so 3/4 of them move).
            The pooled values and inference are unchanged. It trains the
            decoder to tolerate indices that move, as int8 inference moves
            those of near-tied windows (`benchmarks/segnet_int8_indices.py`).
        seed: seed of `index_dropout`'s draws.
    """

    def __init__(self, index_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.index_dropout = check_rate("index_dropout", index_dropout)
        self.seed = seed
        if self.index_dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        x = _pad_to_even(inputs)
        shape = tf.shape(x)
        batch, height, width, channels = shape[0], shape[1] // 2, shape[2] // 2, shape[3]
        windows = tf.reshape(tf.nn.space_to_depth(x, 2), [batch, height * width, 4, channels])
        pooled = tf.reshape(tf.reduce_max(windows, axis=2), [batch, height, width, channels])
        indices = tf.argmax(windows, axis=2, output_type=tf.int32)
        indices = tf.reshape(indices, [batch, height, width, channels])
        if training and self.index_dropout > 0:
            index_shape, seed = tf.shape(indices), self.seed_generator
            drawn = keras.random.randint(index_shape, 0, 4, dtype="int32", seed=seed)
            dropped = keras.random.uniform(index_shape, seed=seed) < self.index_dropout
            indices = tf.where(dropped, drawn, indices)
        return [pooled, indices]

    def get_config(self):
        return {**super().get_config(), "index_dropout": self.index_dropout, "seed": self.seed}

    def compute_output_shape(self, input_shape):
        def half(d):
            return None if d is None else (d + 1) // 2

        shape = (input_shape[0], half(input_shape[1]), half(input_shape[2]), input_shape[3])
        return [shape, shape]

    def compute_output_spec(self, inputs, training=False):
        shape = self.compute_output_shape(inputs.shape)[0]
        return [
            keras.KerasTensor(shape, dtype=self.compute_dtype),
            keras.KerasTensor(shape, dtype="int32"),
        ]


@keras.saving.register_keras_serializable(package="kerasseg")
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of `MaxPoolingWithArgmax2D`: `[values, indices, reference]` ->
    a map of `reference`'s height and width, zero except at the positions the
    pooling took its maxima from, which receive `values`."""

    def call(self, inputs):
        values, indices, reference = inputs
        shape = tf.shape(values)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        flat_indices = tf.reshape(indices, [batch, height * width, 1, channels])
        flat_values = tf.reshape(values, [batch, height * width, 1, channels])
        # A select rather than a one-hot product: int8 conversion would give
        # the one-hot mask the activations' scale, so its zeros would not be 0.
        positions = tf.reshape(tf.range(4, dtype=indices.dtype), [1, 1, 4, 1])
        windows = tf.where(
            tf.equal(flat_indices, positions), flat_values, tf.zeros_like(flat_values)
        )
        windows = tf.reshape(windows, [batch, height, width, 4 * channels])
        return crop_to(tf.nn.depth_to_space(windows, 2), reference, 0, 0)

    def compute_output_shape(self, input_shapes):
        values_shape, _, reference_shape = input_shapes
        return (values_shape[0], reference_shape[1], reference_shape[2], values_shape[3])
