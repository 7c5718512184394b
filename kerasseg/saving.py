"""Loading `.keras` files that contain kerasseg layers, losses and metrics."""

import os


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

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {path!r} (expected a .keras file)")
    return keras.saving.load_model(path, compile=compile, safe_mode=safe_mode)
