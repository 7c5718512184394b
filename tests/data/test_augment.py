"""Joint augmentation: image and mask move together, padding is ignored, seeds reproduce."""

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.data import augment

FILL = (10.0, 20.0, 30.0)


def _example(height=24, width=32, seed=0):
    """Blocky mask; the image encodes each pixel's label and position, so both can be traced."""
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, 5, (height // 4, width // 4)), np.ones((4, 4), int))
    mask[0, 0] = 255
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([mask * 1.0, ys + 100.0, xs + 100.0], -1).astype(np.float32)
    return tf.constant(image), tf.constant(mask, tf.int32)


def _seed(a, b=0):
    return tf.constant([a, b], tf.int64)


def test_crop_and_flip_keep_image_and_mask_aligned():
    image, mask = _example()
    directions = set()
    for a in range(8):
        out_image, out_mask = augment.augment(
            image, mask, _seed(a), crop_size=(16, 40),
            augmentation=augment.Augmentation(scale_range=(1.0, 1.0), jitter=False),
            fill_value=FILL)
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == (16, 40, 3) and out_mask.shape == (16, 40)
        padded = out_image[..., 1] < 100  # no source pixel has y + 100 < 100
        np.testing.assert_array_equal(out_mask[padded], 255)
        np.testing.assert_array_equal(out_image[padded], np.broadcast_to(FILL, (padded.sum(), 3)))
        inside = ~padded
        np.testing.assert_array_equal(np.where(out_mask == 255, 255, out_image[..., 0])[inside],
                                      out_mask[inside])
        # Every output pixel came from the source position its image channels record.
        ys = out_image[..., 1][inside].astype(int) - 100
        xs = out_image[..., 2][inside].astype(int) - 100
        np.testing.assert_array_equal(mask.numpy()[ys, xs], out_mask[inside])
        # A crop keeps rows and columns contiguous; a flip reverses every row.
        x_steps, y_steps = set(), set()
        for row in range(out_image.shape[0]):
            x_steps.update(np.diff(out_image[row, inside[row], 2]).tolist())
        for column in range(out_image.shape[1]):
            y_steps.update(np.diff(out_image[inside[:, column], column, 1]).tolist())
        assert x_steps in ({1.0}, {-1.0}) and y_steps == {1.0}
        directions.add(x_steps.pop())
    assert directions == {1.0, -1.0}


def test_random_scale_range_and_nearest_labels():
    image, mask = _example(40, 40)
    sizes = []
    for a in range(20):
        out_image, out_mask = augment.random_scale(image, mask, _seed(a), 0.5, 2.0)
        sizes.append(out_mask.shape[0])
        assert out_image.shape[:2] == out_mask.shape
        assert out_mask.shape[0] == out_mask.shape[1]  # one factor for both axes
        assert set(np.unique(out_mask.numpy())) <= set(np.unique(mask.numpy()))
        expected = tf.image.resize(mask[..., None], out_mask.shape, method="nearest")[..., 0]
        np.testing.assert_array_equal(out_mask.numpy(), expected.numpy())
    assert 20 <= min(sizes) and max(sizes) <= 80 and max(sizes) - min(sizes) > 20


def test_small_images_are_padded_with_fill_and_ignore():
    image, mask = _example(8, 8)
    out_image, out_mask = augment.pad_to_size(image, mask, (12, 10), FILL)
    np.testing.assert_array_equal(out_mask.numpy()[8:], 255)
    np.testing.assert_array_equal(out_mask.numpy()[:, 8:], 255)
    np.testing.assert_array_equal(out_image.numpy()[:8, :8], image.numpy())
    np.testing.assert_array_equal(out_image.numpy()[10, 9], FILL)


def test_photometric_jitter_is_bounded_and_leaves_the_mask():
    image, mask = _example()
    image = tf.random.stateless_uniform((24, 32, 3), _seed(1), 0, 255)
    jittered = augment.photometric_jitter(image, _seed(3))
    assert not np.allclose(jittered, image)
    assert float(tf.reduce_min(jittered)) >= 0 and float(tf.reduce_max(jittered)) <= 255
    np.testing.assert_array_equal(jittered, augment.photometric_jitter(image, _seed(3)))
    _, out_mask = augment.augment(image, mask, _seed(5), None,
                                  augment.Augmentation(scale_range=(1.0, 1.0), flip=False))
    np.testing.assert_array_equal(out_mask, mask)


def test_augment_is_deterministic_under_a_seed():
    image, mask = _example()
    first = augment.augment(image, mask, _seed(7), (20, 20))
    second = augment.augment(image, mask, _seed(7), (20, 20))
    other = augment.augment(image, mask, _seed(8), (20, 20))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def _dataset(count=6):
    examples = [_example(24, 32, seed) for seed in range(count)]
    images = tf.stack([e[0] for e in examples])
    masks = tf.stack([e[1] for e in examples])
    return tf.data.Dataset.from_tensor_slices((images, masks))


def _epoch(dataset):
    return [(i.numpy(), m.numpy()) for i, m in dataset]


def test_training_pipeline_shapes_determinism_and_new_epochs():
    train = augment.pipeline(_dataset(), training=True, crop_size=16, batch_size=4, seed=3)
    first, second = _epoch(train), _epoch(train)
    assert len(first) == 1  # 6 examples, batch 4, drop_remainder
    images, masks = first[0]
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.float32
    assert masks.shape == (4, 16, 16) and masks.dtype == np.int32
    assert not np.array_equal(first[0][0], second[0][0])  # a new augmentation every epoch
    again = _epoch(augment.pipeline(_dataset(), training=True, crop_size=16, batch_size=4,
                                    seed=3))
    np.testing.assert_array_equal(first[0][0], again[0][0])
    np.testing.assert_array_equal(first[0][1], again[0][1])
    other = _epoch(augment.pipeline(_dataset(), training=True, crop_size=16, batch_size=4,
                                    seed=4))
    assert not np.array_equal(first[0][0], other[0][0])


def test_evaluation_pipeline_pads_mixed_sizes():
    small, big = _example(8, 12), _example(16, 16, 1)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter([small, big]),
        output_signature=(tf.TensorSpec([None, None, 3], tf.float32),
                          tf.TensorSpec([None, None], tf.int32)),
    )
    (images, masks), = _epoch(augment.pipeline(dataset, training=False, batch_size=2,
                                               fill_value=FILL))
    assert images.shape == (2, 16, 16, 3) and masks.shape == (2, 16, 16)
    np.testing.assert_array_equal(images[0, :8, :12], small[0].numpy())
    np.testing.assert_array_equal(masks[0, :8, :12], small[1].numpy())
    np.testing.assert_array_equal(masks[0, 8:], 255)
    np.testing.assert_array_equal(images[0, 12, 14], FILL)
    np.testing.assert_array_equal(masks[1], big[1].numpy())


