"""Permutohedral Gaussian filtering: the C++ op against the exact pure-TF
reference, its gradient, and robustness. Tests marked with the `impl`
fixture run against both implementations."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.ops import (
    custom_ops_available,
    gaussian_filter,
    lattice_filter,
    loader,
    permutohedral,
    permutohedral_filter,
    permutohedral_lattice,
    reference,
)

# The lattice replaces the Gaussian by a piecewise-linear splat, a [1 2 1]
# blur along each of the d + 1 lattice directions and a slice: same spread,
# different shape and scale. Normalised filtering, filter(v) / filter(1), is
# what the CRF uses and is a weighted average of the values, so we bound its
# error relative to the range of the values. Measured on these images: mean
# 0.004-0.007, worst point 0.03 (2-D) to 0.12 (5-D, near colour edges).
MEAN_ERROR_BOUND = 0.02
MAX_ERROR_BOUND = 0.2

requires_op = pytest.mark.skipif(not custom_ops_available(),
                                 reason="the kerasseg C++ op could not be built here")


@pytest.fixture(params=["op", "reference"])
def impl(request):
    if request.param == "op" and not custom_ops_available():
        pytest.skip("the kerasseg C++ op could not be built here")
    return permutohedral_filter if request.param == "op" else gaussian_filter


def image_features(height, width, theta_xy=3.0, theta_rgb=None, batch=1, seed=0):
    """Position (and colour) features of a two-region noisy image."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:height, :width].astype(np.float32)
    features = [columns / theta_xy, rows / theta_xy]
    if theta_rgb:
        image = np.where(columns[..., None] > width / 2, 200.0, 40.0)
        image = image + rng.normal(0, 10, (height, width, 3))
        features += [image[..., i] / theta_rgb for i in range(3)]
    features = np.stack(features, -1).reshape(1, height * width, -1).astype(np.float32)
    return np.repeat(features, batch, 0)


def random_values(batch, points, channels, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (batch, points, channels)).astype(np.float32)


@requires_op
@pytest.mark.parametrize("theta_rgb", [None, 13.0], ids=["positions-2d", "bilateral-5d"])
def test_op_matches_exact_reference(theta_rgb):
    features = image_features(19, 23, theta_xy=3.0 if theta_rgb is None else 8.0,
                              theta_rgb=theta_rgb)
    values = random_values(1, features.shape[1], 4)
    ones = np.ones_like(values[..., :1])
    approx = permutohedral_filter(values, features) / permutohedral_filter(ones, features)
    exact = gaussian_filter(values, features) / gaussian_filter(ones, features)
    error = np.abs(approx - exact) / np.ptp(values)
    assert error.mean() < MEAN_ERROR_BOUND
    assert error.max() < MAX_ERROR_BOUND


@pytest.mark.parametrize("tile_elements", [reference.TILE_ELEMENTS, 20])
def test_exact_reference_formula(monkeypatch, tile_elements):
    monkeypatch.setattr(reference, "TILE_ELEMENTS", tile_elements)  # 20: tiles of 1 point
    features = np.random.default_rng(0).normal(size=(2, 9, 3)).astype(np.float32)
    values = random_values(2, 9, 2)
    distances = ((features[:, :, None] - features[:, None]) ** 2).sum(-1)
    expected = np.exp(-0.5 * distances) @ values
    np.testing.assert_allclose(gaussian_filter(values, features), expected, rtol=1e-5)
    # Unknown shapes take the tf.map_fn path.
    dynamic = tf.function(gaussian_filter, input_signature=[
        tf.TensorSpec([None, None, None], tf.float32)] * 2)
    np.testing.assert_allclose(dynamic(values, features), expected, rtol=1e-5)


def test_gradient_is_filter_transpose(impl):
    features = image_features(5, 7, theta_xy=1.5, theta_rgb=30.0)
    values = random_values(1, 35, 2)
    theoretical, numerical = tf.test.compute_gradient(
        lambda v: impl(v, features), [tf.constant(values)], delta=1e-2)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)


