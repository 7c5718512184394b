"""Inference with a Keras model: whole images, tiles, scales and flips.

The tiling, multi-scale and flip logic is `kerasseg.runtime.inference`,
shared with the exported files (`kerasseg.runtime.Segmenter`); this module
only turns a Keras model into the forward callable it runs.

Example:
    >>> probabilities = predict(model, image, tile_size=(256, 256), scales=(0.75, 1.0, 1.25),
    ...                         flip=True)
    >>> labels = probabilities.argmax(-1)
"""

import numpy as np
import tensorflow as tf

from kerasseg.runtime import inference
from kerasseg.runtime.image import to_probabilities


def keras_forward(model, from_logits=None):
    """The forward callable of `kerasseg.runtime.inference.predict` for `model`.

    Args:
        model: Keras model (or callable `model(x, training=False)`) from raw
            pixels (B, H, W, C) to (B, H, W, classes).
        from_logits: Whether the model outputs logits (softmax applied here)
            or probabilities; None reads it from the model's last layer.
            A one-channel output is a foreground score: its probabilities are
            [1 - p, p] (`kerasseg.runtime.image.to_probabilities`).

    Returns:
        A function from float32 numpy images to float32 numpy probabilities.
    """
    if from_logits is None:
        from_logits = model_output_kind(model) == "logits"

    def forward(images):
        output = tf.cast(model(tf.constant(images), training=False), tf.float32)
        return to_probabilities(output.numpy(), from_logits)

    return forward


def predict(model, images, from_logits=None, **options):
    """Class probabilities of `images` by `model`, whole or by tiles, scales and flips.

    Args:
        model: Keras model from raw pixels (B, H, W, 3) to (B, H, W, C).
        images: One image (H, W, 3) or a batch (B, H, W, 3), numpy or tf.
        from_logits: Whether the model outputs logits (softmax applied here)
            or probabilities; None reads it from the model's last layer.
        **options: `tile_size`, `overlap`, `weighting`, `scales`, `flip`,
            `batch_size`, as `kerasseg.runtime.inference.predict` takes them.

    Returns:
        float32 probabilities (H, W, C) or (B, H, W, C), like `images`; a
        `tf.Tensor` when `images` is one.
    """
    result = inference.predict(keras_forward(model, from_logits),
                               np.asarray(images, np.float32), **options)
    return tf.convert_to_tensor(result) if tf.is_tensor(images) else result


def model_output_kind(model):
    """"logits" or "probabilities": what the model's (single) last layer returns.

    A model whose output comes from a layer with an activation other than
    linear (softmax, or the sigmoid of a one-channel portrait model) returns
    probabilities; a plain callable, or any other model, logits.
    """
    if len(getattr(model, "outputs", ())) != 1:
        return "logits"
    for layer in reversed(model.layers):
        try:
            produces_output = layer.output is model.outputs[0]
        except (AttributeError, ValueError):  # a layer called more than once
            continue
        if produces_output:
            activation = getattr(layer, "activation", None)
            name = getattr(activation, "__name__", "linear")
            return "logits" if name == "linear" else "probabilities"
    return "logits"
