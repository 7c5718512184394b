"""What every runtime backend exposes: `TensorInfo` for each input and output,
and `ModelLoadError` for a file that exists but cannot be loaded."""

import dataclasses
import os

import numpy as np


class ModelLoadError(ValueError):
    """A model file exists but cannot be loaded (corrupt, truncated, wrong format)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for dynamic dimensions), dtype and affine
    quantisation (scale, zero_point) of a model input or output."""

    name: str
    shape: tuple
    dtype: np.dtype
    quantization: tuple = None


def load_error(path, kind, error):
    """The `ModelLoadError` of a file that `kind`'s engine could not load."""
    return ModelLoadError(
        f"Could not load {os.fspath(path)!r} as a {kind} model; the file is corrupt, "
        f"truncated or not a {kind} model. Cause: {error}"
    )
