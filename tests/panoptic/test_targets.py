"""LPSNet targets and panoptic readers, against hand-worked cases."""

import cv2
import numpy as np
import pytest

from kerasseg.panoptic.readers import (
    coco_categories,
    read_cityscapes_instance_ids,
    read_coco_panoptic,
    read_coco_panoptic_json,
)
from kerasseg.panoptic.targets import (
    borderness_map,
    compose_panoptic,
    encode_box_targets,
    encode_targets,
    level_points,
    level_shapes,
    split_panoptic,
)
from tests.panoptic.fixtures import write_coco_panoptic

PERSON = 4  # a thing category id used throughout


def cell_index(y, x, height, width, level=3):
    """Flat index of the cell of `level` whose sampled pixel is (y, x)."""
    ys, xs, strides = level_points(height, width)
    hit = np.flatnonzero((ys == y) & (xs == x) & (strides == 2**level))
    assert len(hit) == 1
    return int(hit[0])


def centreness(point, box):
    x, y = point
    left, top, right, bottom = x - box[0], y - box[1], box[2] - x, box[3] - y
    return np.sqrt(min(left, right) / max(left, right) * min(top, bottom) / max(top, bottom))


def test_level_shapes_and_points():
    assert level_shapes(64, 96) == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    ys, xs, strides = level_points(64, 96)
    assert len(ys) == 96 + 24 + 6 + 2 + 1
    # Row-major per level, the first cell of each level at (stride // 2, stride // 2).
    assert (ys[0], xs[0], xs[1], ys[12]) == (4, 4, 12, 12)
    assert (ys[96], xs[96], strides[96]) == (8, 8, 16)
    with pytest.raises(ValueError, match="multiples of 32"):
        level_shapes(60, 64)


def test_positive_only_inside_mask_not_box():
    # An L-shaped person: its box covers [8, 40) x [8, 40) but the top-right
    # quarter is background; FCOS would call cells there positive, LPSNet not.
    panoptic = np.zeros((64, 64), np.int32)
    panoptic[8:40, 8:24] = PERSON * 1000 + 1
    panoptic[24:40, 8:40] = PERSON * 1000 + 1
    targets = encode_box_targets(panoptic, thing_classes=(3, PERSON))
    inside_mask = cell_index(28, 36, 64, 64)
    in_box_not_mask = cell_index(12, 36, 64, 64)
    outside = cell_index(52, 52, 64, 64)
    assert targets["class"][inside_mask] == 2  # thing channel 1, plus 1
    assert targets["class"][in_box_not_mask] == 0
    assert targets["class"][outside] == 0
    np.testing.assert_array_equal(targets["boxes"][inside_mask], [8, 8, 40, 40])
    np.testing.assert_array_equal(targets["boxes"][in_box_not_mask], [0, 0, 0, 0])
    assert targets["borderness"][in_box_not_mask] == -1
    # Exactly the P3 pixels inside the mask are positive (no other level).
    ys, xs, strides = level_points(64, 64)
    expected = (strides == 8) & (panoptic[np.minimum(ys, 63), np.minimum(xs, 63)] > 0)
    np.testing.assert_array_equal(targets["class"] > 0, expected)


def test_level_assignment_follows_fcos_ranges():
    # A 96x96 object: the centre cell's max distance is 48 > 32, so with
    # ranges (0, 32], (32, 64], ... it belongs to P4, while cells near its
    # corner (max distance > 64) go to P5 and small distances to P3.
    panoptic = np.zeros((128, 128), np.int32)
    panoptic[16:112, 16:112] = PERSON * 1000 + 1
    ranges = ((0, 32), (32, 64), (64, 128), (128, 256), (256, np.inf))
    targets = encode_box_targets(panoptic, (PERSON,), size_ranges=ranges)
    ys, xs, strides = level_points(128, 128)
    positive = targets["class"] == 1
    for index in np.flatnonzero(positive):
        box = targets["boxes"][index]
        cx, cy = xs[index] + 0.5, ys[index] + 0.5
        extent = max(cx - box[0], cy - box[1], box[2] - cx, box[3] - cy)
        low, high = ranges[int(np.log2(strides[index])) - 3]
        assert low < extent <= high
    centre_p4 = cell_index(56, 56, 128, 128, level=4)  # extent 56.5 - 16 = 40.5
    assert targets["class"][centre_p4] == 1
    assert targets["class"][cell_index(60, 60, 128, 128, level=3)] == 0  # 52.5 > 32 at P3
    assert set(np.unique(strides[positive])) == {16, 32}


