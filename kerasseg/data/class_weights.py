"""Class weights from label statistics: median-frequency balancing (SegNet).

Eigen & Fergus (ICCV 2015), as used for SegNet on CamVid: a class's weight
is `median(freq) / freq_c`, where `freq_c` is the number of pixels of class c
divided by the number of pixels of the images in which c appears. Frequent
classes (road, sky) get weights below 1, rare ones (pole, sign) above.

Example:
    >>> counts = class_pixel_counts(load_dataset("camvid", root, "train"), 11)
    >>> weights = median_frequency_weights(*counts)
"""

import numpy as np

from kerasseg.data.labels import IGNORE_LABEL


def class_pixel_counts(dataset, num_classes, ignore_label=IGNORE_LABEL):
    """Pixels of each class, and pixels of the images in which each class appears.

    Ignored pixels (`ignore_label`) belong to no class but count in their
    image's pixels, as in the definition (all pixels of the images in which c
    appears). Labels outside `[0, num_classes)` other than the ignore label
    are an error.

    Args:
        dataset: An iterable (e.g. a `tf.data.Dataset`, batched or not) of
            masks or of (image, mask) pairs; masks are integer (H, W) or (B, H, W).
        num_classes: Number of classes.
        ignore_label: Mask value left out.

    Returns:
        (pixels, image_pixels): int64 arrays of shape (num_classes,).
    """
    pixels = np.zeros(num_classes, np.int64)
    image_pixels = np.zeros(num_classes, np.int64)
    for element in dataset:
        masks = np.asarray(element[1] if isinstance(element, (tuple, list)) else element)
        masks = masks.reshape((-1, *masks.shape[-2:])).astype(np.int64)
        for mask in masks:
            labels = mask[mask != ignore_label]
            if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
                raise ValueError(
                    f"Mask labels must be in [0, {num_classes}) or {ignore_label}. Received: "
                    f"labels from {labels.min()} to {labels.max()}"
                )
            counts = np.bincount(labels, minlength=num_classes)
            pixels += counts
            image_pixels += np.where(counts > 0, mask.size, 0)
    return pixels, image_pixels


def median_frequency_weights(pixels, image_pixels):
    """Median-frequency weights `median(freq) / freq_c`, `freq_c = pixels_c / image_pixels_c`.

    The median runs over the classes that appear; a class that never appears
    gets weight 0 (it has no pixel to weigh).

    Args:
        pixels: Pixels of each class, as from `class_pixel_counts`.
        image_pixels: Pixels of the images in which each class appears.

    Returns:
        float64 array of class weights.
    """
    pixels = np.asarray(pixels, np.float64)
    image_pixels = np.asarray(image_pixels, np.float64)
    if pixels.shape != image_pixels.shape or pixels.ndim != 1:
        raise ValueError("`pixels` and `image_pixels` must be 1-D and of equal length. "
                         f"Received shapes {pixels.shape} and {image_pixels.shape}")
    present = pixels > 0
    if not present.any():
        raise ValueError("No labelled pixels: class weights need at least one class present.")
    frequency = np.zeros_like(pixels)
    frequency[present] = pixels[present] / image_pixels[present]
    weights = np.zeros_like(pixels)
    weights[present] = np.median(frequency[present]) / frequency[present]
    return weights


def dataset_class_weights(dataset, num_classes, method="median_frequency",
                          ignore_label=IGNORE_LABEL):
    """Class weights of a dataset of (image, mask), for a loss's `class_weights`.

    Args:
        dataset: An iterable of masks or (image, mask) pairs (see `class_pixel_counts`).
        num_classes: Number of classes.
        method: "median_frequency", the only method.
        ignore_label: Mask value left out.

    Returns:
        A list of `num_classes` floats.
    """
    if method != "median_frequency":
        raise ValueError(f"`method` must be 'median_frequency'. Received: method={method!r}")
    counts = class_pixel_counts(dataset, num_classes, ignore_label)
    return [float(w) for w in median_frequency_weights(*counts)]
