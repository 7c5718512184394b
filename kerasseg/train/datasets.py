"""The data of a run: semantic splits, the training stream, validation batches."""

import tensorflow as tf

from kerasseg.data.augment import pipeline
from kerasseg.data.readers import SOURCES, load_dataset
from kerasseg.data.synthetic import NUM_CLASSES as SYNTHETIC_CLASSES
from kerasseg.data.synthetic import synthetic_dataset

RESIZED_CACHE_BYTES = 2 * 2**30  # the most memory a resized split is cached in


def dataset_num_classes(dataset):
    """The classes a model of `dataset` outputs, from its `Source` (1 for a
    binary-mask dataset: a one-channel model), or None when the dataset does
    not say (it is given by `data.num_classes`)."""
    if dataset == "synthetic":
        return SYNTHETIC_CLASSES
    source = SOURCES.get(dataset) if isinstance(dataset, str) else None
    if source is None:
        return None
    if source.binary:
        return 1  # one foreground class: a one-channel model
    return len(source.classes) if source.classes else None


def resolve_num_classes(config):
    """`data.num_classes`, or the dataset's own class count."""
    data = config.data
    count = data.num_classes or dataset_num_classes(data.dataset)
    if count:
        return count
    raise ValueError(
        f"`data.num_classes` is required for data.dataset={data.dataset!r}. "
        "Received: data.num_classes=None"
    )


def semantic_split(config, split):
    """Unbatched dataset of (image float32 [0, 255], mask int32) for `split`."""
    data = config.data
    if data.dataset == "synthetic":
        count = data.num_train_images if split == data.train_split else data.num_val_images
        dataset = synthetic_dataset(split, count, data.image_size, seed=data.seed)
        return cached_as_uint8(dataset)  # scenes are drawn in Python: draw each once
    dataset = load_dataset(data.dataset, data.root, split, **reader_options(config))
    if not data.resize:
        return dataset
    dataset = dataset.map(resize_example(data.image_size))
    # A resized split is small (a 256x256 photo takes 0.46 MB as uint8 pixels
    # and an int32 mask): keep it in memory, so each file is decoded and resized
    # once, not on every pass and again for every copy-paste donor. A split too
    # big for that (or of unknown length) is resized on every pass.
    count, (height, width) = int(dataset.cardinality()), data.image_size
    if count < 0 or count * height * width * (3 + 4) > RESIZED_CACHE_BYTES:
        return dataset
    return cached_as_uint8(dataset)


def reader_options(config):
    """The options of the config's dataset reader (`Source.options`) that the
    config sets: the class count and the ignore label, where the reader takes them."""
    values = {"num_classes": lambda: resolve_num_classes(config),
              "ignore_label": lambda: config.data.ignore_label}
    options = SOURCES[config.data.dataset].options
    return {name: value() for name, value in values.items() if name in options}


def cached_as_uint8(dataset):
    """`dataset` of (image float32 [0, 255], mask), computed once and kept in
    memory with uint8 pixels (a quarter of float32's bytes), read as float32."""
    dataset = dataset.map(lambda image, mask: (tf.saturate_cast(tf.round(image), tf.uint8), mask))
    return dataset.cache().map(lambda image, mask: (tf.cast(image, tf.float32), mask))


def resize_example(size):
    """A map function resizing (image, mask) to `size`: bilinear, nearest."""

    def resize(image, mask):
        image = tf.image.resize(image, size, method="bilinear")
        mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
        return tf.ensure_shape(image, (*size, 3)), tf.ensure_shape(mask, size)

    return resize


def validation_batches(config, dataset):
    """`dataset` in batches of `data.batch_size`; images of different sizes are
    padded to the batch's largest, masks with the ignore label."""
    data = config.data
    if dataset.element_spec[0].shape.is_fully_defined():
        return dataset.batch(data.batch_size)
    return pipeline(dataset, training=False, batch_size=data.batch_size,
                    ignore_label=data.ignore_label)


def training_stream(images, config, seed, steps, pad_label, targets=None):
    """Shuffled, augmented batches for `steps` steps.

    Each pass over the data is shuffled with its own fixed seed, and example i
    of the stream is augmented with seed (seed, i): a `reshuffle_each_iteration`
    shuffle draws another order once the dataset is distributed, so one device
    and several would not see the same data. Augmented masks are padded with
    `pad_label`; `targets`, if given, maps each augmented example to the
    model's targets (a task's `targets`).
    """
    data = config.data
    count = int(images.cardinality())
    buffer = min(count, 1024) if count > 0 else 1024
    stream = images.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
    # Unknown size: repeat one shuffled order rather than guess the passes needed.
    passes = -(-steps * data.batch_size // count) + 1 if count > 0 else 1
    if count < 0:
        stream = stream.repeat()
    for index in range(1, passes):
        stream = stream.concatenate(
            images.shuffle(buffer, seed=seed + index, reshuffle_each_iteration=False)
        )
    if data.augment:
        stream = pipeline(stream, training=True, crop_size=data.image_size, seed=seed,
                          augmentation=data.augmentation(), shuffle_buffer=0,
                          ignore_label=pad_label, reseed_each_epoch=False, prefetch=False)
    if targets is not None:
        stream = stream.map(targets, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Shard batches, not files: the datasets are not file-based throughout.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return stream.batch(data.batch_size, drop_remainder=True).prefetch(2).with_options(options)
