"""Inference on whole images, by overlapping tiles, and over scales and flips.

Written once over a *forward* callable, so that the Keras path
(`kerasseg.inference.predict`, `kerasseg predict/evaluate`) and the exported
files (`kerasseg.runtime.Segmenter`) share it; NumPy only.

`predict(forward, images, ...)` returns per-pixel class probabilities at the
input resolution; `argmax(-1)` gives the label map. Options combine:

- `tile_size=None`: the whole image in one pass. With a `tile_size`, the image
  is cut into tiles overlapping by `overlap` (a fraction of the tile), images
  smaller than a tile are padded, and the tiles' probabilities are blended
  with a `"gaussian"` window (centre pixels count more, which hides tile
  seams) or a `"uniform"` one.
- `scales` and `flip`: the image is resized to each scale (and mirrored), each
  is predicted, and the probabilities, resized back, are averaged.

Example:
    >>> probabilities = predict(forward, image, tile_size=(256, 256),
    ...                         scales=(0.75, 1.0, 1.25), flip=True)
    >>> labels = probabilities.argmax(-1)
"""

import numpy as np

from kerasseg.runtime.image import resize_bilinear
from kerasseg.utils import check_choice, check_positive_int

WEIGHTINGS = ("gaussian", "uniform")


def check_options(tile_size=None, overlap=1 / 3, weighting="gaussian", scales=(1.0,),
                  flip=False, batch_size=4):
    """Validates the inference options; returns them as a dict, `tile_size` a tuple."""
    check_choice("weighting", weighting, WEIGHTINGS)
    check_positive_int("batch_size", batch_size)
    if not 0 <= overlap < 1:
        raise ValueError(f"`overlap` must be in [0, 1). Received: overlap={overlap!r}")
    if not scales or any(scale <= 0 for scale in scales):
        raise ValueError(f"`scales` must be positive numbers. Received: scales={scales!r}")
    if tile_size is not None:
        tile_size = tuple(int(v) for v in tile_size)
        if len(tile_size) != 2 or min(tile_size) < 1:
            raise ValueError(
                f"`tile_size` must be (height, width) or None. Received: tile_size={tile_size!r}"
            )
    return {"tile_size": tile_size, "overlap": overlap, "weighting": weighting,
            "scales": tuple(scales), "flip": bool(flip), "batch_size": batch_size}


def predict(forward, images, tile_size=None, overlap=1 / 3, weighting="gaussian",
            scales=(1.0,), flip=False, batch_size=4):
    """Class probabilities of `images` (see the module docstring).

    Args:
        forward: Callable from float32 images (N, h, w, channels) to float32
            class probabilities (N, h, w, C), at any size it is given.
        images: One image (H, W, channels) or a batch (B, H, W, channels).
        tile_size: (height, width) of sliding-window tiles, or None for
            whole-image inference.
        overlap: Overlap of neighbouring tiles, a fraction in [0, 1).
        weighting: How tile predictions are blended: "gaussian" or "uniform".
        scales: Resize factors to predict at; results are averaged.
        flip: Also predict the horizontally mirrored image at every scale.
        batch_size: Tiles or images per `forward` call.

    Returns:
        float32 probabilities (H, W, C) or (B, H, W, C), like `images`.
    """
    options = check_options(tile_size, overlap, weighting, scales, flip, batch_size)
    images = np.asarray(images, np.float32)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(
            "`images` must be (H, W, channels) or (batch, H, W, channels). "
            f"Received shape {images.shape}"
        )
    height, width = images.shape[1:3]
    total = 0.0
    for scale in options["scales"]:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = resize_bilinear(images, size)
        for mirrored in (False, True) if flip else (False,):
            view = scaled[:, :, ::-1] if mirrored else scaled
            if options["tile_size"] is None:
                probabilities = _batched(forward, view, batch_size)
            else:
                probabilities = _sliding(forward, view, options["tile_size"], overlap, weighting,
                                         batch_size)
            if mirrored:
                probabilities = probabilities[:, :, ::-1]
            total = total + resize_bilinear(probabilities, (height, width))
    result = (total / (len(options["scales"]) * (2 if flip else 1))).astype(np.float32)
    return result[0] if single else result


def tile_origins(length, tile, stride):
    """Start offsets of tiles of `tile` pixels covering `length` (>= tile) with `stride`."""
    starts = list(range(0, max(length - tile, 0) + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def window(tile_size, weighting="gaussian"):
    """Blending weights of one tile: a Gaussian (sigma = size / 4) or ones."""
    check_choice("weighting", weighting, WEIGHTINGS)
    if weighting == "uniform":
        return np.ones(tile_size, np.float32)
    axes = []
    for size in tile_size:
        coordinates = np.arange(size, dtype=np.float32) - (size - 1) / 2
        axes.append(np.exp(-0.5 * (coordinates / (size / 4)) ** 2))
    weights = np.outer(*axes)
    return (weights / weights.max()).astype(np.float32)


def _sliding(forward, images, tile_size, overlap, weighting, batch_size):
    batch, height, width = images.shape[:3]
    tile_h, tile_w = tile_size
    # Pad (bottom/right) so the image is at least one tile; cropped off at the end.
    pad_h, pad_w = max(0, tile_h - height), max(0, tile_w - width)
    if pad_h or pad_w:
        images = np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    padded_h, padded_w = images.shape[1:3]
    stride_h = max(1, int(tile_h * (1 - overlap)))
    stride_w = max(1, int(tile_w * (1 - overlap)))
    origins = [(y, x) for y in tile_origins(padded_h, tile_h, stride_h)
               for x in tile_origins(padded_w, tile_w, stride_w)]
    weights = window(tile_size, weighting)[None, :, :, None]
    total, norm = None, np.zeros((1, padded_h, padded_w, 1), np.float32)
    for y, x in origins:
        norm[:, y:y + tile_h, x:x + tile_w] += weights[..., :1]
    for index in range(batch):
        tiles = np.stack([images[index, y:y + tile_h, x:x + tile_w] for y, x in origins])
        probabilities = _batched(forward, tiles, batch_size)
        if total is None:
            total = np.zeros((batch, padded_h, padded_w, probabilities.shape[-1]), np.float32)
        for (y, x), tile in zip(origins, probabilities, strict=True):
            total[index, y:y + tile_h, x:x + tile_w] += tile * weights[0]
    return (total / norm)[:, :height, :width]


def _batched(forward, images, batch_size):
    return np.concatenate([np.asarray(forward(images[start:start + batch_size]), np.float32)
                           for start in range(0, len(images), batch_size)])
