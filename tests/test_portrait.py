"""Portrait mode: model configurations, person-mask data, smoothing and compositing."""

import cv2
import numpy as np
import pytest

from kerasseg import portrait


def _image(height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# === Model ===


def test_portrait_model_outputs_one_channel_probability_at_landscape_size():
    model = portrait.portrait_model(input_shape=(144, 256, 3))
    out = model.predict(np.full((1, 144, 256, 3), 100.0, "float32"), verbose=0)
    assert out.shape == (1, 144, 256, 1)
    assert (out > 0).all() and (out < 1).all()
    assert model.name == "portrait_lraspp_mobilenetv3small"


def test_portrait_model_overrides_and_rejects_unknown_config():
    small = portrait.portrait_model(input_shape=(64, 64, 3))
    smaller = portrait.portrait_model(input_shape=(64, 64, 3), head_filters=8)
    assert smaller.count_params() < small.count_params()
    with pytest.raises(ValueError, match="config"):
        portrait.portrait_model("lraspp_resnet")


# === Data ===


def test_unzoomed_scene_mask_is_the_person_class():
    from kerasseg.data.synthetic import CLASS_NAMES, make_scene

    image, mask = portrait.make_portrait_scene(3, 64, 96, zoom=False)
    scene = make_scene(3, 64, 96)
    np.testing.assert_array_equal(image, scene["image"])
    np.testing.assert_array_equal(mask, scene["semantic"] == CLASS_NAMES.index("person"))


def _person_heights(masks):
    return [np.ptp(np.nonzero(m)[0]) / len(m) for m in masks if m.any()]


def test_zoom_frames_the_person_and_is_deterministic():
    zoomed = _person_heights(portrait.make_portrait_scene(s, 64, 64)[1] for s in range(12))
    plain = _person_heights(
        portrait.make_portrait_scene(s, 64, 64, zoom=False)[1] for s in range(12)
    )
    assert len(zoomed) >= 6
    assert np.median(zoomed) > 0.7
    assert np.median(zoomed) > np.median(plain) + 0.15
    first, again = portrait.make_portrait_scene(5, 64, 64), portrait.make_portrait_scene(5, 64, 64)
    np.testing.assert_array_equal(first[0], again[0])
    assert set(np.unique(first[1])) <= {0, 1}


def test_person_mask_dataset():
    dataset = portrait.person_mask_dataset("val", num_images=3, image_size=(48, 80))
    assert dataset.cardinality().numpy() == 3
    pairs = list(dataset.as_numpy_iterator())
    image, mask = pairs[0]
    assert image.shape == (48, 80, 3) and image.dtype == np.float32
    assert mask.shape == (48, 80, 1) and set(np.unique(mask)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="split"):
        portrait.person_mask_dataset("holdout", num_images=2)


# === Smoothing ===


def test_mask_smoother_is_an_exponential_moving_average():
    smoother = portrait.MaskSmoother(momentum=0.75)
    masks = [np.full((4, 5), value, np.float32) for value in (1.0, 0.0, 0.0)]
    outputs = [smoother(m).copy() for m in masks]
    np.testing.assert_allclose(outputs[0], 1.0)
    np.testing.assert_allclose(outputs[1], 0.75)
    np.testing.assert_allclose(outputs[2], 0.75 * 0.75)
    # A new frame size is a new video: no blending with the old state.
    np.testing.assert_allclose(smoother(np.zeros((3, 3, 1))), 0.0)
    smoother.reset()
    np.testing.assert_allclose(smoother(np.ones((3, 3))), 1.0)
    assert np.array_equal(portrait.MaskSmoother(0)(masks[1]), masks[1])


@pytest.mark.parametrize("momentum", [1.0, -0.1, "0.5"])
def test_mask_smoother_rejects_bad_momentum(momentum):
    with pytest.raises(ValueError, match="momentum"):
        portrait.MaskSmoother(momentum)


# === Compositing ===


def test_feather_mask_softens_only_the_edge():
    mask = np.zeros((40, 40), np.float32)
    mask[:, 20:] = 1.0
    np.testing.assert_array_equal(portrait.feather_mask(mask, 0), mask)
    soft = portrait.feather_mask(mask, 4)
    assert 0.05 < soft[10, 19] < 0.5 < soft[10, 20] < 0.95
    assert soft[10, 0] == 0.0 and soft[10, 39] == pytest.approx(1.0)


def test_blur_background_keeps_person_and_blurs_the_rest():
    image = _image()
    blurred = cv2.GaussianBlur(image, (11, 11), 0)
    np.testing.assert_array_equal(
        portrait.blur_background(image, np.ones((48, 64)), blur_radius=5, feather_radius=0), image
    )
    np.testing.assert_array_equal(
        portrait.blur_background(image, np.zeros((48, 64, 1)), blur_radius=5, feather_radius=0),
        blurred,
    )
    # A low-resolution mask (a model's output) is resized to the frame.
    left = np.zeros((12, 16), np.float32)
    left[:, :8] = 1.0
    out = portrait.blur_background(image, left, blur_radius=5, feather_radius=0)
    np.testing.assert_array_equal(out[:, :28], image[:, :28])
    np.testing.assert_array_equal(out[:, 36:], blurred[:, 36:])


def test_replace_background_blends_by_mask():
    image, background = _image(seed=1), _image(24, 32, seed=2)
    resized = cv2.resize(background, (64, 48), interpolation=cv2.INTER_AREA)
    half = np.full((48, 64), 0.5, np.float32)
    out = portrait.replace_background(image, half, background, feather_radius=0)
    expected = np.rint(0.5 * image.astype(np.float32) + 0.5 * resized.astype(np.float32))
    np.testing.assert_allclose(out, expected, atol=1)
    green = portrait.replace_background(image, np.zeros((48, 64)), (0, 255, 0), feather_radius=2)
    assert (green == np.array([0, 255, 0], np.uint8)).all()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: portrait.blur_background(np.zeros((8, 8)), np.zeros((8, 8))), "image"),
        (lambda: portrait.blur_background(_image(), np.zeros((2, 8, 8))), "mask"),
        (lambda: portrait.blur_background(_image(), np.zeros((8, 8)), blur_radius=0),
         "blur_radius"),
        (lambda: portrait.replace_background(_image(), np.zeros((8, 8)), np.zeros((4, 4))),
         "background"),
    ],
)
def test_compositing_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
