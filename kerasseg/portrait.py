"""Portrait mode: a one-channel person-mask model, its data, and compositing.

`portrait_model` builds the phone configurations (Lite R-ASPP on
MobileNetV3, or DeepLabv3+ on MobileNetV2), all ending in a sigmoid: one
channel, the probability that a pixel is a person, and no ARG_MAX in the
exported graph. `person_mask_dataset` makes person-vs-rest training data from
the synthetic scenes, zoomed onto a person the way a selfie frames one.
`MaskSmoother`, `blur_background` and `replace_background` turn masks into
the finished frame; they use NumPy and OpenCV only, so they run next to
`kerasseg.runtime` without TensorFlow.

Example:
    >>> model = portrait_model("lraspp_mobilenetv3small", input_shape=(256, 256, 3))
    >>> smoother = MaskSmoother(momentum=0.6)
    >>> mask = smoother(model.predict(frame[None])[0, ..., 0])
    >>> output = blur_background(frame, mask)
"""

import cv2
import numpy as np

from kerasseg.utils import check_choice, check_input_shape, check_positive_int

# Builder name and keyword arguments of each configuration; every one gets
# num_classes=1 and activation="sigmoid".
PORTRAIT_CONFIGS = {
    # MediaPipe-sized: the backbone stops at stride 16 (its stride-32 stage,
    # most of MobileNetV3's weights, is never built) at half width.
    "lraspp_mobilenetv3small": (
        "lraspp",
        {
            "backbone": "mobilenetv3small",
            "high_level": "P4",
            "head_filters": 64,
            "backbone_kwargs": {"alpha": 0.5},
        },
    ),
    # Thinner still: about half MediaPipe's weights, for the slowest phones.
    "lraspp_mobilenetv3small_035": (
        "lraspp",
        {
            "backbone": "mobilenetv3small",
            "high_level": "P4",
            "head_filters": 32,
            "backbone_kwargs": {"alpha": 0.35},
        },
    ),
    # The paper's LR-ASPP configuration (full backbone at output stride 16).
    "lraspp_mobilenetv3large": (
        "lraspp",
        {"backbone": "mobilenetv3large", "output_stride": 16, "head_filters": 128},
    ),
    "deeplabv3plus_mobilenetv2": ("deeplabv3plus", {"backbone": "mobilenetv2"}),
}

PERSON_CLASS = "person"


def portrait_model(
    config="lraspp_mobilenetv3small",
    input_shape=(256, 256, 3),
    weights=None,
    backbone_weights=None,
    name=None,
    **overrides,
):
    """Builds a one-channel person-mask model for portrait mode.

    Args:
        config: One of `PORTRAIT_CONFIGS`: "lraspp_mobilenetv3small" (sized
            like MediaPipe's selfie segmentation model),
            "lraspp_mobilenetv3small_035" (about half that),
            "lraspp_mobilenetv3large" (the paper's LR-ASPP) or
            "deeplabv3plus_mobilenetv2".
        input_shape: (height, width, 3) of raw [0, 255] RGB images. Use a
            fixed size (256x256 square, 144x256 landscape) for export.
        weights: Path of a full-model weights file, or None.
        backbone_weights: None, "imagenet" or a path, for the backbone.
        name: Model name; defaults to "portrait_{config}".
        **overrides: Builder keyword arguments replacing the configuration's.

    Returns:
        A `keras.Model` from (batch, H, W, 3) images to (batch, H, W, 1)
        person probabilities.

    Example:
        >>> model = portrait_model(input_shape=(144, 256, 3))
    """
    import kerasseg

    check_choice("config", config, tuple(PORTRAIT_CONFIGS))
    check_input_shape(input_shape)
    builder, arguments = PORTRAIT_CONFIGS[config]
    return getattr(kerasseg, builder)(
        num_classes=1,
        input_shape=input_shape,
        weights=weights,
        backbone_weights=backbone_weights,
        activation="sigmoid",
        name=name or f"portrait_{config}",
        **{**arguments, **overrides},
    )


# === Data ===


def make_portrait_scene(seed, height=256, width=256, zoom=True):
    """One synthetic (image, person mask) pair, the same for the same seed.

    With `zoom` the scene is drawn at twice the size and cropped around its
    largest person, so the person fills the frame as in a selfie; scenes
    without a person stay whole (negatives). Without `zoom` it is the plain
    synthetic scene.

    Args:
        seed: Non-negative integer scene seed.
        height: Output height (>= 32).
        width: Output width (>= 32).
        zoom: Crop around the largest person.

    Returns:
        (image uint8 (height, width, 3) RGB, mask uint8 (height, width), 1 =
        person).
    """
    from kerasseg.data.synthetic import CLASS_NAMES, make_scene

    person = CLASS_NAMES.index(PERSON_CLASS)
    scale = 2 if zoom else 1
    scene = make_scene(seed, height * scale, width * scale)
    image, mask = scene["image"], (scene["semantic"] == person).astype(np.uint8)
    people = [s for s in scene["segments"] if s["isthing"] and s["category_id"] == person]
    if zoom and people:
        biggest = max(people, key=lambda s: s["area"])
        ys, xs = np.nonzero(scene["instances"] == biggest["id"])
        # A crop of the output's aspect ratio, the person about 80% of its height.
        crop_h = int(np.clip((ys.max() - ys.min() + 1) / 0.8, 16, height * scale))
        crop_w = min(width * scale, crop_h * width // height)
        crop_h = crop_w * height // width
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        top = int(np.clip(cy - crop_h // 2, 0, height * scale - crop_h))
        left = int(np.clip(cx - crop_w // 2, 0, width * scale - crop_w))
        image = image[top : top + crop_h, left : left + crop_w]
        mask = mask[top : top + crop_h, left : left + crop_w]
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, mask


def person_mask_dataset(split="train", num_images=None, image_size=(256, 256), seed=0,
                        zoom=True):
    """A `tf.data.Dataset` of synthetic (image, person mask) pairs.

    Scenes are those of `kerasseg.data.synthetic_dataset` for the same split
    and seed (splits never share a scene), labelled person vs. rest.

    Args:
        split: One of "train", "val", "test".
        num_images: Number of images; None uses the split's default size.
        image_size: (height, width).
        seed: Dataset seed.
        zoom: Crop each scene around its largest person (`make_portrait_scene`).

    Returns:
        A dataset of (image float32 (H, W, 3) in [0, 255], mask float32
        (H, W, 1) in {0, 1}), ready for a sigmoid model and binary
        cross-entropy.

    Example:
        >>> ds = person_mask_dataset("val", num_images=8, image_size=(144, 256))
    """
    import tensorflow as tf

    from kerasseg.data import synthetic

    # The split's scene seeds and the argument checks of synthetic_dataset.
    seeds = synthetic._split_seeds(split, num_images, seed)
    height, width = synthetic._check_image_size(image_size)

    def generate():
        for scene_seed in seeds:
            image, mask = make_portrait_scene(scene_seed, height, width, zoom=zoom)
            yield image.astype(np.float32), mask[..., None].astype(np.float32)

    dataset = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((height, width, 3), tf.float32),
            tf.TensorSpec((height, width, 1), tf.float32),
        ),
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(len(seeds)))


# === Masks and compositing ===


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