def test_borderness_on_rectangle_equals_centreness():
    ids = np.zeros((40, 50), np.int32)
    ids[5:25, 10:40] = 7
    border = borderness_map(ids)
    for y, x in ((15, 25), (6, 11), (20, 30), (5, 39)):
        np.testing.assert_allclose(
            border[y, x], centreness((x + 0.5, y + 0.5), (10, 5, 40, 25)), rtol=1e-6
        )
    odd = np.zeros((9, 9), np.int32)
    odd[2:7, 1:8] = 1  # 5 x 7: its centre pixel is exactly in the middle
    assert borderness_map(odd)[4, 4] == pytest.approx(1.0)
    assert borderness_map(odd)[2:7, 1:8].max() == borderness_map(odd)[4, 4]
    np.testing.assert_allclose(border[15, 25], np.sqrt((14.5 / 15.5) * (9.5 / 10.5)), rtol=1e-6)


def test_borderness_follows_the_mask_not_the_box():
    # A "U": two 4-pixel-wide legs joined at the bottom. Between the legs the
    # box centre-ness is high; along a leg border-ness is measured across the
    # leg (4 pixels), so a pixel at a leg's edge scores low.
    ids = np.zeros((32, 32), np.int32)
    ids[4:28, 4:8] = 1
    ids[4:28, 24:28] = 1
    ids[24:28, 4:28] = 1
    border = borderness_map(ids)
    # Pixel (12, 5): row run [4, 8) -> left 1.5, right 2.5; column run [4, 28) -> 8.5, 15.5.
    expected = np.sqrt((1.5 / 2.5) * (8.5 / 15.5))
    np.testing.assert_allclose(border[12, 5], expected, rtol=1e-6)
    assert centreness((5.5, 12.5), (4, 4, 28, 28)) < expected  # box centre-ness differs
    # Pixel (25, 16): row run is the whole bottom bar [4, 28), column run [24, 28).
    np.testing.assert_allclose(border[25, 16], np.sqrt((11.5 / 12.5) * (1.5 / 2.5)), rtol=1e-6)
    panoptic = np.where(ids > 0, PERSON * 1000 + 1, 0)
    targets = encode_box_targets(panoptic, (PERSON,))
    index = cell_index(12, 4, 32, 32)
    np.testing.assert_allclose(targets["borderness"][index], border[12, 4], rtol=1e-6)


def test_crowd_is_ignored_void_is_background_semantic_keeps_crowd():
    panoptic = np.full((64, 64), 1000, np.int32)  # stuff category 1
    panoptic[0:32, 0:32] = PERSON * 1000  # crowd: thing with instance 0
    panoptic[32:64, 32:64] = -1  # void
    panoptic[40:56, 0:16] = PERSON * 1000 + 3
    targets = encode_targets(panoptic, (PERSON,))
    assert targets["class"][cell_index(12, 12, 64, 64)] == -1
    assert targets["class"][cell_index(44, 44, 64, 64)] == 0
    assert targets["class"][cell_index(44, 4, 64, 64)] == 1
    semantic = targets["semantic"]
    assert semantic[5, 5] == PERSON and semantic[50, 50] == 255 and semantic[5, 50] == 1


def test_split_and_compose_round_trip():
    semantic = np.array([[0, 4, 4], [5, 5, 255]])
    instances = np.array([[0, 2, 2], [7, 0, 0]])
    panoptic = compose_panoptic(semantic, instances, thing_classes=(4, 5))
    np.testing.assert_array_equal(panoptic, [[0, 4002, 4002], [5007, 5000, -1]])
    category, numbered, thing_index, crowd = split_panoptic(panoptic, (4, 5))
    np.testing.assert_array_equal(category, [[0, 4, 4], [5, 5, 255]])
    np.testing.assert_array_equal(numbered, [[0, 1, 1], [2, 0, 0]])
    np.testing.assert_array_equal(thing_index, [-1, 0, 1])
    np.testing.assert_array_equal(crowd, [[False, False, False], [False, True, False]])


