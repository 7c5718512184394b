"""Portrait mode's finishing: person masks over video frames, feathered, and
composited over a blurred or a new background.

NumPy and OpenCV only, so the phone-side code, the demos and
`kerasseg.runtime` use them without TensorFlow.

Example:
    >>> smoother = MaskSmoother(momentum=0.6)
    >>> mask = smoother(segmenter.predict_proba(frame)[..., 1])  # a one-channel model
    >>> output = blur_background(frame, mask)
"""

import cv2
import numpy as np

from kerasseg.utils import check_positive_int


class MaskSmoother:
    """Exponential moving average of masks over video frames.

    `smoothed = momentum * previous + (1 - momentum) * mask`: damps the
    frame-to-frame flicker of a per-frame model. The state resets when the
    mask size changes (a new video) or on `reset()`.

    Args:
        momentum: Weight of the past, in [0, 1); 0 turns smoothing off.

    Example:
        >>> smoother = MaskSmoother(0.6)
        >>> masks = [smoother(m) for m in per_frame_masks]
    """

    def __init__(self, momentum=0.6):
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
            0 <= momentum < 1
        ):
            raise ValueError(
                f"`momentum` must be a number in [0, 1). Received: momentum={momentum!r}"
            )
        self.momentum = float(momentum)
        self.state = None

    def reset(self):
        self.state = None

    def __call__(self, mask):
        mask = _as_mask(mask)
        if self.state is None or self.state.shape != mask.shape:
            self.state = mask
        else:
            self.state = self.momentum * self.state + (1.0 - self.momentum) * mask
        return self.state


def _as_mask(mask, size=None):
    """(H, W) or (H, W, 1) mask in [0, 1] -> float32 (H, W), resized to `size` (h, w)."""
    mask = np.asarray(mask, np.float32)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(
            f"`mask` must have shape (H, W) or (H, W, 1). Received shape {mask.shape}."
        )
    if size is not None and mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must have shape (H, W, 3). Received shape {image.shape}.")
    return image


def feather_mask(mask, radius, size=None):
    """Soft-edged alpha: the mask (resized to `size`) blurred by a Gaussian of
    about `radius` pixels; 0 leaves it as it is.

    Args:
        mask: (H, W) or (H, W, 1) person probabilities in [0, 1].
        radius: Feather radius in pixels of the output.
        size: (height, width) to resize the mask to first, or None.

    Returns:
        float32 (H, W) alpha in [0, 1].
    """
    check_positive_int("radius", radius, minimum=0)
    mask = _as_mask(mask, size)
    if radius:
        mask = cv2.GaussianBlur(mask, (2 * radius + 1, 2 * radius + 1), radius / 2)
    return mask


def _composite(image, alpha, background):
    alpha = alpha[..., None]
    out = alpha * image.astype(np.float32) + (1.0 - alpha) * background.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blur_background(image, mask, blur_radius=15, feather_radius=3):
    """Portrait-mode blur: the person sharp, the background blurred.

    Args:
        image: uint8 (H, W, 3) frame.
        mask: Person probabilities in [0, 1], (h, w) or (h, w, 1), at any size
            (a model's output size); resized to the image bilinearly.
        blur_radius: Background Gaussian blur radius in pixels (>= 1).
        feather_radius: Edge feathering radius in pixels (0 for hard edges).

    Returns:
        uint8 (H, W, 3) composite.
    """
    image = _check_image(image)
    check_positive_int("blur_radius", blur_radius)
    alpha = feather_mask(mask, feather_radius, image.shape[:2])
    blurred = cv2.GaussianBlur(image, (2 * blur_radius + 1, 2 * blur_radius + 1), 0)
    return _composite(image, alpha, blurred)


def replace_background(image, mask, background, feather_radius=3):
    """Puts the person over a new background.

    Args:
        image: uint8 (H, W, 3) frame.
        mask: Person probabilities in [0, 1], (h, w) or (h, w, 1), any size.
        background: (h, w, 3) image, resized to the frame, or one colour
            given as 3 numbers.
        feather_radius: Edge feathering radius in pixels (0 for hard edges).

    Returns:
        uint8 (H, W, 3) composite.
    """
    image = _check_image(image)
    background = np.asarray(background)
    if background.shape == (3,):
        background = np.broadcast_to(background, image.shape)
    elif background.ndim == 3 and background.shape[-1] == 3:
        if background.shape[:2] != image.shape[:2]:
            background = cv2.resize(background, (image.shape[1], image.shape[0]),
                                    interpolation=cv2.INTER_AREA)
    else:
        raise ValueError(
            "`background` must be an (H, W, 3) image or 3 colour values. "
            f"Received shape {background.shape}."
        )
    alpha = feather_mask(mask, feather_radius, image.shape[:2])
    return _composite(image, alpha, background)
