"""Joint image/mask augmentation and the training/evaluation input pipeline.

Every random op is stateless and takes a seed of shape (2,), so the same seed
gives the same augmentation. Geometric ops move image and mask together (the
image bilinearly, the mask by nearest neighbour); padding fills the image with
`fill_value` (by default the ImageNet mean pixel) and the mask with the ignore
label, so padded pixels never count in losses or metrics.

Example:
    >>> train = pipeline(dataset, training=True, crop_size=(256, 256), batch_size=8)
    >>> model.fit(train, epochs=10)
"""

import dataclasses

import numpy as np
import tensorflow as tf

from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.utils import check_number, check_positive_int, check_type

IMAGENET_MEAN = (123.675, 116.28, 103.53)


def _fill(fill_value):
    """A scalar or per-channel fill value as a 3-tuple of floats."""
    values = [float(v) for v in np.ravel(fill_value)]
    if len(values) not in (1, 3):
        raise ValueError(
            f"`fill_value` must be a number or 3 numbers. Received: fill_value={fill_value!r}"
        )
    return tuple(values * 3) if len(values) == 1 else tuple(values)


def _seed(seed):
    return tf.cast(tf.convert_to_tensor(seed), tf.int64)


def random_scale(image, mask, seed, min_scale=0.5, max_scale=2.0):
    """Resize image and mask by one random factor drawn from [min_scale, max_scale].

    Args:
        image: float (H, W, 3), resized bilinearly.
        mask: int (H, W), resized by nearest neighbour.
        seed: Seed of shape (2,).
        min_scale: Smallest factor.
        max_scale: Largest factor.

    Returns:
        (image, mask) of the new size.
    """
    scale = tf.random.stateless_uniform([], _seed(seed), min_scale, max_scale)
    size = tf.cast(tf.shape(image)[:2], tf.float32) * scale
    size = tf.maximum(tf.cast(tf.round(size), tf.int32), 1)
    image = tf.image.resize(image, size, method="bilinear")
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return image, mask


