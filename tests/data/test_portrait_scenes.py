"""Synthetic portrait scenes: a person framed as in a selfie, person-vs-rest masks."""

import numpy as np
import pytest

from kerasseg.data import synthetic


def test_unzoomed_scene_mask_is_the_person_class():
    from kerasseg.data.synthetic import CLASS_NAMES, make_scene

    image, mask = synthetic.make_portrait_scene(3, 64, 96, zoom=False)
    scene = make_scene(3, 64, 96)
    np.testing.assert_array_equal(image, scene["image"])
    np.testing.assert_array_equal(mask, scene["semantic"] == CLASS_NAMES.index("person"))


def _person_heights(masks):
    return [np.ptp(np.nonzero(m)[0]) / len(m) for m in masks if m.any()]


def test_zoom_frames_the_person_and_is_deterministic():
    zoomed = _person_heights(synthetic.make_portrait_scene(s, 64, 64)[1] for s in range(12))
    plain = _person_heights(
        synthetic.make_portrait_scene(s, 64, 64, zoom=False)[1] for s in range(12)
    )
    assert len(zoomed) >= 6
    assert np.median(zoomed) > 0.7
    assert np.median(zoomed) > np.median(plain) + 0.15
    first, again = (synthetic.make_portrait_scene(5, 64, 64) for _ in range(2))
    np.testing.assert_array_equal(first[0], again[0])
    assert set(np.unique(first[1])) <= {0, 1}


def test_person_mask_dataset():
    dataset = synthetic.person_mask_dataset("val", num_images=3, image_size=(48, 80))
    assert dataset.cardinality().numpy() == 3
    pairs = list(dataset.as_numpy_iterator())
    image, mask = pairs[0]
    assert image.shape == (48, 80, 3) and image.dtype == np.float32
    assert mask.shape == (48, 80, 1) and set(np.unique(mask)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="split"):
        synthetic.person_mask_dataset("holdout", num_images=2)
