"""Box decoding of anchor-free detection heads (FCOS, LPSNet's box head)."""

import keras
import tensorflow as tf

from kerasseg.utils import check_positive_int

# exp() of the distance logits is clipped here (e^8 * stride), against overflow.
_MAX_LOG_DISTANCE = 8.0


@keras.saving.register_keras_serializable(package="kerasseg")
class BoxDecoder(keras.layers.Layer):
    """Distance logits (B, h, w, 4) of one level -> boxes (B, h*w, 4).

    Cell (i, j) sits at the centre of pixel (i*stride + stride//2,
    j*stride + stride//2), the point (x, y) of `kerasseg.panoptic.targets`;
    distances are exp(logits) * stride and the box is (x - l, y - t, x + r,
    y + b) in input pixels. Rows follow the row-major cell order.

    Args:
        stride: the level's stride in input pixels.
    """

    def __init__(self, stride, **kwargs):
        super().__init__(**kwargs)
        self.stride = check_positive_int("stride", stride)

    def call(self, inputs):
        # Static sizes where known, so converted graphs keep exact output shapes.
        dynamic = tf.shape(inputs)
        height = inputs.shape[1] if inputs.shape[1] is not None else dynamic[1]
        width = inputs.shape[2] if inputs.shape[2] is not None else dynamic[2]
        distances = tf.exp(tf.minimum(inputs, _MAX_LOG_DISTANCE)) * float(self.stride)
        offset = float(self.stride // 2) + 0.5
        xs = tf.cast(tf.range(width), inputs.dtype) * float(self.stride) + offset
        ys = tf.cast(tf.range(height), inputs.dtype) * float(self.stride) + offset
        grid_x = tf.broadcast_to(xs[None, :], (height, width))
        grid_y = tf.broadcast_to(ys[:, None], (height, width))
        points = tf.stack([grid_x, grid_y, grid_x, grid_y], axis=-1)
        sign = tf.constant([-1.0, -1.0, 1.0, 1.0], inputs.dtype)
        boxes = points[None] + sign * distances
        return tf.reshape(boxes, (-1, height * width, 4))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        cells = height * width if height is not None and width is not None else None
        return (batch, cells, 4)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}
