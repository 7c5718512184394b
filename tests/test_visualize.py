"""kerasseg.visualize: palettes, label colouring, overlays, confusion-matrix PNG."""

import cv2
import numpy as np
import pytest

from kerasseg import visualize


def test_voc_palette_matches_the_published_colours_and_the_reader():
    from kerasseg.data.readers import voc_palette as reader_palette

    palette = visualize.voc_palette(256)
    # First entries of the PASCAL VOC colour map (background, aeroplane, ...).
    np.testing.assert_array_equal(
        palette[:9],
        [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128],
         [0, 128, 128], [128, 128, 128], [64, 0, 0]],
    )
    np.testing.assert_array_equal(palette, np.asarray(reader_palette(256))[:, :3])
    assert len(np.unique(palette, axis=0)) == 256


def test_colorize_uses_palette_and_marks_ignored_pixels():
    palette = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)
    labels = np.array([[0, 1], [2, 255]])
    picture = visualize.colorize(labels, palette, ignore_color=(1, 2, 3))
    np.testing.assert_array_equal(picture, [[[10, 20, 30], [40, 50, 60]],
                                            [[70, 80, 90], [1, 2, 3]]])
    assert picture.dtype == np.uint8
    with pytest.raises(ValueError, match="palette has 3 colours"):
        visualize.colorize(np.array([[3]]), palette)
    with pytest.raises(ValueError, match="labels"):
        visualize.colorize(np.zeros((2, 2, 1), int), palette)


def test_overlay_blends_and_leaves_ignored_pixels():
    palette = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    image = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, 1], [255, 0]])
    np.testing.assert_array_equal(visualize.overlay(image, labels, palette, alpha=0), image)
    full = visualize.overlay(image, labels, palette, alpha=1)
    np.testing.assert_array_equal(full[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(full[1, 0], [100, 100, 100])  # ignored: image shows
    half = visualize.overlay(image, labels, palette, alpha=0.5)
    np.testing.assert_array_equal(half[0, 1], [50, 50, 178])  # rint(0.5*100 + 0.5*255)
    with pytest.raises(ValueError, match="same size"):
        visualize.overlay(image, labels[:1], palette)
    with pytest.raises(ValueError, match="alpha"):
        visualize.overlay(image, labels, palette, alpha=2)


def test_confusion_matrix_png(tmp_path):
    confusion = np.diag([50, 30, 20]).astype(np.int64)
    confusion[0, 1] = 50  # class 0: half right, half predicted as class 1
    picture = visualize.confusion_matrix_image(confusion, ["sky", "road", "car"], cell=40)
    path = visualize.save_image(tmp_path / "confusion.png", picture)
    loaded = cv2.imread(path)[..., ::-1]
    np.testing.assert_array_equal(loaded, picture)
    full_cells = np.all(picture == [8, 48, 160], axis=-1).sum()  # share 1.0: darkest blue
    half_cells = np.all(picture == [131, 151, 207], axis=-1).sum()  # share 0.5
    # Two full cells (road, car) and two half cells (row sky), less their text.
    assert 2 * 0.8 * 40**2 < full_cells <= 2 * 40**2
    assert 2 * 0.8 * 40**2 < half_cells <= 2 * 40**2
    with pytest.raises(ValueError, match="class_names"):
        visualize.confusion_matrix_image(confusion, ["a"])
    with pytest.raises(ValueError, match="square"):
        visualize.confusion_matrix_image(np.zeros((2, 3)))


def test_save_image_writes_rgb_order(tmp_path):
    red = np.zeros((4, 5, 3), np.uint8)
    red[..., 0] = 255
    path = visualize.save_image(tmp_path / "sub" / "red.png", red)
    np.testing.assert_array_equal(cv2.imread(path)[0, 0], [0, 0, 255])  # cv2 reads BGR


def test_side_by_side():
    a, b = np.zeros((3, 2, 3), np.uint8), np.ones((3, 4, 3), np.uint8)
    joined = visualize.side_by_side(a, b, gap=1)
    assert joined.shape == (3, 7, 3) and np.all(joined[:, 2] == 255)
    with pytest.raises(ValueError, match="height"):
        visualize.side_by_side(a, np.zeros((2, 2, 3), np.uint8))