def pad_to_size(image, mask, size, fill_value=IMAGENET_MEAN, ignore_label=IGNORE_LABEL):
    """Pad bottom/right to at least `size`: image with `fill_value`, mask with the ignore label.

    Args:
        image: float (H, W, 3).
        mask: int (H, W).
        size: (height, width) to reach.
        fill_value: Image padding value, one number or one per channel.
        ignore_label: Mask padding value.

    Returns:
        (image, mask) of at least `size`.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    paddings = [[0, tf.maximum(size[0] - height, 0)], [0, tf.maximum(size[1] - width, 0)]]
    fill = tf.constant(_fill(fill_value), image.dtype)
    image = tf.pad(image - fill, paddings + [[0, 0]]) + fill
    mask = tf.pad(mask, paddings, constant_values=ignore_label)
    return image, mask


def random_crop(image, mask, size, seed, fill_value=IMAGENET_MEAN,
                ignore_label=IGNORE_LABEL):
    """Pad to at least `size`, then crop a random `size` window from image and mask.

    Args:
        image: float (H, W, 3).
        mask: int (H, W).
        size: (height, width) of the crop.
        seed: Seed of shape (2,).
        fill_value: Image padding value, one number or one per channel.
        ignore_label: Mask padding value.

    Returns:
        (image, mask) of size `size`.
    """
    image, mask = pad_to_size(image, mask, size, fill_value, ignore_label)
    limit = tf.shape(mask) - tf.constant(size, tf.int32) + 1
    offset = tf.random.stateless_uniform([2], _seed(seed), 0, tf.int32.max, dtype=tf.int32)
    offset = offset % limit
    image = tf.slice(image, [offset[0], offset[1], 0], [size[0], size[1], -1])
    mask = tf.slice(mask, offset, size)
    return image, mask


def random_flip(image, mask, seed):
    """Flip image and mask left-right together with probability 0.5.

    Args:
        image: (H, W, 3).
        mask: (H, W).
        seed: Seed of shape (2,).

    Returns:
        (image, mask), both flipped or neither.
    """
    flip = tf.random.stateless_uniform([], _seed(seed)) < 0.5
    image = tf.where(flip, tf.reverse(image, [1]), image)
    mask = tf.where(flip, tf.reverse(mask, [1]), mask)
    return image, mask


def photometric_jitter(image, seed, brightness=0.125, contrast=0.25, saturation=0.25,
                       hue=0.05):
    """Random brightness, contrast, saturation and hue on a [0, 255] image.

    Args:
        image: float32 (H, W, 3) in [0, 255].
        seed: Seed of shape (2,).
        brightness: Maximum brightness shift, as a fraction of 255.
        contrast: Contrast factor range is [1 - contrast, 1 + contrast].
        saturation: Saturation factor range is [1 - saturation, 1 + saturation].
        hue: Maximum hue shift (fraction of the colour wheel, <= 0.5).

    Returns:
        The jittered image, clipped to [0, 255].
    """
    seeds = tf.random.experimental.stateless_split(_seed(seed), 4)
    image = image / 255.0
    if brightness:
        image = tf.image.stateless_random_brightness(image, brightness, seeds[0])
    if contrast:
        image = tf.image.stateless_random_contrast(image, 1 - contrast, 1 + contrast, seeds[1])
    image = tf.clip_by_value(image, 0.0, 1.0)
    if saturation:
        image = tf.image.stateless_random_saturation(
            image, 1 - saturation, 1 + saturation, seeds[2]
        )
    if hue:
        image = tf.image.stateless_random_hue(image, hue, seeds[3])
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def gaussian_blur(image, sigma, radius):
    """Separable Gaussian blur of an (H, W, C) image, edges mirrored.

    Args:
        image: float32 (H, W, C).
        sigma: Standard deviation in pixels (a scalar, may be a tensor).
        radius: Kernel half-width (a Python int): 2 radius + 1 taps.

    Returns:
        The blurred image, same shape.
    """
    taps = tf.exp(-0.5 * (tf.range(-radius, radius + 1, dtype=tf.float32) / sigma) ** 2)
    taps = taps / tf.reduce_sum(taps)
    channels = tf.shape(image)[-1]
    kernel = tf.tile(taps[:, None, None], [1, channels, 1])  # (k, C, 1)
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                    mode="SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, kernel[:, None], [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, kernel[None], [1, 1, 1, 1], "VALID")[0]


def random_blur(image, seed, probability=0.3, max_sigma=2.0):
    """Gaussian blur of random strength (defocus, soft webcams), image only.

    With probability `probability` the image is blurred with a sigma drawn
    from [0.3, max_sigma] pixels; otherwise it is returned unchanged.

    Args:
        image: float32 (H, W, 3).
        seed: Seed of shape (2,).
        probability: Chance of blurring.
        max_sigma: Largest sigma, in pixels.

    Returns:
        The image, blurred or not.
    """
    seeds = tf.random.experimental.stateless_split(_seed(seed), 2)
    apply = tf.random.stateless_uniform([], seeds[0]) < probability
    sigma = tf.random.stateless_uniform([], seeds[1], 0.3, max(max_sigma, 0.3))
    blurred = gaussian_blur(image, sigma, max(1, int(np.ceil(2 * max_sigma))))
    return tf.where(apply, blurred, image)


def _place(layers, size, offset):
    """Put (h, w, C) `layers` at `offset` (may be negative) on a zero canvas of `size`."""
    shape = tf.shape(layers)
    before = tf.maximum(offset, 0)
    after = tf.maximum(size - offset - shape[:2], 0)
    padded = tf.pad(layers, [[before[0], after[0]], [before[1], after[1]], [0, 0]])
    start = tf.maximum(-offset, 0)
    return tf.slice(padded, [start[0], start[1], 0], [size[0], size[1], -1])


def copy_paste(image, mask, donor_image, donor_mask, seed, probability=0.5, min_scale=0.5,
               max_scale=1.0, *, paste_class=1, feather=1.0, bottom=True):
    """Paste the `paste_class` pixels of a donor example (a person) onto `image`.

    With probability `probability`, the donor is flipped at random, scaled so
    that its height is a random fraction in [min_scale, max_scale] of the
    target's (aspect kept), and placed at a random position (inside the target
    when it is smaller, covering it when larger); with `bottom`, its bottom
    edge lies on the target's (portraits are cut by the frame's bottom: a
    pasted torso should not float). Its `paste_class` pixels replace the
    target's, in the image (blended over a `feather`-pixel Gaussian edge) and
    in the mask (set to `paste_class`); the donor's other pixels are not used.

    Args:
        image: float32 (H, W, 3), the background example.
        mask: int32 (H, W).
        donor_image: float32 (h, w, 3), the example the person comes from.
        donor_mask: int32 (h, w).
        seed: Seed of shape (2,).
        probability: Chance of pasting.
        min_scale: Smallest donor height, as a fraction of the target's.
        max_scale: Largest donor height, as a fraction of the target's.
        paste_class: The label whose pixels are pasted.
        feather: Sigma of the image blend's edge, in pixels (0: hard edge).
        bottom: Align the donor's bottom edge with the target's (else a
            random height too).

    Returns:
        (image float32 (H, W, 3), mask int32 (H, W)).
    """
    seeds = tf.random.experimental.stateless_split(_seed(seed), 4)
    size = tf.shape(mask)
    donor_size = tf.cast(tf.shape(donor_mask), tf.float32)
    height = tf.cast(size[0], tf.float32) * tf.random.stateless_uniform(
        [], seeds[0], min_scale, max_scale)
    scaled = tf.maximum(tf.cast(tf.round(donor_size * height / donor_size[0]), tf.int32), 1)
    alpha = tf.cast(tf.equal(donor_mask, paste_class), tf.float32)[..., None]
    # Premultiplied by alpha, so resizing blends no donor background into the person.
    layers = tf.concat([tf.cast(donor_image, tf.float32) * alpha, alpha], -1)
    layers, _ = random_flip(layers, donor_mask, seeds[1])
    layers = tf.image.resize(layers, scaled, method="bilinear")
    low, high = tf.minimum(size - scaled, 0), tf.maximum(size - scaled, 0)
    offset = low + tf.random.stateless_uniform([2], seeds[2], 0, tf.int32.max, tf.int32) % (
        high - low + 1)
    if bottom:
        offset = tf.stack([size[0] - scaled[0], offset[1]])
    layers = _place(layers, size, offset)
    person = layers[..., 3] >= 0.5
    colour = layers[..., :3] / tf.maximum(layers[..., 3:], 1e-6)
    alpha = tf.cast(person, tf.float32)[..., None]
    if feather:  # soften the edge inwards: outside the person, the colour is undefined
        alpha *= gaussian_blur(alpha, feather, max(1, int(np.ceil(2 * feather))))
    apply = tf.random.stateless_uniform([], seeds[3]) < probability
    pasted_image = alpha * colour + (1.0 - alpha) * tf.cast(image, tf.float32)
    pasted_mask = tf.where(person, tf.cast(paste_class, mask.dtype), mask)
    return tf.where(apply, pasted_image, image), tf.where(apply, pasted_mask, mask)


def copy_paste_dataset(dataset, seed=0, probability=0.5, min_scale=0.5, max_scale=1.0,
                       paste_class=1, donor_buffer=16, bottom=True):
    """`copy_paste` over a dataset: each example's donor is another of its examples.

    Donors are the dataset's own examples, reshuffled through a
    `donor_buffer`-sized buffer and repeated, so every example has one (from
    an already shuffled stream, a random other example; now and then itself).
    Example i pastes with seed (seed, i).

    Args:
        dataset: Unbatched (image, mask) pairs, of any sizes.
        seed: Seed of the donor order and of the pastes.
        probability: Chance that an example gets a pasted person.
        min_scale: Smallest donor height, as a fraction of the target's.
        max_scale: Largest donor height, as a fraction of the target's.
        paste_class: The label whose pixels are pasted.
        donor_buffer: Shuffle buffer of the donor stream (decoded images held).
        bottom: Align pasted people with the bottom edge (see `copy_paste`).

    Returns:
        A dataset of (image float32, mask int32), the input's sizes.
    """
    donors = dataset.shuffle(donor_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.cast(seed, tf.int64), i]))
    pairs = tf.data.Dataset.zip((dataset, donors.repeat(), seeds))

    def paste(example, donor, example_seed):
        return copy_paste(tf.cast(example[0], tf.float32), tf.cast(example[1], tf.int32),
                          donor[0], tf.cast(donor[1], tf.int32), example_seed, probability,
                          min_scale, max_scale, paste_class=paste_class, bottom=bottom)

    return pairs.map(paste, num_parallel_calls=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The random augmentation of a training example, as one record.

    `pipeline` and `augment` take it whole, and a training config makes one
    (`kerasseg.train.DataConfig.augmentation`): a new augmentation is a field
    here and its step in `augment`.

    Attributes:
        scale_range: (min, max) random scale factor; (1, 1) skips scaling.
        flip: Random horizontal flips.
        jitter: Photometric jitter (image only).
        blur: Chance of a Gaussian blur (`random_blur`); 0 for none.
        max_blur_sigma: Largest blur sigma, in pixels.
        copy_paste: Chance that an example gets the `paste_class` pixels of
            another example of the stream pasted on (`copy_paste_dataset`),
            before the scale and crop; 0 for none.
        paste_scale: (min, max) pasted height, as a fraction of the target's.
        paste_class: The label pasted (the person class).
    """

    scale_range: tuple = (0.5, 2.0)
    flip: bool = True
    jitter: bool = True
    blur: float = 0.0
    max_blur_sigma: float = 2.0
    copy_paste: float = 0.0
    paste_scale: tuple = (0.5, 1.0)
    paste_class: int = 1

    def __post_init__(self):
        for name in ("scale_range", "paste_scale"):
            low, high = _check_range(name, getattr(self, name))
            object.__setattr__(self, name, (low, high))
        check_type("flip", self.flip, bool)
        check_type("jitter", self.jitter, bool)
        check_number("blur", self.blur, 0, 1)
        check_number("copy_paste", self.copy_paste, 0, 1)
        check_number("max_blur_sigma", self.max_blur_sigma, 0, low_open=True)
        check_positive_int("paste_class", self.paste_class, 0)


