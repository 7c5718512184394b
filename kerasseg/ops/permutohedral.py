"""Gaussian filtering with the permutohedral lattice (C++ op) and its gradient.

`permutohedral_filter(values, features)` approximates the dense Gaussian filter
`out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j` in O(points) time (Adams, Baek and
Davis, "Fast High-Dimensional Filtering Using the Permutohedral Lattice",
2010). The caller builds the features and divides them by the kernel
bandwidths: for a bilateral kernel with bandwidths theta_xy and theta_rgb,
`features = [x / theta_xy, y / theta_xy, r / theta_rgb, g / theta_rgb, b / theta_rgb]`.

The lattice depends only on the features, so `gaussian_filter_fn` builds it
once and returns a function that filters any number of value tensors with it
(a dense CRF filters every mean-field iteration with the same lattice).

The op approximates the Gaussian: compared with the exact filter its kernel
has the same spread but a different shape and scale, so use it normalised
(`filter(v) / filter(1)`), as the dense CRF does.

Gradients: the filter is linear in `values` and its transpose is the same
filter with the blur directions reversed, which is the registered gradient.
Features get no gradient (the lattice is piecewise constant in them).

Where the op cannot be built (see `kerasseg.ops.loader`), every function here
uses the exact pure-TF `reference.gaussian_filter` after one warning.
"""

import collections
import functools
import math

import tensorflow as tf

from kerasseg.ops import loader, reference

Lattice = collections.namedtuple("Lattice", ["offsets", "weights", "neighbors", "num_vertices"])
Lattice.__doc__ = """Tensors of `kerasseg_permutohedral_lattice`, one lattice per batch element."""


@functools.cache
def _ops():
    """The op module with gradients registered, or None (fallback)."""
    ops = loader.load_ops()
    if ops is None:
        return None

    def filter_gradient(op, grad):
        transposed = ops.kerasseg_permutohedral_filter(
            grad, *op.inputs[1:], reverse=not op.get_attr("reverse"))
        return [transposed, None, None, None, None]

    try:
        tf.no_gradient("Kerasseg>PermutohedralLattice")
        tf.RegisterGradient("Kerasseg>PermutohedralFilter")(filter_gradient)
    except KeyError:  # already registered by a concurrent first call
        pass
    return ops


def custom_ops_available():
    """Whether the C++ op is loaded (False means the pure-TF fallback is used)."""
    return _ops() is not None


def permutohedral_lattice(features):
    """Builds one lattice per batch element.

    Args:
        features: `[batch, points, dims]` float32, finite, magnitude at most 1e6,
            1 <= dims <= 16.

    Returns:
        A `Lattice`.

    Raises:
        RuntimeError: when the C++ op is unavailable.
    """
    ops = _ops()
    if ops is None:
        raise RuntimeError("the kerasseg C++ ops are unavailable; see the earlier warning")
    return Lattice(*ops.kerasseg_permutohedral_lattice(tf.convert_to_tensor(features, tf.float32)))


def lattice_filter(values, lattice):
    """Filters `[batch, points, channels]` values with a `Lattice`."""
    return _ops().kerasseg_permutohedral_filter(tf.convert_to_tensor(values, tf.float32), *lattice)


def gaussian_filter_fn(features):
    """Returns `filter(values)`, the Gaussian filter for fixed `features`.

    With the C++ op the lattice is built here, once; otherwise the function
    is the exact reference.

    Args:
        features: `[batch, points, dims]`, already divided by the bandwidths.

    Returns:
        A function mapping `[batch, points, channels]` values to filtered values.

    Example:
        >>> smooth = gaussian_filter_fn(positions / 3.0)
        >>> norm = smooth(tf.ones_like(q[..., :1])); out = smooth(q) / norm
    """
    if _ops() is None:
        # Same contract as the op: no gradient for the features.
        features = tf.stop_gradient(tf.convert_to_tensor(features, tf.float32))
        return functools.partial(reference.gaussian_filter, features=features)
    lattice = permutohedral_lattice(features)
    return functools.partial(lattice_filter, lattice=lattice)


def normalized_gaussian_filter_fn(features, scale=1.0):
    """Returns the symmetrically normalised Gaussian filter for `features`.

    The filter is `scale * D^-1/2 K D^-1/2` with `K` the Gaussian kernel
    matrix and `D = diag(K 1)`, pydensecrf's default normalisation: symmetric,
    so its own transpose, and close to an average. With the C++ op both
    diagonal factors and `sqrt(scale)` are folded into the lattice's
    barycentric weights (the same weights splat and slice), so normalisation
    and scaling cost nothing per call.

    Args:
        features: `[batch, points, dims]`, already divided by the bandwidths.
        scale: a number >= 0 that multiplies the filter (a kernel weight).

    Returns:
        A function mapping `[batch, points, channels]` values to filtered values.
    """
    if _ops() is None:
        smooth = gaussian_filter_fn(features)
        norm = tf.math.rsqrt(smooth(tf.ones_like(features[..., :1])) + 1e-20)
        return lambda values: (scale * norm) * smooth(values * norm)
    lattice = permutohedral_lattice(features)
    ones = tf.ones_like(lattice.weights[..., :1])
    norm = tf.math.rsqrt(lattice_filter(ones, lattice) + 1e-20) * math.sqrt(scale)
    return functools.partial(lattice_filter, lattice=lattice._replace(
        weights=lattice.weights * norm))


def permutohedral_filter(values, features):
    """Approximate Gaussian filter `out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j`.

    Args:
        values: `[batch, points, channels]` float32, finite.
        features: `[batch, points, dims]` float32, already divided by the
            kernel bandwidths; they receive no gradient.

    Returns:
        `[batch, points, channels]` float32.

    Example:
        >>> out = permutohedral_filter(tf.ones([2, 100, 21]), tf.random.normal([2, 100, 5]))
    """
    return gaussian_filter_fn(features)(values)
