"""LearnedUpsampling2D against tf.image.resize; argmax pooling/unpooling
against tf.nn.max_pool_with_argmax plus a scatter."""

import numpy as np
import pytest
import tensorflow as tf

from kerasseg.layers import (
    CropLike,
    LearnedUpsampling2D,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    Preprocess,
    ResizeLike,
    bilinear_kernel,
)
from tests.layer_checks import check_layer_round_trip


@pytest.mark.parametrize("factor", [2, 8, 32])
@pytest.mark.parametrize("size", [(5, 7), (1, 1), (4, 4)])
def test_learned_upsampling_starts_as_bilinear_resize(factor, size):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    target = (size[0] * factor, size[1] * factor)
    reference = np.zeros((1, *target, 1), "float32")
    actual = LearnedUpsampling2D(factor)([x, reference]).numpy()
    expected = tf.image.resize(x, target, "bilinear").numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_learned_upsampling_crops_to_smaller_reference():
    x = np.random.default_rng(1).normal(size=(1, 3, 4, 2)).astype("float32")
    full = LearnedUpsampling2D(2)([x, np.zeros((1, 6, 8, 1), "float32")]).numpy()
    cropped = LearnedUpsampling2D(2)([x, np.zeros((1, 5, 7, 1), "float32")]).numpy()
    np.testing.assert_allclose(cropped, full[:, :5, :7], atol=1e-6)


def test_learned_upsampling_kernel_is_trainable_or_frozen():
    layer = LearnedUpsampling2D(2, trainable=False)
    layer([np.zeros((1, 2, 2, 3), "float32"), np.zeros((1, 4, 4, 1), "float32")])
    assert layer.trainable_weights == []
    np.testing.assert_array_equal(layer.get_weights()[0], bilinear_kernel(2, 3))


@pytest.mark.parametrize("factor", [3, 0, 2.0])
def test_learned_upsampling_rejects_bad_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        LearnedUpsampling2D(factor)


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (1, 1), (5, 2)])
def test_argmax_pooling_matches_tf_max_pool_with_argmax(size):
    # Distinct values: no ties, so the argmax is unique.
    rng = np.random.default_rng(2)
    x = rng.permutation(np.prod((2, *size, 3))).reshape(2, *size, 3).astype("float32")
    pooled, indices = MaxPoolingWithArgmax2D()(x)
    ref_pooled, ref_argmax = tf.nn.max_pool_with_argmax(
        x, 2, 2, "SAME", include_batch_in_index=True
    )
    np.testing.assert_array_equal(pooled.numpy(), ref_pooled.numpy())
    assert indices.dtype == tf.int32

    unpooled = MaxUnpooling2D()([pooled, indices, x]).numpy()
    scattered = np.zeros(x.size, "float32")
    scattered[ref_argmax.numpy().ravel()] = ref_pooled.numpy().ravel()
    np.testing.assert_array_equal(unpooled, scattered.reshape(x.shape))


def test_index_dropout_moves_indices_in_training_only():
    x = np.random.default_rng(4).permutation(2 * 40 * 40 * 8).reshape(2, 40, 40, 8)
    x = x.astype("float32")
    plain_pooled, true_indices = MaxPoolingWithArgmax2D()(x)
    layer = MaxPoolingWithArgmax2D(index_dropout=0.4, seed=7)
    pooled, indices = layer(x, training=True)
    np.testing.assert_array_equal(pooled.numpy(), plain_pooled.numpy())
    assert set(np.unique(indices.numpy())) == {0, 1, 2, 3}
    # A dropped index lands on one of 4 positions at random: 3/4 of them move.
    moved = np.mean(indices.numpy() != true_indices.numpy())
    assert 0.4 * 0.75 - 0.02 < moved < 0.4 * 0.75 + 0.02
    _, again = layer(x, training=True)
    assert np.any(again.numpy() != indices.numpy())  # new draws at every step
    for training in (False, None):
        np.testing.assert_array_equal(layer(x, training=training)[1].numpy(), true_indices.numpy())


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.5", True])
def test_index_dropout_rejects_rates_outside_0_1(rate):
    with pytest.raises(ValueError, match=r"`index_dropout` must be a number in \[0, 1\)"):
        MaxPoolingWithArgmax2D(index_dropout=rate)


def test_unpooling_places_decoder_values_not_encoder_values():
    x = np.array([[1, 9], [3, 4]], "float32").reshape(1, 2, 2, 1)
    _, indices = MaxPoolingWithArgmax2D()(x)
    out = MaxUnpooling2D()([np.full((1, 1, 1, 1), 5.0, "float32"), indices, x]).numpy()
    np.testing.assert_array_equal(out.reshape(2, 2), [[0, 5], [0, 0]])


def test_preprocess_caffe_matches_keras_applications():
    import keras

    x = np.random.default_rng(3).uniform(0, 255, (2, 4, 5, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_allclose(Preprocess("caffe")(x).numpy(), expected, atol=1e-4)


def test_preprocess_tf_mode_and_extra_channels():
    x = np.full((1, 2, 2, 4), 255.0, "float32")
    np.testing.assert_allclose(Preprocess("tf")(x).numpy(), 1.0, atol=1e-6)
    caffe = Preprocess("caffe")(x).numpy()
    np.testing.assert_allclose(caffe[..., 3], 1.0, atol=1e-6)  # depth scaled to [-1, 1]


def test_resize_like_and_crop_like():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    ref = np.zeros((1, 2, 2, 1), "float32")
    np.testing.assert_array_equal(CropLike()([x, ref]).numpy().ravel(), [5, 6, 9, 10])
    np.testing.assert_array_equal(CropLike(offset=0)([x, ref]).numpy().ravel(), [0, 1, 4, 5])
    resized = ResizeLike()([x, np.zeros((1, 8, 8, 1), "float32")]).numpy()
    np.testing.assert_allclose(resized, tf.image.resize(x, (8, 8)).numpy(), atol=1e-6)


def test_bad_layer_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="mode"):
        Preprocess("bgr")
    with pytest.raises(ValueError, match="interpolation"):
        ResizeLike("cubic")
    with pytest.raises(ValueError, match="offset"):
        CropLike(offset=-1)


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (
            LearnedUpsampling2D(4),
            [np.ones((1, 3, 3, 2), "float32"), np.ones((1, 11, 12, 1), "float32")],
        ),
        (MaxPoolingWithArgmax2D(), np.arange(50, dtype="float32").reshape(1, 5, 5, 2)),
        (
            MaxPoolingWithArgmax2D(index_dropout=0.5, seed=3),
            np.arange(50, dtype="float32").reshape(1, 5, 5, 2),
        ),
        (Preprocess("torch"), np.ones((1, 3, 3, 3), "float32")),
        (
            ResizeLike("nearest"),
            [np.ones((1, 3, 3, 2), "float32"), np.ones((1, 6, 6, 1), "float32")],
        ),
        (CropLike(offset=1), [np.ones((1, 6, 6, 2), "float32"), np.ones((1, 3, 3, 1), "float32")]),
        (
            MaxUnpooling2D(),
            [
                np.ones((1, 2, 2, 2), "float32"),
                np.zeros((1, 2, 2, 2), "int32"),
                np.ones((1, 3, 4, 1), "float32"),
            ],
        ),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, (list, np.ndarray)) else "",
)
def test_layer_round_trip(layer, inputs, tmp_path):
    check_layer_round_trip(layer, inputs, tmp_path)