@requires_op
def test_features_get_no_gradient():
    features = tf.constant(image_features(4, 5, theta_rgb=13.0))
    values = tf.constant(random_values(1, 20, 3))
    with tf.GradientTape() as tape:
        tape.watch(features)
        out = permutohedral_filter(values, features)
    assert tape.gradient(out, features) is None


def test_batch_elements_are_independent(impl):
    features = np.concatenate([image_features(6, 9, theta_rgb=13.0, seed=s) for s in range(3)])
    features[1] *= 2.0  # a different lattice size per element
    values = random_values(3, 54, 5)
    batched = impl(values, features).numpy()
    for b in range(3):
        alone = impl(values[b:b + 1], features[b:b + 1]).numpy()
        np.testing.assert_allclose(batched[b:b + 1], alone, rtol=_batching_rtol(impl, features),
                                   atol=1e-6)


def _batching_rtol(impl, features):
    """What float32 can promise between a batched and a one-element call.

    The op filters each element with the same code whatever the batch: 1e-5.
    The reference forms |f_i - f_j|^2 as |f_i|^2 + |f_j|^2 - 2 f_i.f_j with
    matmuls whose blocking (so the order of their sums) depends on the batch
    and on the CPU's vector width (AVX2 and AVX-512 kernels differ). Each of
    the three terms is up to max |f|^2 and is rounded differently, so the
    distance can move by about 4 * eps * max |f|^2 and exp(-d / 2) by half
    that, relatively: 2 * eps * max |f|^2 (7e-4 here, where element 1's
    doubled colours reach |f|^2 = 3082; measured 3.7e-5 on an AVX2-only
    EPYC). Mixing elements up would move values by O(1).
    """
    if impl is permutohedral_filter:
        return 1e-5
    max_squared_norm = float(np.max(np.sum(np.square(features.astype(np.float64)), -1)))
    return 2 * float(np.finfo(np.float32).eps) * max_squared_norm


def test_empty_batch(impl):
    out = impl(np.zeros((0, 6, 2), np.float32), np.zeros((0, 6, 3), np.float32))
    assert out.shape == (0, 6, 2)


@pytest.mark.parametrize("height,width,channels", [(1, 1, 1), (7, 5, 1), (13, 17, 33)])
def test_odd_sizes_and_channels(impl, height, width, channels):
    features = image_features(height, width, theta_rgb=13.0)
    values = random_values(1, height * width, channels)
    out = impl(values, features).numpy()
    assert out.shape == values.shape
    # Linear and channel-wise: channels filtered together equal channels alone.
    np.testing.assert_allclose(out[..., -1:], impl(values[..., -1:], features), rtol=1e-5,
                               atol=1e-6)
    # Normalised filtering reproduces constants exactly.
    constant = impl(np.full_like(values, 3.0), features) / impl(values[..., :1] * 0 + 1, features)
    np.testing.assert_allclose(constant, 3.0, rtol=1e-5)


