"""Pictures of segmentations, drawn with numpy and OpenCV (no matplotlib).

Images are RGB uint8 arrays; `save_image` writes them as PNG.

Example:
    >>> rgb = overlay(image, labels, alpha=0.5)
    >>> save_image("overlay.png", rgb)
    >>> save_image("confusion.png", confusion_matrix_image(confusion, class_names))
"""

import os

import cv2
import numpy as np

from kerasseg.data.labels import IGNORE_LABEL, voc_palette


def colorize(labels, palette=None, ignore_label=IGNORE_LABEL, ignore_color=(255, 255, 255)):
    """Colours a label map (H, W) of class ids with `palette`; returns (H, W, 3) uint8.

    Args:
        labels: Integer array of class ids.
        palette: (num_classes, 3) uint8 RGB colours; None uses `voc_palette`
            sized to the labels.
        ignore_label: Label drawn in `ignore_color`.
        ignore_color: RGB colour of ignored pixels.

    Returns:
        The RGB picture.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"`labels` must be (height, width). Received shape {labels.shape}")
    ignored = labels == ignore_label
    valid = labels[~ignored]
    if palette is None:
        palette = voc_palette(int(valid.max()) + 1 if valid.size else 1)
    palette = np.asarray(palette, np.uint8)
    if valid.size and (valid.min() < 0 or valid.max() >= len(palette)):
        raise ValueError(
            f"`labels` holds class ids up to {int(valid.max())}, but the palette has "
            f"{len(palette)} colours."
        )
    picture = palette[np.where(ignored, 0, labels)]
    picture[ignored] = ignore_color
    return picture


def overlay(image, labels, palette=None, alpha=0.5, ignore_label=IGNORE_LABEL):
    """Blends the colourised `labels` over an RGB `image`; ignored pixels stay as they are.

    Args:
        image: RGB image (H, W, 3), uint8 or float in [0, 255].
        labels: Label map (H, W).
        palette: As in `colorize`.
        alpha: Weight of the label colours, in [0, 1].
        ignore_label: Label left uncoloured.

    Returns:
        The blended (H, W, 3) uint8 picture.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    image = np.clip(np.asarray(image, np.float32), 0, 255)
    labels = np.asarray(labels)
    if image.shape[:2] != labels.shape:
        raise ValueError(
            f"`image` {image.shape[:2]} and `labels` {labels.shape} must have the same size."
        )
    colours = colorize(labels, palette, ignore_label).astype(np.float32)
    blend = np.where((labels == ignore_label)[..., None], 0.0, alpha)
    return np.rint(image * (1 - blend) + colours * blend).astype(np.uint8)


def side_by_side(*pictures, gap=4):
    """RGB pictures of equal height placed left to right with white gaps."""
    height = pictures[0].shape[0]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    parts = []
    for picture in pictures:
        if picture.shape[0] != height:
            raise ValueError("All pictures must have the same height.")
        parts += [np.asarray(picture, np.uint8), spacer]
    return np.concatenate(parts[:-1], axis=1)


def confusion_matrix_image(confusion, class_names=None, normalize=True, cell=48):
    """A confusion matrix drawn as a picture: rows ground truth, columns prediction.

    Each cell is shaded white to blue by its share of the row (the recall of
    the row's class on the diagonal) and shows that share in percent, or the
    count when `normalize` is False.

    Args:
        confusion: (C, C) counts, rows ground truth.
        class_names: C names for the axes; None uses the class indices.
        normalize: Print row-normalised percentages instead of counts.
        cell: Cell size in pixels.

    Returns:
        An RGB uint8 picture.
    """
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"`confusion` must be square (C, C). Received shape {confusion.shape}")
    num_classes = len(confusion)
    names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"`class_names` has {len(names)} names for {num_classes} classes.")
    rows = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, cell / 120
    label_width = max(cv2.getTextSize(n, font, scale, 1)[0][0] for n in names) + 12
    margin_top = label_width + 24
    size = (margin_top + num_classes * cell + 8, label_width + 24 + num_classes * cell + 8)
    canvas = np.full((*size, 3), 255, np.uint8)
    top, left = margin_top, label_width + 24
    for row in range(num_classes):
        for col in range(num_classes):
            share = shares[row, col]
            colour = (np.array([255, 255, 255]) * (1 - share)
                      + np.array([8, 48, 160]) * share).astype(int).tolist()
            y, x = top + row * cell, left + col * cell
            cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            text = f"{100 * share:.0f}" if normalize else f"{int(confusion[row, col])}"
            ink = (255, 255, 255) if share > 0.5 else (0, 0, 0)
            (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
            cv2.putText(canvas, text, (x + (cell - tw) // 2, y + (cell + th) // 2), font, scale,
                        ink, 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (left, top), (left + num_classes * cell, top + num_classes * cell),
                      (0, 0, 0), 1)
    for index, name in enumerate(names):
        (tw, th), _ = cv2.getTextSize(name, font, scale, 1)
        cv2.putText(canvas, name, (left - tw - 8, top + index * cell + (cell + th) // 2), font,
                    scale, (0, 0, 0), 1, cv2.LINE_AA)
        # Column names run bottom-up: drawn horizontally, then rotated.
        label = np.full((th + 8, tw + 4, 3), 255, np.uint8)
        cv2.putText(label, name, (2, th + 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        label = np.rot90(label)
        x = left + index * cell + (cell - label.shape[1]) // 2
        canvas[top - 6 - label.shape[0]:top - 6, x:x + label.shape[1]] = label
    cv2.putText(canvas, "predicted", (left, 16), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "truth", (8, top - 8), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def save_image(path, rgb):
    """Writes an RGB uint8 picture to `path` (PNG by extension); returns the path."""
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    rgb = np.asarray(rgb, np.uint8)
    if not cv2.imwrite(os.fspath(path), rgb[..., ::-1] if rgb.ndim == 3 else rgb):
        raise OSError(f"Could not write image {path}")
    return os.fspath(path)
