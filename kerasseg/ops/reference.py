"""Exact dense Gaussian filtering in pure TensorFlow.

The oracle for the permutohedral op in tests, and its fallback where the op
cannot be built. It costs O(points^2) time, tiled so that memory stays bounded.
"""

import tensorflow as tf

# Kernel-matrix elements held at once per tile (64 MiB of float32).
TILE_ELEMENTS = 1 << 24


def check_filter_inputs(values, features):
    """Converts to float32 and checks shapes and values; the checks raise
    `tf.errors.InvalidArgumentError` like the C++ op does."""
    values = tf.convert_to_tensor(values, tf.float32)
    features = tf.convert_to_tensor(features, tf.float32)
    tf.debugging.assert_equal(tf.rank(values), 3,
                              message="values must be rank 3 [batch, points, channels]")
    tf.debugging.assert_equal(tf.rank(features), 3,
                              message="features must be rank 3 [batch, points, dims]")
    values_shape, features_shape = tf.shape(values), tf.shape(features)
    tf.debugging.assert_equal(values_shape[:2], features_shape[:2],
                              message="values and features must have the same batch and points")
    tf.debugging.assert_positive(values_shape[1:], message="values must have points and channels")
    tf.debugging.assert_positive(features_shape[2], message="features must have dimensions")
    tf.debugging.assert_all_finite(values, "values must be finite")
    tf.debugging.assert_all_finite(features, "features must be finite")
    return values, features


def gaussian_filter(values, features):
    """Exact Gaussian filter: `out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j`.

    Args:
        values: `[batch, points, channels]` float32.
        features: `[batch, points, dims]` float32, already divided by the
            kernel bandwidths.

    Returns:
        `[batch, points, channels]` float32. The sum includes `j = i`.

    Example:
        >>> out = gaussian_filter(tf.ones([1, 4, 2]), tf.zeros([1, 4, 3]))  # all 4.0
    """
    values, features = check_filter_inputs(values, features)
    squared_norms = tf.reduce_sum(tf.square(features), -1)

    def filter_tile(query):
        distances = (tf.reduce_sum(tf.square(query), -1)[:, :, None] + squared_norms[:, None, :]
                     - 2.0 * tf.matmul(query, features, transpose_b=True))
        return tf.matmul(tf.exp(-0.5 * tf.maximum(distances, 0.0)), values)

    batch, points = features.shape[0], features.shape[1]
    if batch is not None and points is not None:  # always so when eager
        tile = max(1, TILE_ELEMENTS // max(1, batch * points))
        return tf.concat([filter_tile(features[:, i:i + tile])
                          for i in range(0, max(points, 1), tile)], 1)

    batch, points = tf.shape(features)[0], tf.shape(features)[1]
    tile = tf.maximum(1, TILE_ELEMENTS // tf.maximum(1, batch * points))
    num_tiles = (points + tile - 1) // tile
    padded = tf.pad(features, [[0, 0], [0, num_tiles * tile - points], [0, 0]])
    # [num_tiles, batch, tile, dims]: map_fn runs the tiles one after another.
    queries = tf.transpose(tf.reshape(padded, [batch, num_tiles, tile, -1]), [1, 0, 2, 3])
    tiles = tf.map_fn(filter_tile, queries, fn_output_signature=tf.float32)
    out = tf.reshape(tf.transpose(tiles, [1, 0, 2, 3]), [batch, num_tiles * tile, -1])
    return out[:, :points]
