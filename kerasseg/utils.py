"""Argument validation shared by every builder and layer.

Every error names the argument, what was expected and what was received, in
the form Keras uses (`Received: output_stride=12`).
"""

import numbers


def check_choice(argument, value, choices):
    """Raise ValueError unless `value` is one of `choices`."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{argument}` must be one of {valid}. Received: {argument}={value!r}")
    return value


def check_positive_int(argument, value, minimum=1):
    """Raise ValueError unless `value` is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{argument}` must be an integer >= {minimum}. Received: {argument}={value!r}"
        )
    return value


def check_rate(argument, value):
    """Raise ValueError unless `value` is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{argument}` must be a number in [0, 1). Received: {argument}={value!r}")
    return float(value)


def check_input_shape(input_shape, min_channels=1):
    """Validate a (height, width, channels) tuple; height/width may be None."""
    if input_shape is None or len(tuple(input_shape)) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels), height and width "
            f"may be None. Received: input_shape={input_shape!r}"
        )
    height, width, channels = input_shape
    for dim in (height, width):
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(
                "`input_shape` height and width must be positive integers or None. "
                f"Received: input_shape={input_shape!r}"
            )
    if not isinstance(channels, int) or channels < min_channels:
        raise ValueError(
            f"`input_shape` must have a known channel count >= {min_channels}. "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def load_model_weights(model, weights):
    """Loads a full-model weights file (`weights` argument of every builder)."""
    import os

    if weights is None:
        return model
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError(
            f"`weights` must be None or the path of an existing weights file. "
            f"Received: weights={weights!r}"
        )
    model.load_weights(weights)
    return model
