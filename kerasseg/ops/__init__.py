"""Custom TensorFlow ops (C++ sources in `cc/`, built on first use by `loader`)
with pure-TF references beside them."""

from kerasseg.ops.permutohedral import (
    Lattice,
    custom_ops_available,
    gaussian_filter_fn,
    lattice_filter,
    normalized_gaussian_filter_fn,
    permutohedral_filter,
    permutohedral_lattice,
)
from kerasseg.ops.reference import gaussian_filter

__all__ = [
    "Lattice",
    "custom_ops_available",
    "gaussian_filter",
    "gaussian_filter_fn",
    "lattice_filter",
    "normalized_gaussian_filter_fn",
    "permutohedral_filter",
    "permutohedral_lattice",
]
