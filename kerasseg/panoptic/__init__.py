"""Panoptic segmentation: LPSNet targets, losses, panoptic head and PQ.

The numpy parts (targets, readers, `panoptic_merge`, PQ statistics) import
without TensorFlow, for the edge runtime; the TensorFlow parts resolve on
first use:

- `encode_targets`, `compose_panoptic`, `borderness_map` (targets)
- `read_coco_panoptic`, `read_coco_panoptic_json`,
  `read_cityscapes_instance_ids` (readers)
- `panoptic_merge` (numpy) and `panoptic_merge_tf` (TensorFlow): the
  non-parametric panoptic head
- `panoptic_statistics`, `summarize`, `PanopticQuality` (metric)
- `lpsnet_losses`, `compile_lpsnet`, `lpsnet_optimizer` (losses)
- `panoptic_dataset` (tf.data targets for `model.fit`),
  `coco_panoptic_pairs`, `cityscapes_panoptic_pairs` (images with their
  panoptic id maps), `load_panoptic_split` (the splits of `kerasseg train`)
  (datasets)
- `evaluate_panoptic`: PQ of a model over a dataset (evaluate)
"""

from kerasseg.panoptic.merge import MERGE_DEFAULTS, panoptic_merge
from kerasseg.panoptic.quality import panoptic_statistics, summarize
from kerasseg.panoptic.readers import (
    read_cityscapes_instance_ids,
    read_coco_panoptic,
    read_coco_panoptic_json,
)
from kerasseg.panoptic.targets import (
    LABEL_DIVISOR,
    VOID,
    borderness_map,
    compose_panoptic,
    encode_box_targets,
    encode_targets,
)
from kerasseg.utils import lazy_attributes

_LAZY = {
    "panoptic_merge_tf": "kerasseg.panoptic.merge_tf",
    "PanopticQuality": "kerasseg.panoptic.quality_metric",
    "lpsnet_losses": "kerasseg.panoptic.losses",
    "compile_lpsnet": "kerasseg.panoptic.losses",
    "lpsnet_optimizer": "kerasseg.panoptic.losses",
    "lpsnet_schedule": "kerasseg.panoptic.losses",
    "panoptic_dataset": "kerasseg.panoptic.datasets",
    "panoptic_targets_fn": "kerasseg.panoptic.datasets",
    "coco_panoptic_pairs": "kerasseg.panoptic.datasets",
    "cityscapes_panoptic_pairs": "kerasseg.panoptic.datasets",
    "load_panoptic_split": "kerasseg.panoptic.datasets",
    "evaluate_panoptic": "kerasseg.panoptic.evaluate",
}

__all__ = [
    "LABEL_DIVISOR", "MERGE_DEFAULTS", "VOID", "borderness_map", "compose_panoptic",
    "encode_box_targets", "encode_targets", "panoptic_merge", "panoptic_statistics",
    "read_cityscapes_instance_ids", "read_coco_panoptic", "read_coco_panoptic_json",
    "summarize", *_LAZY,
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