def _check_range(argument, value):
    """(min, max) floats with 0 < min <= max."""
    try:
        low, high = (float(check_number(argument, v, 0, low_open=True)) for v in value)
        if low > high:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"`{argument}` must be (min, max) with 0 < min <= max. "
                         f"Received: {argument}={value!r}") from None
    return low, high


def augment(image, mask, seed, crop_size, augmentation=None, fill_value=IMAGENET_MEAN,
            ignore_label=IGNORE_LABEL):
    """Random scale, padded random crop, flip, photometric jitter and blur of one example.

    Args:
        image: float32 (H, W, 3) in [0, 255].
        mask: int32 (H, W).
        seed: Seed of shape (2,); the same seed gives the same result.
        crop_size: (height, width) of the output, or None for no crop.
        augmentation: An `Augmentation`; None for the defaults. Its
            `copy_paste` needs other examples: `pipeline` applies it.
        fill_value: Image padding value per channel.
        ignore_label: Mask padding value.

    Returns:
        (image float32, mask int32), of size `crop_size` when given.
    """
    options = augmentation or Augmentation()
    seeds = tf.random.experimental.stateless_split(_seed(seed), 4)
    image = tf.cast(image, tf.float32)
    mask = tf.cast(mask, tf.int32)
    if options.scale_range != (1.0, 1.0):
        image, mask = random_scale(image, mask, seeds[0], *options.scale_range)
    if crop_size is not None:
        image, mask = random_crop(image, mask, crop_size, seeds[1], fill_value, ignore_label)
    if options.flip:
        image, mask = random_flip(image, mask, seeds[2])
    if options.jitter:
        image = photometric_jitter(image, seeds[3])
    if options.blur:
        image = random_blur(image, tf.random.experimental.stateless_fold_in(_seed(seed), 4),
                            options.blur, options.max_blur_sigma)
    return image, mask


