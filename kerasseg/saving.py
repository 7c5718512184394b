"""Loading `.keras` files that contain kerasseg layers, losses and metrics."""

import os
import zipfile

from kerasseg.utils import KerassegError


def load_model(path, compile=False, safe_mode=True):
    """Loads a `.keras` model saved from any kerasseg builder or training run.

    `import kerasseg` is lazy and registers nothing, so plain
    `keras.saving.load_model` may not know our classes yet; this imports
    every module that registers one, then loads.

    Args:
        path: the `.keras` file.
        compile: also restore the loss, metrics and optimizer state.
        safe_mode: refuse files that would run arbitrary code (Lambda layers).

    Returns:
        The `keras.Model`.
    """
    import keras

    import kerasseg.layers  # noqa: F401
    import kerasseg.losses  # noqa: F401
    import kerasseg.metrics  # noqa: F401
    import kerasseg.models  # noqa: F401
    import kerasseg.panoptic.losses  # noqa: F401
    import kerasseg.schedules  # noqa: F401
    import kerasseg.train  # noqa: F401
    from kerasseg.panoptic import PanopticQuality  # noqa: F401 (created and registered on use)

    check_model_file(path, "a .keras file")
    if not zipfile.is_zipfile(path):  # Keras says "File not found" for these
        raise KerassegError(f"{path!r} is not a .keras file (a zip archive): corrupt, "
                            "truncated or another format.")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=safe_mode)
    except (ValueError, TypeError, KeyError, OSError) as error:
        # Keras' own message (an unknown layer, a Lambda refused in safe mode,
        # a damaged archive), on one line, naming the file.
        cause = " ".join(str(error).split())
        raise KerassegError(f"Could not load {path!r} as a Keras model: {cause}") from error


def check_model_file(path, expected):
    """Raises FileNotFoundError / IsADirectoryError naming `path` and `expected`
    (e.g. "a .keras file") unless `path` is a file."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory; expected {expected}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {path!r} (expected {expected})")
