"""Small panoptic dataset layouts the tests write themselves."""

import json

import cv2
import numpy as np


def write_coco_panoptic(root, split, shape=(64, 64)):
    """One COCO-panoptic image under `root`: a thing (segment 300, category 1)
    at rows 8-39, columns 8-23 on stuff (segment 70000, category 184)."""
    (root / "annotations" / f"panoptic_{split}2017").mkdir(parents=True)
    (root / f"{split}2017").mkdir()
    ids = np.full(shape, 70000)
    ids[8:40, 8:24] = 300
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    cv2.imwrite(str(root / "annotations" / f"panoptic_{split}2017" / "1.png"), rgb[..., ::-1])
    cv2.imwrite(str(root / f"{split}2017" / "1.jpg"), np.full((*shape, 3), 128, np.uint8))
    record = {
        "categories": [{"id": 1, "isthing": 1}, {"id": 184, "isthing": 0}],
        "images": [{"id": 1, "file_name": "1.jpg"}],
        "annotations": [{"image_id": 1, "file_name": "1.png", "segments_info": [
            {"id": 300, "category_id": 1, "iscrowd": 0},
            {"id": 70000, "category_id": 184, "iscrowd": 0}]}],
    }
    (root / "annotations" / f"panoptic_{split}2017.json").write_text(json.dumps(record))
