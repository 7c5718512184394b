"""NumPy versions of the resizing and post-processing the Keras path does.

`resize_bilinear` matches `tf.image.resize(..., "bilinear")` (half-pixel
centres, no antialiasing), which is also what TFLite's RESIZE_BILINEAR and the
ONNX Resize of our exported graphs compute.
"""

import numpy as np


def _axis(out_size, in_size):
    """Source indices and weights for one axis, half-pixel centres."""
    source = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    source = np.clip(source, 0.0, in_size - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    return lower, upper, (source - lower).astype(np.float32)


def resize_bilinear(images, size):
    """Resizes (N, H, W, C) float images to `size` = (height, width)."""
    height, width = size
    if images.shape[1:3] == (height, width):
        return images
    images = images.astype(np.float32, copy=False)
    top, bottom, wy = _axis(height, images.shape[1])
    left, right, wx = _axis(width, images.shape[2])
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    rows = images[:, top] * (1 - wy) + images[:, bottom] * wy
    return rows[:, :, left] * (1 - wx) + rows[:, :, right] * wx


def resized_rows(rows_of, in_size, out_size, indices):
    """Rows `indices` of `resize_bilinear(source, out_size)`, equal to them,
    reading only the source rows they need.

    Args:
        rows_of: Callable from sorted source row indices to those rows of
            the (N, in_height, in_width, C) source.
        in_size: (in_height, in_width) of the source.
        out_size: (height, width) to resize to.
        indices: Sorted output row indices.

    Returns:
        (N, len(indices), width, C): those rows, float32 (or the source's own
        rows, unchanged, when the sizes are equal, as `resize_bilinear`).
    """
    if tuple(in_size) == tuple(out_size):
        return rows_of(indices)
    top, bottom, wy = (part[indices] for part in _axis(out_size[0], in_size[0]))
    left, right, wx = _axis(out_size[1], in_size[1])
    needed = np.unique(np.concatenate([top, bottom]))
    source = np.asarray(rows_of(needed)).astype(np.float32, copy=False)
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    rows = (source[:, np.searchsorted(needed, top)] * (1 - wy)
            + source[:, np.searchsorted(needed, bottom)] * wy)
    return rows[:, :, left] * (1 - wx) + rows[:, :, right] * wx


def resize_nearest(labels, size):
    """Resizes (N, H, W) label maps to `size` with half-pixel nearest neighbours."""
    height, width = size
    rows = np.minimum(((np.arange(height) + 0.5) * labels.shape[1] / height).astype(int),
                      labels.shape[1] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * labels.shape[2] / width).astype(int),
                      labels.shape[2] - 1)
    return labels[:, rows][:, :, cols]


def softmax(logits, axis=-1):
    """Numerically stable softmax."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(logits):
    """Numerically stable logistic function."""
    logits = np.asarray(logits, np.float32)
    exp = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1 / (1 + exp), exp / (1 + exp)).astype(np.float32)


def to_probabilities(output, from_logits):
    """Class probabilities (..., C) of a model's output (..., C).

    A one-channel output is a foreground score (a portrait model ending in a
    sigmoid, or its logit): its classes are background and foreground, with
    probabilities [1 - p, p]. Otherwise softmax of logits, or the output as is.
    """
    output = np.asarray(output, np.float32)
    if output.shape[-1] == 1:
        foreground = sigmoid(output) if from_logits else output
        return np.concatenate([1 - foreground, foreground], axis=-1)
    return softmax(output) if from_logits else output


def colorize(labels, palette):
    """Maps a label map to RGB with `palette` ((num_classes, 3) uint8); labels
    outside the palette are drawn black."""
    palette = np.asarray(palette, dtype=np.uint8)
    padded = np.concatenate([palette, np.zeros((1, 3), np.uint8)])
    index = np.where((labels >= 0) & (labels < len(palette)), labels, len(palette))
    return padded[index]