def _check_size(argument, value):
    if value is None:
        return None
    if isinstance(value, int):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise ValueError(
            f"`{argument}` must be (height, width) of positive integers, an integer or None. "
            f"Received: {argument}={value!r}"
        )
    return tuple(value)


def pipeline(dataset, training=True, crop_size=None, batch_size=None, seed=0,
             augmentation=None, *, shuffle_buffer=256, fill_value=IMAGENET_MEAN,
             ignore_label=IGNORE_LABEL, reseed_each_epoch=True, drop_remainder=None,
             prefetch=True):
    """Prepare a dataset of (image, mask) for `fit` (augmented) or `evaluate`.

    Training: shuffle, `augment` each example with its own seed, then batch.
    With `reseed_each_epoch`, every pass over the dataset draws new seeds (the
    whole sequence is fixed by `seed`); without it, example i of a pass gets
    seed (seed, i) every time, which suits a stream that already holds all its
    epochs (and stays identical however many devices read it). Every example
    has size `crop_size`, so `crop_size` is required unless scaling is off and
    all images share one size. The augmentation's `copy_paste` pastes a person
    from another example of the stream (`copy_paste_dataset`) before the
    scale and crop. Evaluation: no augmentation; batches of images of
    different sizes are padded to the largest (image with `fill_value`, mask
    with the ignore label), so padding is never scored.

    Args:
        dataset: A dataset of (image (H, W, 3), mask (H, W)), e.g. from
            `load_dataset` or `synthetic_dataset`.
        training: Augment and shuffle (True) or not (False).
        crop_size: Training crop (height, width) or an int for a square crop.
        batch_size: Examples per batch, or None to return single examples.
        seed: Seed of the shuffle and of the augmentation.
        augmentation: The training `Augmentation`; None for its defaults.
        shuffle_buffer: Shuffle buffer size (training only; 0 = no shuffle).
        fill_value: Image padding value, one number or one per channel.
        ignore_label: Mask padding value.
        reseed_each_epoch: Draw new augmentation seeds on every pass (training).
        drop_remainder: Drop the last partial batch; None means `training`.
        prefetch: Prefetch (AUTOTUNE).

    Returns:
        A `tf.data.Dataset` of (images float32 (B, H, W, 3), masks int32
        (B, H, W)), or of single examples when `batch_size` is None.

    Example:
        >>> train = pipeline(synthetic_dataset("train"), True, crop_size=96, batch_size=16,
        ...                  augmentation=Augmentation(scale_range=(0.75, 1.5), blur=0.3))
        >>> val = pipeline(synthetic_dataset("val"), False, batch_size=16)
    """
    crop_size = _check_size("crop_size", crop_size)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    augmentation = augmentation or Augmentation()
    check_type("augmentation", augmentation, Augmentation)
    if training and crop_size is None and augmentation.scale_range != (1.0, 1.0):
        raise ValueError(
            "`crop_size` is required for training with random scaling (batches need one "
            "size). Pass crop_size=(height, width), or scale_range=(1, 1)."
        )
    fill = _fill(fill_value)
    if drop_remainder is None:
        drop_remainder = bool(training)

    def cast(image, mask):
        return tf.cast(image, tf.float32), tf.cast(mask, tf.int32)

    dataset = dataset.map(cast, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        if shuffle_buffer:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = _augmented(dataset, crop_size, seed, augmentation, fill, ignore_label,
                             reseed_each_epoch)
        if batch_size is not None:
            dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    elif batch_size is not None:
        dataset = _padded_batches(dataset, batch_size, fill, ignore_label, drop_remainder)
    if prefetch:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset


def _augmented(dataset, crop_size, seed, augmentation, fill, ignore_label, reseed_each_epoch):
    """`dataset` with each example augmented under its own seed (see `pipeline`)."""
    if augmentation.copy_paste:
        dataset = copy_paste_dataset(dataset, seed, augmentation.copy_paste,
                                     *augmentation.paste_scale, augmentation.paste_class)
    if reseed_each_epoch:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    else:
        seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.cast(seed, tf.int64), i]))

    def augment_example(example, example_seed):
        image, mask = augment(example[0], example[1], example_seed, crop_size, augmentation,
                              fill, ignore_label)
        if crop_size is not None:
            image = tf.ensure_shape(image, [*crop_size, 3])
            mask = tf.ensure_shape(mask, crop_size)
        return image, mask

    return tf.data.Dataset.zip((dataset, seeds)).map(augment_example,
                                                     num_parallel_calls=tf.data.AUTOTUNE)


def _padded_batches(dataset, batch_size, fill, ignore_label, drop_remainder):
    """Batches padded to their largest example: images with `fill`, masks with the ignore
    label. padded_batch pads with one scalar: pad (image - fill) with 0, then add fill back."""
    fill = tf.constant(fill, tf.float32)
    dataset = dataset.map(lambda image, mask: (image - fill, mask))
    dataset = dataset.padded_batch(
        batch_size,
        padded_shapes=([None, None, 3], [None, None]),
        padding_values=(0.0, tf.constant(ignore_label, tf.int32)),
        drop_remainder=drop_remainder,
    )
    return dataset.map(lambda images, masks: (images + fill, masks))
