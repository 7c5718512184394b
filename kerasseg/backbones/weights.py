"""Loading `keras.applications` weights into our backbones by layer name."""

import os

import keras

from kerasseg.pretrained import is_backbone_weights


def check_backbone_weights(weights, channels):
    """Validates a `backbone_weights` value against the input channel count."""
    if weights is None:
        return
    if weights != "imagenet" and not (isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            "`backbone_weights` must be None, 'imagenet', a backbone preset or the path of a "
            f"weights or .tflite file. Received: backbone_weights={weights!r}"
        )
    if weights != "imagenet" and not is_backbone_weights(weights) and not os.path.exists(weights):
        raise ValueError(
            f"`backbone_weights` file not found. Received: backbone_weights={weights!r}"
        )
    if channels != 3:
        raise ValueError(
            "ImageNet backbone weights need 3 input channels (RGB); use "
            "backbone_weights=None for other channel counts. "
            f"Received: input_shape with {channels} channels, backbone_weights={weights!r}"
        )


def load_application_weights(inputs, features, application, weights, **application_kwargs):
    """Copies the weights of `keras.applications.<application>` into our layers.

    Args:
        inputs: the Keras input tensor the backbone was built on.
        features: the backbone's outputs (any nested structure of tensors).
        application: a `keras.applications` constructor, e.g.
            `keras.applications.ResNet50`.
        weights: "imagenet" or a path, passed to the constructor.

    Every layer of the application that has weights must exist under the same
    name in our graph, with the same weight shapes.
    """
    check_backbone_weights(weights, inputs.shape[-1])
    ours = keras.Model(inputs, features)
    reference = application(
        include_top=False, weights=weights, input_shape=(None, None, 3), **application_kwargs
    )
    for layer in reference.layers:
        values = layer.get_weights()
        if not values:
            continue
        try:
            target = ours.get_layer(layer.name)
        except ValueError as error:
            raise ValueError(
                f"Backbone has no layer named {layer.name!r} to receive "
                f"{application.__name__} weights."
            ) from error
        target.set_weights(values)
