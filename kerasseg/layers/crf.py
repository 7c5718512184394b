"""Fully connected CRF as a Keras layer (CRF-as-RNN).

Mean-field inference in the dense CRF of Krähenbühl and Koltun, "Efficient
Inference in Fully Connected CRFs with Gaussian Edge Potentials" (NeurIPS
2011), unrolled as a recurrent network whose kernel weights and label
compatibility are learned (Zheng et al., "Conditional Random Fields as
Recurrent Neural Networks", ICCV 2015). Message passing is Gaussian filtering
with the permutohedral lattice of `kerasseg.ops` (a CPU-only C++ op).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from kerasseg.ops import normalized_gaussian_filter_fn
from kerasseg.utils import check_number, check_positive_int


def check_float(argument, value, allow_zero=False):
    """Raise ValueError unless `value` is a finite number > 0 (>= 0 with
    `allow_zero`)."""
    check_number(argument, value, 0, low_open=not allow_zero)
    if not math.isfinite(value):
        raise ValueError(f"`{argument}` must be a finite number. Received: {argument}={value!r}")
    return float(value)


def crf_features(image, theta_alpha, theta_beta, theta_gamma):
    """Feature vectors of the two CRF kernels, divided by their bandwidths.

    Args:
        image: `[batch, height, width, channels]` float32, raw pixel values.
        theta_alpha: positional bandwidth (pixels) of the appearance kernel.
        theta_beta: colour bandwidth of the appearance kernel.
        theta_gamma: positional bandwidth (pixels) of the smoothness kernel.

    Returns:
        `(appearance, smoothness)`: `[batch, height * width, 2 + channels]` with
        `(x, y, colour...)` and `[batch, height * width, 2]` with `(x, y)`, in
        pydensecrf's order (x is the column).
    """
    shape = tf.shape(image)
    batch, height, width = shape[0], shape[1], shape[2]
    rows, columns = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    positions = tf.cast(tf.reshape(tf.stack([columns, rows], -1), [1, -1, 2]), tf.float32)
    positions = tf.tile(positions, [batch, 1, 1])
    colours = tf.reshape(tf.cast(image, tf.float32), [batch, height * width, image.shape[-1]])
    appearance = tf.concat([positions / theta_alpha, colours / theta_beta], -1)
    return appearance, positions / theta_gamma


def mean_field(unary, appearance, smoothness, appearance_weights, smoothness_weights,
               compatibility, num_iterations):
    """Mean-field inference in a dense CRF with two Gaussian kernels.

    Each iteration: Q = softmax(logits); message = w_a * K_a Q + w_s * K_s Q
    (kernels normalised symmetrically, `D^-1/2 K D^-1/2` with `D = K 1`, and
    including the pixel itself, as in pydensecrf); logits = unary -
    message @ compatibility. Each kernel's lattice is built once and reused by
    every iteration.

    Args:
        unary: `[batch, points, classes]` logits (log-probabilities up to a
            per-point constant).
        appearance: `[batch, points, d_a]` appearance features.
        smoothness: `[batch, points, d_s]` smoothness features.
        appearance_weights: `[classes]` (or scalar) weight of the appearance
            kernel; a number >= 0 when `compatibility` is None.
        smoothness_weights: `[classes]` (or scalar) weight of the smoothness
            kernel; a number >= 0 when `compatibility` is None.
        compatibility: `[classes, classes]` label compatibility (penalty of
            label l' next to label l), or None for Potts (`1 - I`), computed
            with fewer operations.
        num_iterations: number of mean-field iterations.

    Returns:
        `[batch, points, classes]` logits after the last iteration; with
        `compatibility=None` they are known up to a per-point constant, which
        softmax ignores.
    """
    if compatibility is None:
        # Potts: m @ (w * (1 - I)) = w * sum_l m_l - w * m, whose first term is
        # the same for every label of a point and cancels in the softmax. So
        # logits = unary + w_a K_a Q + w_s K_s Q, each weight folded into its
        # filter's lattice: per iteration a softmax, two filters and one sum.
        filters = [normalized_gaussian_filter_fn(features, weight)
                   for features, weight in ((appearance, appearance_weights),
                                            (smoothness, smoothness_weights)) if weight > 0]
        logits = unary
        for _ in range(num_iterations):
            q = tf.nn.softmax(logits)
            logits = tf.add_n([unary, *(smooth(q) for smooth in filters)])
        return logits

    # The per-class kernel weights fold into the compatibility matrix:
    # (w * message) @ compatibility = message @ (diag(w) @ compatibility).
    kernels = [(normalized_gaussian_filter_fn(features),
                tf.reshape(tf.cast(weights, tf.float32), [-1, 1]) * compatibility)
               for features, weights in ((appearance, appearance_weights),
                                         (smoothness, smoothness_weights))]
    logits = unary
    for _ in range(num_iterations):
        q = tf.nn.softmax(logits)
        logits = unary
        for smooth, weighted_compatibility in kernels:
            logits = logits - tf.linalg.matmul(smooth(q), weighted_compatibility)
    return logits


@keras.saving.register_keras_serializable(package="kerasseg")
class DenseCRF(keras.layers.Layer):
    """Dense CRF mean-field inference on logits, guided by the image.

    Unrolls `num_iterations` mean-field steps (see `mean_field`) with an
    appearance kernel over position and colour (`theta_alpha`, `theta_beta`)
    and a smoothness kernel over position (`theta_gamma`). The per-class
    kernel weights and the label compatibility matrix (initialised to Potts)
    are trainable, so the layer trains end to end on top of any segmentation
    network. Gradients reach the logits; the image gets none.

    Message passing runs in a CPU-only TensorFlow C++ op, so the layer sets
    `supports_jit = False` and computes in float32. Without a C++ compiler it
    falls back to exact O(pixels^2) filtering (practical only for small images).

    Reference:
        Zheng et al., "Conditional Random Fields as Recurrent Neural Networks",
        ICCV 2015; Krähenbühl and Koltun, NeurIPS 2011.

    Args:
        num_iterations: mean-field iterations.
        theta_alpha: positional bandwidth (pixels) of the appearance kernel.
        theta_beta: colour bandwidth of the appearance kernel, in the image's
            units (raw [0, 255] pixels in kerasseg models).
        theta_gamma: positional bandwidth (pixels) of the smoothness kernel.
        appearance_weight: initial weight of the appearance kernel.
        smoothness_weight: initial weight of the smoothness kernel.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[logits, image]`, `[batch, height, width, classes]` and
            `[batch, height, width, channels]` of the same batch and size.

    Returns:
        Refined logits, `[batch, height, width, classes]` float32.

    Example:
        >>> image = keras.Input((None, None, 3))
        >>> logits = kerasseg.fcn8s(21)(image)
        >>> refined = DenseCRF(num_iterations=5)([logits, image])
    """

    def __init__(self, num_iterations=5, theta_alpha=80.0, theta_beta=13.0, theta_gamma=3.0,
                 appearance_weight=10.0, smoothness_weight=3.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_iterations = check_positive_int("num_iterations", num_iterations)
        self.theta_alpha = check_float("theta_alpha", theta_alpha)
        self.theta_beta = check_float("theta_beta", theta_beta)
        self.theta_gamma = check_float("theta_gamma", theta_gamma)
        self.appearance_weight = check_float("appearance_weight", appearance_weight,
                                             allow_zero=True)
        self.smoothness_weight = check_float("smoothness_weight", smoothness_weight,
                                             allow_zero=True)
        self.supports_jit = False

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"DenseCRF expects inputs [logits, image]. Received: {input_shape}")
        logits_shape, image_shape = (tuple(s) for s in input_shape)
        if len(logits_shape) != 4 or len(image_shape) != 4 or logits_shape[-1] is None \
                or image_shape[-1] is None:
            raise ValueError(
                "DenseCRF expects logits [batch, height, width, classes] and image "
                "[batch, height, width, channels] with known classes and channels. "
                f"Received: {logits_shape} and {image_shape}")
        num_classes = logits_shape[-1]
        self.appearance_weights = self.add_weight(
            name="appearance_weights", shape=(num_classes,),
            initializer=keras.initializers.Constant(self.appearance_weight))
        self.smoothness_weights = self.add_weight(
            name="smoothness_weights", shape=(num_classes,),
            initializer=keras.initializers.Constant(self.smoothness_weight))
        self.compatibility = self.add_weight(
            name="compatibility", shape=(num_classes, num_classes),
            initializer=keras.initializers.Constant(1.0 - np.eye(num_classes)))

    def call(self, inputs):
        logits, image = inputs
        logits = tf.cast(logits, tf.float32)
        shape = tf.shape(logits)
        tf.debugging.assert_equal(
            shape[:3], tf.shape(image)[:3],
            message="DenseCRF: logits and image must have the same batch, height and width")
        appearance, smoothness = crf_features(
            image, self.theta_alpha, self.theta_beta, self.theta_gamma)
        # The image is a guide, not something to learn through.
        appearance, smoothness = tf.stop_gradient(appearance), tf.stop_gradient(smoothness)
        unary = tf.reshape(logits, [shape[0], -1, shape[3]])
        refined = mean_field(unary, appearance, smoothness, self.appearance_weights,
                             self.smoothness_weights, self.compatibility, self.num_iterations)
        return tf.reshape(refined, shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_iterations=self.num_iterations,
            theta_alpha=self.theta_alpha,
            theta_beta=self.theta_beta,
            theta_gamma=self.theta_gamma,
            appearance_weight=self.appearance_weight,
            smoothness_weight=self.smoothness_weight,
        )
        return config
