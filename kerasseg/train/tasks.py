"""What differs between the kinds of training, in one place the loop consults.

A task says which datasets it reads, which defaults a config starts from,
what it checks in a config, how a split is loaded (and what it tells about
the classes), the label that pads augmented masks, the per-example training
targets, the loss, the training metrics, and how validation runs and which
log entry picks `best.keras`. `kerasseg.train.train` runs every task through
the same loop.

- "semantic": class-id masks, a loss of `kerasseg.losses`, the streaming
  segmentation metrics, Keras validation on the val split (`val_mean_iou`).
- "panoptic" (a builder with `thing_classes`, LPSNet): panoptic id maps padded
  with void, turned into LPSNet's targets after augmentation, its multi-task
  loss, semantic metrics on the "semantic" output, and the panoptic head run
  on the val split each epoch (`PanopticValidation`, `val_pq`).
- "binary" (one class: `data.num_classes: 1`, or a dataset of one class): a
  one-channel model ending in a sigmoid, person-vs-rest masks (0, 1, ignore)
  from a binary-mask dataset or the synthetic portrait scenes, the semantic
  losses on background and foreground (`kerasseg.losses.prepare_targets`),
  and `val_foreground_iou` picking `best.keras`.
"""

import dataclasses
import inspect

import tensorflow as tf

from kerasseg.data.class_weights import dataset_class_weights
from kerasseg.data.readers import SOURCES
from kerasseg.data.synthetic import person_mask_dataset
from kerasseg.losses import LOSSES
from kerasseg.metrics import PerClassIoU, segmentation_metrics
from kerasseg.panoptic.datasets import load_panoptic_split, panoptic_targets_fn
from kerasseg.panoptic.losses import lpsnet_losses
from kerasseg.panoptic.targets import VOID
from kerasseg.train.callbacks import PanopticValidation
from kerasseg.train.datasets import (
    dataset_num_classes,
    resolve_num_classes,
    semantic_split,
    validation_batches,
)
from kerasseg.train.model import resolve_builder
from kerasseg.utils import check_choice

# "synthetic" plus the sources of `kerasseg.data.readers.SOURCES`.
DATASETS = ("synthetic", *SOURCES)


@dataclasses.dataclass(frozen=True)
class SplitData:
    """One split as a task loads it.

    Attributes:
        dataset: Unbatched `tf.data.Dataset` of (image float32 (H, W, 3) in
            [0, 255], ground truth): a class-id mask, or a panoptic id map.
        num_classes: The model's classes, its output channels (1 for the
            binary task's foreground score; panoptic: the semantic classes).
        thing_classes: Thing class ids, in the class head's order (panoptic).
    """

    dataset: object
    num_classes: int
    thing_classes: tuple | None = None


class SemanticTask:
    """Per-pixel classification (see the module docstring)."""

    name = "semantic"
    datasets = DATASETS
    defaults = {}
    monitor = "val_mean_iou"

    def check(self, config):
        """Checks what this task requires of `config` (the sections are valid)."""
        check_choice("data.dataset", config.data.dataset, self.datasets)

    def split(self, config, split):
        return SplitData(semantic_split(config, split), resolve_num_classes(config))

    def mask_classes(self, data):
        """The classes a mask of `data` holds (what metrics count and class
        weights weigh): the model's classes."""
        return data.num_classes

    def pad_label(self, config):
        return config.data.ignore_label

    def targets(self, config, data):
        """A `Dataset.map` function from augmented (image, truth) to the model's
        targets, or None when the truth is the target."""
        return None

    def builder_args(self, data):
        return {}

    def loss(self, config):
        """(loss, loss_weights) for `compile`."""
        check_choice("loss.name", config.loss.name, tuple(LOSSES))
        args = dict(config.loss.args)
        if args.get("class_weights") == "median_frequency":  # SegNet's balancing
            train = self.split(config, config.data.train_split)
            args["class_weights"] = dataset_class_weights(
                train.dataset, self.mask_classes(train), ignore_label=config.data.ignore_label)
        return LOSSES[config.loss.name](ignore_label=config.data.ignore_label, **args), None

    def metrics(self, config, data):
        return segmentation_metrics(self.mask_classes(data), config.data.ignore_label)

    def validation(self, config, data):
        """(validation_data for `fit`, extra callbacks) on `data.val_split`."""
        return validation_batches(config, self.split(config, config.data.val_split).dataset), []


