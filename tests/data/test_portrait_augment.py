"""Portrait augmentation: copy-paste of people, blur, and their pipeline switches."""

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.data import augment


def _seed(a, b=0):
    return tf.constant([a, b], tf.int64)


def _background(height=40, width=60, value=50.0):
    return tf.fill([height, width, 3], value), tf.zeros([height, width], tf.int32)


def _donor(height=20, width=30):
    """A person (label 1, colour 200) in a box on a background of colour 10."""
    mask = np.zeros((height, width), np.int32)
    mask[height // 4: 3 * height // 4, width // 3: 2 * width // 3] = 1
    image = np.where(mask[..., None] == 1, 200.0, 10.0).repeat(3, -1).astype(np.float32)
    return tf.constant(image), tf.constant(mask)


def test_copy_paste_puts_the_person_into_image_and_mask():
    image, mask = _background()
    donor_image, donor_mask = _donor()
    # Same aspect, full height: the donor lands scaled x2 exactly over the target.
    out_image, out_mask = augment.copy_paste(image, mask, donor_image, donor_mask, _seed(0),
                                             probability=1.0, min_scale=1.0, max_scale=1.0,
                                             feather=0.0)
    out_image, out_mask = out_image.numpy(), out_mask.numpy()
    expected = np.kron(donor_mask.numpy(), np.ones((2, 2), np.int32))
    np.testing.assert_array_equal(out_mask, expected)  # the box is symmetric under flips
    np.testing.assert_allclose(out_image[out_mask == 1], 200.0, atol=1e-3)  # no donor background
    np.testing.assert_array_equal(out_image[out_mask == 0], 50.0)
    # Smaller pastes land anywhere inside; with feathering the edge blends, inside stays 200.
    for a in range(6):
        out_image, out_mask = augment.copy_paste(image, mask, donor_image, donor_mask,
                                                 _seed(a), 1.0, 0.4, 0.8, feather=1.0)
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == (40, 60, 3) and out_mask.shape == (40, 60)
        assert 0 < out_mask.sum() < 200 and set(np.unique(out_mask)) == {0, 1}
        np.testing.assert_array_equal(out_image[out_mask == 0], 50.0)
        assert out_image[out_mask == 1].max() == pytest.approx(200.0, abs=1e-3)
        assert out_image[out_mask == 1].min() > 50.0


def test_pasted_people_stand_on_the_bottom_edge():
    image, mask = _background()
    donor_mask = np.zeros((20, 30), np.int32)
    donor_mask[8:, 10:20] = 1  # a torso cut by the frame's bottom, as in portraits
    donor_image = tf.fill([20, 30, 3], 200.0)
    floating = 0
    for a in range(8):
        _, standing = augment.copy_paste(image, mask, donor_image, donor_mask, _seed(a), 1.0,
                                         0.3, 0.6)
        assert standing.numpy()[-1].any()
        _, anywhere = augment.copy_paste(image, mask, donor_image, donor_mask, _seed(a), 1.0,
                                         0.3, 0.6, bottom=False)
        floating += not anywhere.numpy()[-1].any()
    assert floating > 0


def test_copy_paste_keeps_target_labels_and_size_and_probability():
    image, _ = _background(30, 20)
    mask = tf.fill([30, 20], 255)  # ignored everywhere but where a person is pasted
    donor_image, donor_mask = _donor(50, 80)  # larger and wider than the target
    out_image, out_mask = augment.copy_paste(image, mask, donor_image, donor_mask, _seed(3),
                                             1.0, 1.5, 1.5)
    assert out_image.shape == (30, 20, 3) and out_mask.shape == (30, 20)
    assert set(np.unique(out_mask.numpy())) <= {1, 255}
    same_image, same_mask = augment.copy_paste(image, mask, donor_image, donor_mask, _seed(3),
                                               probability=0.0)
    np.testing.assert_array_equal(same_image, image)
    np.testing.assert_array_equal(same_mask, mask)


def test_copy_paste_is_seeded():
    image, mask = _background()
    donor = _donor()
    outputs = [augment.copy_paste(image, mask, *donor, _seed(a), 1.0, 0.3, 0.9)
               for a in (7, 7, 8)]
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    assert not np.array_equal(outputs[0][1], outputs[2][1])


def test_random_blur():
    image = np.zeros((15, 15, 3), np.float32)
    image[7, 7] = 90.0
    blurred = augment.random_blur(tf.constant(image), _seed(0), probability=1.0).numpy()
    assert blurred.sum() == pytest.approx(270.0, rel=1e-4) and blurred.max() < 90.0
    np.testing.assert_array_equal(augment.random_blur(tf.constant(image), _seed(0), 0.0), image)
    flat = tf.fill([9, 9, 3], 42.0)
    np.testing.assert_allclose(augment.random_blur(flat, _seed(1), 1.0), flat, rtol=1e-6)


def _people(count=4):
    images, masks = [], []
    for index in range(count):
        image, mask = _donor(24 + 4 * index, 32)
        images.append(image.numpy() - 5.0 * index)
        masks.append(mask.numpy())
    return tf.data.Dataset.from_generator(
        lambda: zip(images, masks),
        output_signature=(tf.TensorSpec([None, None, 3], tf.float32),
                          tf.TensorSpec([None, None], tf.int32)))


def test_copy_paste_dataset_and_pipeline_switches():
    pasted = list(augment.copy_paste_dataset(_people(), seed=1, probability=1.0))
    assert len(pasted) == 4
    for (image, mask), height in zip(pasted, (24, 28, 32, 36)):
        assert image.shape == (height, 32, 3) and mask.shape == (height, 32)
    portrait = augment.Augmentation(copy_paste=1.0, paste_scale=(0.5, 1.0), blur=1.0)
    options = dict(training=True, crop_size=(16, 16), batch_size=2, seed=3,
                   augmentation=portrait, reseed_each_epoch=False)
    runs = [[(x.numpy(), y.numpy()) for x, y in augment.pipeline(_people(), **options)]
            for _ in range(2)]
    assert len(runs[0]) == 2
    for (x, y), (x2, y2) in zip(*runs):
        assert x.shape == (2, 16, 16, 3) and y.shape == (2, 16, 16)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    plain = [x.numpy() for x, _ in augment.pipeline(
        _people(), **{**options, "augmentation": augment.Augmentation()})]
    assert not np.array_equal(plain[0], runs[0][0][0])


def test_the_config_hands_its_augmentation_to_the_pipeline_as_one_record(monkeypatch):
    from kerasseg.train import Config, datasets

    config = Config.from_dict({"data": {"scale_range": [0.6, 1.4], "copy_paste": 0.5,
                                        "blur": 0.3, "paste_scale": [0.4, 0.9]}})
    assert config.data.augmentation() == augment.Augmentation(
        scale_range=(0.6, 1.4), copy_paste=0.5, blur=0.3, paste_scale=(0.4, 0.9))
    received = []
    monkeypatch.setattr(datasets, "pipeline",
                        lambda stream, **options: received.append(options) or stream)
    datasets.training_stream(_people(), config, seed=1, steps=1, pad_label=255)
    assert received[0]["augmentation"] == config.data.augmentation()
