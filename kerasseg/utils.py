"""Argument validation shared by every builder and layer.

Every error names the argument, what was expected and what was received, in
the form Keras uses (`Received: output_stride=12`).
"""

import importlib
import numbers


class KerassegError(ValueError):
    """An error kerasseg raises on purpose: bad input or a file that cannot be
    used, with a message that names it and what was expected. A ValueError,
    as Keras raises for bad arguments, so `except ValueError` catches it.

    The `kerasseg` program prints such an error as one line (and so every
    `ValueError`, `OSError` or `ImportError` that a `raise` statement in
    kerasseg's own code raises: the argument checks follow Keras and raise
    `ValueError`); anything else is a bug, shown with its traceback.
    """


def check_choice(argument, value, choices):
    """Raise ValueError unless `value` is one of `choices`."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{argument}` must be one of {valid}. Received: {argument}={value!r}")
    return value


def check_positive_int(argument, value, minimum=1):
    """Raise ValueError unless `value` is an integer (Python's or NumPy's) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"`{argument}` must be an integer >= {minimum}. Received: {argument}={value!r}"
        )
    return value


def check_type(argument, value, expected):
    """Raise ValueError unless `value` is an instance of `expected` (a type or tuple)."""
    if not isinstance(value, expected) or (isinstance(value, bool) and expected in (int, float)):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple)
                                                  else (expected,)))
        raise ValueError(f"`{argument}` must be of type {names}. Received: {argument}={value!r}")
    return value


def check_number(argument, value, minimum=None, maximum=None, low_open=False, high_open=False):
    """Raise ValueError unless `value` is a real number in the given interval.

    `minimum`/`maximum` None leave that side unbounded; `low_open`/`high_open`
    exclude the bound itself. The message states the interval.
    """
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if valid and minimum is not None:
        valid = value > minimum if low_open else value >= minimum
    if valid and maximum is not None:
        valid = value < maximum if high_open else value <= maximum
    if not valid:
        low, high = "(" if low_open else "[", ")" if high_open else "]"
        interval = (f"{low}{'-inf' if minimum is None else minimum}, "
                    f"{'inf' if maximum is None else maximum}{high}")
        raise ValueError(f"`{argument}` must be a number in {interval}. "
                         f"Received: {argument}={value!r}")
    return value


def check_rate(argument, value):
    """Raise ValueError unless `value` is a number in [0, 1)."""
    return float(check_number(argument, value, 0, 1, high_open=True))


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


def lazy_attributes(package, attributes, submodules=()):
    """`__getattr__` and `__dir__` for a package that imports on first use.

    `import kerasseg` and `import kerasseg.data` stay cheap (no TensorFlow):
    a public name resolves to its defining module only when it is used.

    Args:
        package: The package's `__name__`.
        attributes: {public name: module that defines it}.
        submodules: Names of the package's submodules reachable as attributes.

    Returns:
        (`__getattr__`, `__dir__`), to assign in the package's namespace.
    """

    def __getattr__(name):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in attributes:
            return getattr(importlib.import_module(attributes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        namespace = importlib.import_module(package).__dict__
        return sorted([*namespace, *attributes, *submodules])

    return __getattr__, __dir__