def test_pipeline_arguments_are_checked():
    with pytest.raises(ValueError, match="crop_size"):
        augment.pipeline(_dataset(), training=True)
    with pytest.raises(ValueError, match="crop_size"):
        augment.pipeline(_dataset(), training=True, crop_size=(16, 0))
    with pytest.raises(ValueError, match="batch_size"):
        augment.pipeline(_dataset(), training=False, batch_size=0)
    with pytest.raises(ValueError, match="`scale_range` must be \\(min, max\\)"):
        augment.Augmentation(scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="`augmentation` must be of type Augmentation"):
        augment.pipeline(_dataset(), training=True, crop_size=8, augmentation={"blur": 0.5})
    with pytest.raises(ValueError, match="fill_value"):
        augment.pipeline(_dataset(), training=False, fill_value=(1.0, 2.0))


def test_unbatched_stream_with_index_seeds():
    """The form the trainer uses: single examples, seeds fixed by position in the stream."""
    kwargs = dict(crop_size=(16, 16), seed=5, shuffle_buffer=0, reseed_each_epoch=False)
    stream = augment.pipeline(_dataset(3).repeat(2), **kwargs)
    examples = _epoch(stream)
    assert len(examples) == 6 and examples[0][0].shape == (16, 16, 3)
    np.testing.assert_array_equal(_epoch(stream)[4][0], examples[4][0])  # every pass the same
    # Position i has seed (5, i): the same as augmenting that example directly.
    image, mask = _example(24, 32, 1)
    expected = augment.augment(image, mask, _seed(5, 4), (16, 16))
    np.testing.assert_allclose(examples[4][0], expected[0], atol=1e-4)
    np.testing.assert_array_equal(examples[4][1], expected[1])
