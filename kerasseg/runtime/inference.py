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

`predict_labels` gives the same labels as `predict(...).argmax(-1)` without
every class's probabilities at full resolution: it assembles the label map a
band of rows at a time, reading the input's rows as each band needs them and
running tiles a row of tiles at a time. A 48 MP photo then needs about the
memory of its pixels and labels, where the probabilities of 21 classes would
take 4 GB (`benchmarks/memory.py`).

Example:
    >>> probabilities = predict(forward, image, tile_size=(256, 256),
    ...                         scales=(0.75, 1.0, 1.25), flip=True)
    >>> labels = probabilities.argmax(-1)
"""

import numpy as np

from kerasseg.runtime.image import resize_bilinear, resized_rows
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


def predict_labels(forward, images, tile_size=None, overlap=1 / 3, weighting="gaussian",
                   scales=(1.0,), flip=False, batch_size=4, *, whole_view=None, band_rows=64):
    """Label maps (int32) of `images`, equal to `predict(...).argmax(-1)`, in
    bounded memory (see the module docstring).

    Args:
        forward, images, tile_size, overlap, weighting, scales, flip,
            batch_size: As `predict`.
        whole_view: For whole-image inference, a callable `(view_rows, size,
            batch_size) -> rows` that runs the model on a view of `size` whose
            rows `view_rows(indices)` gives, and returns `rows(indices)`: the
            view's class probabilities at those rows. None runs `forward` on
            the whole view (memory of its probabilities at full resolution).
        band_rows: Output rows assembled at a time.

    Returns:
        int32 labels (H, W) or (B, H, W), like `images`.
    """
    options = check_options(tile_size, overlap, weighting, scales, flip, batch_size)
    images = np.asarray(images)
    single = images.ndim == 3
    images = images[None] if single else images
    if images.ndim != 4:
        raise ValueError(
            "`images` must be (H, W, channels) or (batch, H, W, channels). "
            f"Received shape {images.shape}"
        )
    if options["tile_size"] is not None and len(images) > 1:  # tiles: one image at a time
        labels = np.concatenate([predict_labels(forward, images[index:index + 1],
                                                band_rows=band_rows, **options)
                                 for index in range(len(images))])
        return labels[0] if single else labels
    height, width = images.shape[1:3]
    views = []
    for scale in options["scales"]:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        for mirrored in (False, True) if flip else (False,):
            view = _view(images, size, mirrored)
            if options["tile_size"] is None:
                rows = (whole_view or _whole(forward))(view, size, batch_size)
            else:
                rows = _TiledRows(forward, view, size, options)
            views.append((_mirrored(rows) if mirrored else rows, size))
    labels = np.empty(images.shape[:3], np.int32)
    for start in range(0, height, band_rows):
        band = np.arange(start, min(start + band_rows, height))
        total = 0.0
        for rows, size in views:
            total = total + resized_rows(rows, size, (height, width), band)
        labels[:, band] = (total / len(views)).astype(np.float32).argmax(-1)
    return labels[0] if single else labels


def _view(images, size, mirrored):
    """Rows of `images` resized to `size` (and mirrored), float32, on demand."""
    def rows(indices):
        found = resized_rows(lambda i: images[:, i].astype(np.float32), images.shape[1:3],
                             size, indices)
        return found[:, :, ::-1] if mirrored else found

    return rows


def _mirrored(rows):
    return lambda indices: rows(indices)[:, :, ::-1]


def _whole(forward):
    """`whole_view` of a plain forward: the whole view at once."""
    def run(view, size, batch_size):
        probabilities = _batched(forward, view(np.arange(size[0])), batch_size)
        return lambda indices: probabilities[:, indices]

    return run


class _TiledRows:
    """Rows of `_sliding`'s result for one image's view, computed a row of
    tiles at a time, in the same order (so with the same sums): rows are
    final once no tile left to run covers them. Asked for in increasing
    order, it keeps only the rows it may be asked for again."""

    def __init__(self, forward, view, size, options):
        self.forward, self.view, self.size = forward, view, size
        self.batch_size = options["batch_size"]
        self.tile = tile_h, tile_w = options["tile_size"]
        self.padded = (max(size[0], tile_h), max(size[1], tile_w))
        stride_h = max(1, int(tile_h * (1 - options["overlap"])))
        stride_w = max(1, int(tile_w * (1 - options["overlap"])))
        self.origins = [(y, x) for y in tile_origins(self.padded[0], tile_h, stride_h)
                        for x in tile_origins(self.padded[1], tile_w, stride_w)]
        self.weights = window(self.tile, options["weighting"])[None, :, :, None]
        self.next = 0  # the first origin not run yet
        self.start = 0  # padded row of total[:, 0] and norm[:, 0]
        self.total = self.norm = None
        self.done, self.done_start = None, 0  # final rows kept, from row done_start
        self.inputs = {}  # tile row y -> the padded view's rows y .. y + tile_h

    def __call__(self, indices):
        while self.done is None or self.done_start + self.done.shape[1] <= indices[-1]:
            self._advance()
        keep = indices[0] - self.done_start  # asked in increasing order: older rows go
        self.done, self.done_start = self.done[:, keep:], indices[0]
        return self.done[:, indices - self.done_start]

    def _advance(self):
        """Runs the next `batch_size` tiles, then moves the rows they finished to `done`."""
        chunk = self.origins[self.next:self.next + self.batch_size]
        self.next += len(chunk)
        probabilities = _batched(self.forward, np.stack(
            [self._input_rows(y)[0, :, x:x + self.tile[1]] for y, x in chunk]), self.batch_size)
        for (y, x), tile in zip(chunk, probabilities, strict=True):
            self._extend(y + self.tile[0], tile.shape[-1])
            rows = slice(y - self.start, y - self.start + self.tile[0])
            self.total[:, rows, x:x + self.tile[1]] += tile * self.weights[0]
            self.norm[:, rows, x:x + self.tile[1]] += self.weights[..., :1]
        final = self.origins[self.next][0] if self.next < len(self.origins) else self.padded[0]
        count = final - self.start
        finished = (self.total[:, :count] / self.norm[:, :count])[:, :, :self.size[1]]
        finished = finished[:, :max(0, min(final, self.size[0]) - self.start)]
        self.total, self.norm = self.total[:, count:], self.norm[:, count:]
        self.start = final
        self.done = finished if self.done is None else np.concatenate([self.done, finished], 1)

    def _extend(self, end, channels):
        """Grows the running sums (zeros) to cover padded rows up to `end`."""
        if self.total is None:
            self.total = np.zeros((1, 0, self.padded[1], channels), np.float32)
            self.norm = np.zeros((1, 0, self.padded[1], 1), np.float32)
        missing = end - self.start - self.total.shape[1]
        if missing > 0:
            self.total = np.concatenate(
                [self.total, np.zeros((1, missing, *self.total.shape[2:]), np.float32)], 1)
            self.norm = np.concatenate(
                [self.norm, np.zeros((1, missing, *self.norm.shape[2:]), np.float32)], 1)

    def _input_rows(self, y):
        """The padded view's rows y .. y + tile_h (zeros past the view), kept
        for the tiles of row y (tiles run in order: earlier rows are done)."""
        if y not in self.inputs:
            end = min(y + self.tile[0], self.size[0])
            rows = self.view(np.arange(y, end))
            band = np.zeros((1, self.tile[0], self.padded[1], rows.shape[-1]), np.float32)
            band[:, :end - y, :self.size[1]] = rows
            self.inputs = {y: band}
        return self.inputs[y]


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