BAD_INPUTS = {
    "values rank 2": (np.ones((4, 2)), np.ones((1, 4, 2))),
    "features rank 4": (np.ones((1, 4, 2)), np.ones((1, 4, 2, 1))),
    "batch mismatch": (np.ones((2, 4, 2)), np.ones((1, 4, 2))),
    "points mismatch": (np.ones((1, 5, 2)), np.ones((1, 4, 2))),
    "zero-size image": (np.ones((1, 0, 2)), np.ones((1, 0, 2))),
    "no channels": (np.ones((1, 4, 0)), np.ones((1, 4, 2))),
    "no feature dims": (np.ones((1, 4, 2)), np.ones((1, 4, 0))),
    "nan feature": (np.ones((1, 4, 2)), np.array([[[0, 1], [np.nan, 0], [1, 1], [2, 2]]])),
    "inf feature": (np.ones((1, 4, 2)), np.array([[[0, 1], [np.inf, 0], [1, 1], [2, 2]]])),
    "nan value": (np.array([[[0, 1], [np.nan, 0], [1, 1], [2, 2]]]), np.ones((1, 4, 2))),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_invalid_argument(impl, case):
    values, features = (np.asarray(x, np.float32) for x in BAD_INPUTS[case])
    with pytest.raises(tf.errors.InvalidArgumentError):
        impl(values, features)


@requires_op
@pytest.mark.parametrize("magnitude", [1e7, 1e30, -3e38])
def test_huge_features_raise_invalid_argument(magnitude):
    # A bandwidth theta near zero makes features huge; the op refuses them
    # rather than overflowing its integer lattice coordinates.
    features = np.zeros((1, 4, 2), np.float32)
    features[0, 2, 1] = magnitude
    with pytest.raises(tf.errors.InvalidArgumentError, match="magnitude"):
        permutohedral_filter(np.ones((1, 4, 2), np.float32), features)


@requires_op
def test_shape_function_checks_ranks():
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def bad_rank(features):
        return permutohedral_lattice(features)

    with pytest.raises(ValueError, match="rank 3"):
        bad_rank.get_concrete_function()

    @tf.function(input_signature=[tf.TensorSpec([None, None, 5], tf.float32)])
    def lattice_shapes(features):
        lattice = permutohedral_lattice(features)
        assert lattice.offsets.shape.as_list() == [None, None, 6]
        assert lattice.neighbors.shape.as_list() == [None, 6, None, 2]
        return lattice_filter(tf.ones_like(features[..., :3]), lattice)

    assert lattice_shapes.get_concrete_function().output_shapes.as_list() == [None, None, 3]


@requires_op
@pytest.mark.parametrize("field,value", [
    ("offsets", 10**6), ("offsets", -1), ("neighbors", 10**6), ("neighbors", -2),
    ("num_vertices", 10**6), ("num_vertices", -1), ("weights", np.nan),
])
def test_tampered_lattice_raises_invalid_argument(field, value):
    features = image_features(4, 6, theta_rgb=13.0)
    lattice = permutohedral_lattice(features)
    array = getattr(lattice, field).numpy().copy()
    array.flat[array.size // 2] = value
    tampered = lattice._replace(**{field: tf.constant(array)})
    with pytest.raises(tf.errors.InvalidArgumentError):
        lattice_filter(random_values(1, 24, 2), tampered)


# The op's limits (kMaxFeatureMagnitude, kMaxFeatureDims in
# kerasseg/ops/cc/kernels/permutohedral_lattice.h).
MAX_FEATURE_MAGNITUDE = 1e6
MAX_FEATURE_DIMS = 16


def is_valid_input(values, features):
    """Whether the op must accept (values, features): at least one point and
    channel, 1..16 feature dims, finite features of magnitude <= 1e6."""
    _, points, channels = values.shape
    dims = features.shape[-1]
    return bool(points > 0 and channels > 0 and 1 <= dims <= MAX_FEATURE_DIMS
                and np.isfinite(features).all()
                and np.abs(features).max(initial=0) <= MAX_FEATURE_MAGNITUDE)


@requires_op
def test_fuzz_random_shapes_and_values():
    rng = np.random.default_rng(1234)
    cases = 60
    ran = []
    for _ in range(cases):
        batch, points = rng.integers(0, 4), rng.integers(0, 120)
        channels, dims = rng.integers(0, 6), rng.integers(0, 7)
        scale = 10.0 ** rng.uniform(-3, 8)
        features = (rng.normal(size=(batch, points, dims)) * scale).astype(np.float32)
        values = rng.normal(size=(batch, points, channels)).astype(np.float32)
        if rng.uniform() < 0.1 and features.size:
            features.flat[rng.integers(features.size)] = rng.choice([np.nan, np.inf, -np.inf])
        valid = is_valid_input(values, features)
        try:
            out = permutohedral_filter(values, features).numpy()
        except tf.errors.InvalidArgumentError:
            # Only invalid inputs may be refused.
            assert not valid, (batch, points, channels, dims, scale)
            continue
        assert valid, ("accepted an invalid input", batch, points, channels, dims, scale)
        ran.append((batch, points, channels, dims))
        assert out.shape == values.shape and np.isfinite(out).all()
        ones = permutohedral_filter(np.ones_like(values[..., :1]), features).numpy()
        assert (ones > 0).all()
    # Every valid case ran (checked above), and they are a real share of the cases.
    assert len(ran) >= cases // 3, ran
    # Random garbage where a lattice belongs: an error or a finite result.
    for _ in range(40):
        lattice = permutohedral_lattice(image_features(3, 4, theta_rgb=13.0))
        garbage = {name: tf.constant(rng.integers(-2, 30, t.shape).astype(np.int32))
                   for name, t in lattice._asdict().items() if t.dtype == tf.int32}
        try:
            out = lattice_filter(random_values(1, 12, 2), lattice._replace(**garbage))
        except tf.errors.InvalidArgumentError:
            continue
        assert np.isfinite(out.numpy()).all()


ONE_THREAD_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
from kerasseg.ops import permutohedral
values, features = np.load(sys.argv[1]), np.load(sys.argv[2])
lattice = permutohedral.permutohedral_lattice(features)
ops = permutohedral._ops()
np.savez(sys.argv[3], offsets=lattice.offsets, neighbors=lattice.neighbors,
         filtered=[ops.kerasseg_permutohedral_filter(values, *lattice, reverse=r)
                   for r in (False, True)])
"""


@requires_op
@pytest.mark.slow  # starts a second TensorFlow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one thread here too")
def test_results_do_not_depend_on_the_thread_count(tmp_path):
    # The threads split the lattice construction and the filter's splat, blur
    # and slice, but every vertex and point still sums its terms in the same
    # order: same lattice and bit-for-bit the same result as one thread (in a
    # subprocess: TensorFlow fixes its thread count when it starts; here it
    # uses one per core).
    features = image_features(96, 100, theta_xy=8.0, theta_rgb=13.0)
    values = random_values(1, features.shape[1], 3)
    paths = [tmp_path / name for name in ("values.npy", "features.npy", "out.npz")]
    np.save(paths[0], values)
    np.save(paths[1], features)
    environment = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]),
                       CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", ONE_THREAD_SCRIPT, *map(str, paths)],
                   env=environment, capture_output=True, check=True)
    one_thread = np.load(paths[2])
    lattice = permutohedral_lattice(features)
    ops = permutohedral._ops()
    np.testing.assert_array_equal(lattice.offsets, one_thread["offsets"])
    np.testing.assert_array_equal(lattice.neighbors, one_thread["neighbors"])
    np.testing.assert_array_equal(
        [ops.kerasseg_permutohedral_filter(values, *lattice, reverse=r) for r in (False, True)],
        one_thread["filtered"])


def test_concurrent_calls_from_threads(impl):
    inputs = [(random_values(2, 40, 3, seed=s), image_features(5, 8, theta_rgb=13.0, batch=2,
                                                              seed=s)) for s in range(4)]
    expected = [impl(v, f).numpy() for v, f in inputs]
    results, errors = {}, []

    def work(index):
        try:
            for _ in range(5):
                results[index] = impl(*inputs[index]).numpy()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for index, value in enumerate(expected):
        np.testing.assert_allclose(results[index], value, rtol=1e-6)


def test_missing_compiler_falls_back_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("KERASSEG_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.delenv("KERASSEG_DISABLE_CUSTOM_OPS", raising=False)
    with pytest.warns(RuntimeWarning, match="falls back to the exact pure-TF") as record:
        assert loader.load_ops.__wrapped__() is None
    assert len(record) == 1


def test_disable_env_forces_fallback(monkeypatch):
    monkeypatch.setenv("KERASSEG_DISABLE_CUSTOM_OPS", "1")
    assert loader.load_ops.__wrapped__() is None


def test_cache_path_tracks_tensorflow_version_and_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("KERASSEG_CACHE_DIR", str(tmp_path))
    path = loader.library_path()
    assert path.parent.parent == tmp_path / "ops"
    assert path.parent.name.startswith(tf.__version__ + "-")
    monkeypatch.setattr(tf, "__version__", "9.99.0")
    assert loader.library_path() != path