class PanopticTask(SemanticTask):
    """LPSNet's panoptic training (see the module docstring)."""

    name = "panoptic"
    datasets = ("synthetic", "coco_panoptic", "cityscapes")
    # Unset keys of a panoptic config: LPSNet's paper recipe (SGD, lr 0.01 for a
    # batch of 16, momentum 0.9, weight decay 1e-4, x0.1 at 2/3 and 8/9 of the
    # run) and its multi-task loss (`kerasseg.panoptic.lpsnet_losses`).
    defaults = {
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9,
                      "weight_decay": 1e-4, "schedule": "step"},
        "loss": {"name": "lpsnet"},
    }
    monitor = "val_pq"

    def check(self, config):
        check_choice("data.dataset", config.data.dataset, self.datasets)
        if config.loss.name != "lpsnet":
            raise ValueError("A panoptic model trains with `loss.name` 'lpsnet'. "
                             f"Received: loss.name={config.loss.name!r}")
        ranges = config.loss.args.get("size_ranges")
        if ranges is not None and (
                not isinstance(ranges, (list, tuple)) or len(ranges) != 5
                or not all(isinstance(r, (list, tuple)) and len(r) == 2 and 0 <= r[0] < r[1]
                           for r in ranges)):
            raise ValueError("`loss.args.size_ranges` must be 5 [low, high] pixel ranges, "
                             f"one per box level P3..P7. Received: {ranges!r}")

    def split(self, config, split):
        data = config.data
        count = data.num_train_images if split == data.train_split else data.num_val_images
        pairs, num_classes, thing_classes = load_panoptic_split(
            data.dataset, data.root, split, count, data.image_size, data.seed)
        return SplitData(pairs, data.num_classes or num_classes, tuple(thing_classes))

    def pad_label(self, config):
        return VOID

    def targets(self, config, data):
        size_ranges = config.loss.args.get("size_ranges")
        options = {"size_ranges": tuple(map(tuple, size_ranges))} if size_ranges else {}
        return panoptic_targets_fn(data.thing_classes, **options)

    def builder_args(self, data):
        return {"thing_classes": data.thing_classes}

    def loss(self, config):
        args = {k: v for k, v in config.loss.args.items() if k != "size_ranges"}
        # The paper's weights: Cityscapes' on Cityscapes, COCO's elsewhere.
        args.setdefault("preset", "cityscapes" if config.data.dataset == "cityscapes" else "coco")
        try:
            return lpsnet_losses(**args)
        except TypeError as error:
            raise ValueError(f"`loss.args`: {error}") from None

    def metrics(self, config, data):
        return {"semantic": super().metrics(config, data)}

    def validation(self, config, data):
        pairs = self.split(config, config.data.val_split).dataset
        return None, [PanopticValidation(pairs, data.num_classes, data.thing_classes)]


class BinaryTask(SemanticTask):
    """One-channel foreground masks, as portrait mode needs (see the module docstring)."""

    name = "binary"
    datasets = ("synthetic", *(name for name, source in SOURCES.items() if source.binary))
    monitor = "val_foreground_iou"

    def mask_classes(self, data):
        return 2  # background and foreground of the one-channel model

    def split(self, config, split):
        data = config.data
        if data.dataset != "synthetic":
            return SplitData(semantic_split(config, split), 1)
        count = data.num_train_images if split == data.train_split else data.num_val_images
        masks = person_mask_dataset(split, count, data.image_size, seed=data.seed)
        # Scenes are drawn in Python: draw once, keep them (as uint8) in memory.
        masks = masks.map(lambda image, mask: (tf.cast(image, tf.uint8),
                                               tf.cast(mask[..., 0], tf.int32))).cache()
        return SplitData(masks.map(lambda image, mask: (tf.cast(image, tf.float32), mask)), 1)

    def builder_args(self, data):
        return {"activation": "sigmoid"}

    def metrics(self, config, data):
        # A one-channel output p is labelled p > 0.5 by the metrics.
        return [*super().metrics(config, data), PerClassIoU(
            2, class_id=1, ignore_label=config.data.ignore_label, name="foreground_iou")]


TASKS = {task.name: task for task in (SemanticTask(), PanopticTask(), BinaryTask())}


def task_name(model_name, num_classes=None):
    """The task of a config: "panoptic" if the builder `model_name` takes
    `thing_classes`, "binary" if the data has one class (`num_classes`: the
    resolved class count, None when unknown), else "semantic".

    A name that does not resolve counts as semantic: building it fails later,
    with the error of `kerasseg.train.build_model`.
    """
    try:
        parameters = inspect.signature(resolve_builder(model_name)).parameters
    except (ValueError, TypeError):
        parameters = {}
    if "thing_classes" in parameters:
        return "panoptic"
    return "binary" if num_classes == 1 else "semantic"


def config_task_name(model_name, dataset, num_classes=None):
    """`task_name` of a config's model and data: `num_classes` if set, else
    the dataset's own class count (1 for the binary-mask datasets)."""
    return task_name(model_name, num_classes or dataset_num_classes(dataset))


def load_split(config, split):
    """`split` of the config's dataset as its task reads it: a `SplitData`."""
    return TASKS[config.task].split(config, split)


def split_dataset(config, split):
    """Unbatched dataset of `split`: (image float32 [0, 255], mask int32), or
    for a panoptic config (image, panoptic id map)."""
    return load_split(config, split).dataset
