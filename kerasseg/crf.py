"""Dense CRF post-processing (`refine`) and end-to-end CRF-as-RNN (`with_crf`).

Both use the mean-field inference of `kerasseg.layers.DenseCRF`, with
permutohedral-lattice filtering from `kerasseg.ops`.
"""

import keras
import tensorflow as tf

from kerasseg.layers.crf import DenseCRF, check_float, crf_features, mean_field
from kerasseg.utils import check_positive_int

# Probabilities are clipped here before the log, as pydensecrf's
# `unary_from_softmax` does, so that zeros give finite unaries.
PROBABILITY_CLIP = 1e-5


def refine(image, probabilities, num_iterations=5, theta_alpha=80.0, theta_beta=13.0,
           theta_gamma=3.0, appearance_weight=10.0, smoothness_weight=3.0):
    """Refines class probabilities with a fully connected CRF.

    Potts compatibility and mean-field inference as in pydensecrf; the
    defaults are its documented settings (DeepLab's CRF post-processing):
    `addPairwiseGaussian(sxy=3, compat=3)`,
    `addPairwiseBilateral(sxy=80, srgb=13, compat=10)`, 5 iterations.

    Reference:
        Krähenbühl and Koltun, "Efficient Inference in Fully Connected CRFs
        with Gaussian Edge Potentials", NeurIPS 2011.

    Args:
        image: `[height, width, channels]` or `[batch, height, width, channels]`
            raw pixels (e.g. uint8 RGB), numpy array or tensor.
        probabilities: `[..., height, width, classes]` class probabilities of
            the same batch and size.
        num_iterations: mean-field iterations.
        theta_alpha: positional bandwidth (pixels) of the appearance kernel.
        theta_beta: colour bandwidth of the appearance kernel (pixel units).
        theta_gamma: positional bandwidth (pixels) of the smoothness kernel.
        appearance_weight: weight of the appearance kernel.
        smoothness_weight: weight of the smoothness kernel.

    Returns:
        Refined probabilities, same shape as `probabilities`: a numpy array
        for numpy inputs, a tensor otherwise.

    Example:
        >>> probabilities = keras.ops.softmax(model.predict(image[None]))[0]
        >>> labels = refine(image, probabilities).argmax(-1)
    """
    check_positive_int("num_iterations", num_iterations)
    thetas = [check_float(name, value) for name, value in (
        ("theta_alpha", theta_alpha), ("theta_beta", theta_beta), ("theta_gamma", theta_gamma))]
    check_float("appearance_weight", appearance_weight, allow_zero=True)
    check_float("smoothness_weight", smoothness_weight, allow_zero=True)
    as_numpy = not (tf.is_tensor(image) or tf.is_tensor(probabilities))
    image = tf.convert_to_tensor(image)
    probabilities = tf.convert_to_tensor(probabilities, tf.float32)
    if image.shape.rank not in (3, 4) or probabilities.shape.rank != image.shape.rank \
            or image.shape[:-1] != probabilities.shape[:-1] or 0 in image.shape \
            or 0 in probabilities.shape:
        raise ValueError(
            "`image` and `probabilities` must be non-empty [height, width, channels] and "
            "[height, width, classes] (optionally with a leading batch axis) of the same "
            f"size. Received: image.shape={image.shape}, "
            f"probabilities.shape={probabilities.shape}")
    batched = image.shape.rank == 4
    if not batched:
        image, probabilities = image[None], probabilities[None]
    shape = tf.shape(probabilities)
    unary = tf.math.log(tf.clip_by_value(
        tf.reshape(probabilities, [shape[0], -1, shape[3]]), PROBABILITY_CLIP, 1.0))
    appearance, smoothness = crf_features(image, *thetas)
    logits = mean_field(unary, appearance, smoothness, float(appearance_weight),
                        float(smoothness_weight), None, num_iterations)
    refined = tf.reshape(tf.nn.softmax(logits), shape)
    if not batched:
        refined = refined[0]
    return refined.numpy() if as_numpy else refined


def with_crf(model, num_iterations=5, theta_alpha=80.0, theta_beta=13.0, theta_gamma=3.0,
             appearance_weight=10.0, smoothness_weight=3.0, name=None):
    """Puts a trainable `DenseCRF` on a segmentation model's logits.

    The model's input image is the CRF's second input (its guide), so the
    result is a model with the same inputs whose output is refined logits,
    trainable end to end (CRF-as-RNN).

    Args:
        model: a `keras.Model` with one image input (raw pixels) and one
            output of logits `[batch, height, width, classes]` at the input
            resolution (kerasseg builders with `activation=None`).
        num_iterations: mean-field iterations.
        theta_alpha: positional bandwidth (pixels) of the appearance kernel.
        theta_beta: colour bandwidth of the appearance kernel (pixel units).
        theta_gamma: positional bandwidth (pixels) of the smoothness kernel.
        appearance_weight: initial weight of the appearance kernel.
        smoothness_weight: initial weight of the smoothness kernel.
        name: model name; default `<model.name>_crf`.

    Returns:
        A `keras.Model` whose last layer, named "crf", outputs refined logits.

    Example:
        >>> model = kerasseg.with_crf(kerasseg.fcn8s(num_classes=21))
    """
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            "`model` must be a keras.Model with one image input and one logits output. "
            f"Received: model={model!r}")
    activation = getattr(model.layers[-1], "activation", None)
    if activation is not None and getattr(activation, "__name__", "") in ("softmax", "sigmoid"):
        raise ValueError(
            "`model` must output logits (build it with activation=None); its last layer "
            f"applies {activation.__name__}. Received: model={model.name!r}")
    image, logits = model.inputs[0], model.outputs[0]
    if len(logits.shape) != 4 or len(image.shape) != 4:
        raise ValueError(
            "`model` must map [batch, height, width, channels] images to [batch, height, "
            f"width, classes] logits. Received: input {image.shape}, output {logits.shape}")
    crf = DenseCRF(num_iterations=num_iterations, theta_alpha=theta_alpha,
                   theta_beta=theta_beta, theta_gamma=theta_gamma,
                   appearance_weight=appearance_weight, smoothness_weight=smoothness_weight,
                   name="crf")
    return keras.Model(image, crf([logits, image]), name=name or f"{model.name}_crf")