def _rgb(segment_ids):
    ids = np.asarray(segment_ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def test_coco_panoptic_reader(tmp_path):
    categories = [{"id": 1, "isthing": 1, "name": "person"},
                  {"id": 3, "isthing": 1, "name": "car"},
                  {"id": 184, "isthing": 0, "name": "sky"}]
    category_map, things = coco_categories(categories)
    assert category_map == {1: 0, 3: 1, 184: 2} and things == (0, 1)
    ids = np.array([[0, 70000, 70000], [300, 300, 5], [6, 6, 9]])
    segments = [
        {"id": 70000, "category_id": 184, "iscrowd": 0},
        {"id": 300, "category_id": 1, "iscrowd": 0},
        {"id": 5, "category_id": 1, "iscrowd": 0},
        {"id": 6, "category_id": 3, "iscrowd": 1},
    ]
    png = tmp_path / "000001.png"
    cv2.imwrite(str(png), _rgb(ids)[..., ::-1])
    panoptic = read_coco_panoptic(png, segments, category_map, things)
    # 0 (void) and 9 (not listed) are void; the crowd car has instance 0.
    np.testing.assert_array_equal(panoptic, [[-1, 2000, 2000], [1, 1, 2], [1000, 1000, -1]])
    record = {"categories": categories, "images": [{"id": 7, "file_name": "a.jpg"}],
              "annotations": [{"image_id": 7, "file_name": "000001.png",
                               "segments_info": segments}]}
    (tmp_path / "panoptic.json").write_text(__import__("json").dumps(record))
    annotations, mapping, thing_classes = read_coco_panoptic_json(tmp_path / "panoptic.json")
    assert annotations == [("a.jpg", "000001.png", segments)] and mapping == category_map
    with pytest.raises(ValueError, match="category_id=99"):
        read_coco_panoptic(png, [{"id": 5, "category_id": 99}], category_map, things)
    with pytest.raises(ValueError, match="json_path"):
        read_coco_panoptic_json(tmp_path / "missing.json")


def test_cityscapes_instance_ids_reader(tmp_path):
    # road (label 7 -> train 0), car instances 26001 and 26004 -> train 13,
    # a rider region without instances (label 25 -> 12: crowd), ego car (1: void).
    ids = np.array([[7, 7, 26001], [26004, 26004, 25], [1, 7, 26001]], np.uint16)
    path = tmp_path / "x_gtFine_instanceIds.png"
    cv2.imwrite(str(path), ids)
    panoptic = read_cityscapes_instance_ids(path)
    np.testing.assert_array_equal(panoptic, [[0, 0, 13001], [13002, 13002, 12000], [-1, 0, 13001]])


def test_coco_panoptic_pairs_feed_lpsnet_targets(tmp_path):
    from kerasseg.panoptic import coco_panoptic_pairs, panoptic_dataset

    write_coco_panoptic(tmp_path, "val")
    dataset, things = coco_panoptic_pairs(tmp_path, "val")
    assert things == (0,)
    image, panoptic = next(iter(dataset))
    assert image.shape == (64, 64, 3) and panoptic[10, 10] == 1 and panoptic[0, 0] == 1000
    fixed = dataset.map(lambda i, p: (tf_ensure(i, (64, 64, 3)), tf_ensure(p, (64, 64))))
    _, targets = next(iter(panoptic_dataset(fixed, things)))
    assert int((targets["class_logits"].numpy() == 1).sum()) == 8  # as the docstring example
    assert targets["borderness"].shape == (sum(h * w for h, w in level_shapes(64, 64)), 1)


def tf_ensure(tensor, shape):
    import tensorflow as tf

    return tf.ensure_shape(tensor, shape)
