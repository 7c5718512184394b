"""Portrait mode's mask smoothing and compositing (NumPy and OpenCV only)."""

import cv2
import numpy as np
import pytest

from kerasseg.runtime import compositing


def _image(height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_mask_smoother_is_an_exponential_moving_average():
    smoother = compositing.MaskSmoother(momentum=0.75)
    masks = [np.full((4, 5), value, np.float32) for value in (1.0, 0.0, 0.0)]
    outputs = [smoother(m).copy() for m in masks]
    np.testing.assert_allclose(outputs[0], 1.0)
    np.testing.assert_allclose(outputs[1], 0.75)
    np.testing.assert_allclose(outputs[2], 0.75 * 0.75)
    # A new frame size is a new video: no blending with the old state.
    np.testing.assert_allclose(smoother(np.zeros((3, 3, 1))), 0.0)
    smoother.reset()
    np.testing.assert_allclose(smoother(np.ones((3, 3))), 1.0)
    assert np.array_equal(compositing.MaskSmoother(0)(masks[1]), masks[1])


@pytest.mark.parametrize("momentum", [1.0, -0.1, "0.5"])
def test_mask_smoother_rejects_bad_momentum(momentum):
    with pytest.raises(ValueError, match="momentum"):
        compositing.MaskSmoother(momentum)


def test_feather_mask_softens_only_the_edge():
    mask = np.zeros((40, 40), np.float32)
    mask[:, 20:] = 1.0
    np.testing.assert_array_equal(compositing.feather_mask(mask, 0), mask)
    soft = compositing.feather_mask(mask, 4)
    assert 0.05 < soft[10, 19] < 0.5 < soft[10, 20] < 0.95
    assert soft[10, 0] == 0.0 and soft[10, 39] == pytest.approx(1.0)


def test_blur_background_keeps_person_and_blurs_the_rest():
    image = _image()
    blurred = cv2.GaussianBlur(image, (11, 11), 0)
    np.testing.assert_array_equal(
        compositing.blur_background(image, np.ones((48, 64)), blur_radius=5, feather_radius=0),
        image,
    )
    np.testing.assert_array_equal(
        compositing.blur_background(image, np.zeros((48, 64, 1)), blur_radius=5, feather_radius=0),
        blurred,
    )
    # A low-resolution mask (a model's output) is resized to the frame.
    left = np.zeros((12, 16), np.float32)
    left[:, :8] = 1.0
    out = compositing.blur_background(image, left, blur_radius=5, feather_radius=0)
    np.testing.assert_array_equal(out[:, :28], image[:, :28])
    np.testing.assert_array_equal(out[:, 36:], blurred[:, 36:])


def test_replace_background_blends_by_mask():
    image, background = _image(seed=1), _image(24, 32, seed=2)
    resized = cv2.resize(background, (64, 48), interpolation=cv2.INTER_AREA)
    half = np.full((48, 64), 0.5, np.float32)
    out = compositing.replace_background(image, half, background, feather_radius=0)
    expected = np.rint(0.5 * image.astype(np.float32) + 0.5 * resized.astype(np.float32))
    np.testing.assert_allclose(out, expected, atol=1)
    green = compositing.replace_background(image, np.zeros((48, 64)), (0, 255, 0), feather_radius=2)
    assert (green == np.array([0, 255, 0], np.uint8)).all()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: compositing.blur_background(np.zeros((8, 8)), np.zeros((8, 8))), "image"),
        (lambda: compositing.blur_background(_image(), np.zeros((2, 8, 8))), "mask"),
        (lambda: compositing.blur_background(_image(), np.zeros((8, 8)), blur_radius=0),
         "blur_radius"),
        (lambda: compositing.replace_background(_image(), np.zeros((8, 8)), np.zeros((4, 4))),
         "background"),
    ],
)
def test_compositing_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
