"""Training configuration: one dataclass per section, loaded from YAML or JSON.

A config file has up to five sections; every key is optional and unknown keys
are errors (a typo must not silently fall back to a default):

```yaml
model: {name: deeplabv3plus, args: {backbone: mobilenetv2, backbone_kwargs: {alpha: 0.35}}}
data: {dataset: synthetic, image_size: [128, 128], batch_size: 8}
optimizer: {name: sgd, learning_rate: 0.02, weight_decay: 0.0001, warmup_steps: 50}
loss: {name: cross_entropy}
training: {epochs: 10, checkpoint_every: 50, output_dir: runs/synthetic}
```

Each section checks itself (`check()`, with the shared `check_*`
helpers of `kerasseg.utils`); what depends on the task (`Config.task`, see
`kerasseg.train.tasks`) is checked by the task. `Config.save(run_dir)`
writes the resolved values (defaults filled in) to `run_dir/config.yaml`, so
every run records exactly what it ran.

The task follows from the model and the data (`kerasseg.train.tasks`): a
builder with a `thing_classes` argument (`lpsnet`) is panoptic; one class
(`data.num_classes: 1`, or a dataset of one class) is binary, a one-channel
sigmoid model such as portrait mode's; everything else semantic. A panoptic config reads
panoptic ground truth ("synthetic", "coco_panoptic", "cityscapes") and its
unset keys take the paper's recipe (LPSNet's multi-task loss, SGD 0.01 with
step decay):

```yaml
model: {name: lpsnet, args: {backbone: mobilenetv2, backbone_kwargs: {alpha: 0.35},
                             fpn_filters: 64, semantic_filters: 32, head_convs: 2}}
data: {dataset: synthetic, image_size: [128, 128], batch_size: 8}
loss: {name: lpsnet, args: {preset: coco, size_ranges: [[0, 32], [32, 64], [64, 128],
                                                        [128, 256], [256, .inf]]}}
```
"""

import copy
import dataclasses
import json
import os
import reprlib

import yaml

from kerasseg.data.augment import Augmentation
from kerasseg.data.labels import IGNORE_LABEL
from kerasseg.train.strategy import PRECISIONS, STRATEGIES
from kerasseg.train.tasks import DATASETS, TASKS, config_task_name
from kerasseg.utils import check_choice, check_number, check_positive_int, check_type

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "step")


@dataclasses.dataclass
class ModelConfig:
    """`name`: a kerasseg builder (`kerasseg.models.MODELS`) or one given
    to `kerasseg.register_builder`; `args`: its keyword arguments. `bn_momentum`
    sets the momentum of every BatchNormalization layer, in the builder's
    `norm` (`kerasseg.layers.BatchNormSettings`; None keeps its default,
    0.99): a slow average leaves the moving statistics near their initial
    values for the first hundreds of steps of a short run from scratch, so
    validation would score a broken model; 0.9 suits such runs.

    The default model (the one `kerasseg quickstart` trains) is a DeepLabv3+
    MobileNetV2 at width 0.35 whose ASPP reads the last block (112 channels,
    as in the reference implementation's MobileNetV2 models) instead of the
    1280-channel last conv, with separable ASPP branches and plain 3x3
    decoder convolutions (`separable="aspp"`): XNNPACK runs int8 depthwise
    convolutions on CPUs no faster than float, plain ones several times
    faster. Against the all-separable model on the 1280 channels it is half
    the size, more accurate in the quickstart and gains more from int8: the
    measured figures are in the README ("int8 speed", and the Benchmarks
    table, `benchmarks/export.py --quickstart-model`).

    Fine-tuning from a preset (`args.weights`, `kerasseg.pretrained`):
    `freeze_batch_norm` runs every BatchNormalization layer in inference
    mode with its statistics fixed (a preset's folded batch norm is only
    exact that way, and small batches estimate statistics badly);
    `class_mapping` ({preset class: dataset class}) initialises a
    classifier of other classes from the preset's
    (`kerasseg.pretrained.map_classifier`) instead of at random."""

    name: str = "deeplabv3plus"
    args: dict = dataclasses.field(
        default_factory=lambda: {
            "backbone": "mobilenetv2",
            "backbone_kwargs": {"alpha": 0.35, "include_last_conv": False},
            "aspp_filters": 64, "low_level_filters": 24, "decoder_filters": 64,
            "separable": "aspp",
        }
    )
    bn_momentum: float | None = None
    freeze_batch_norm: bool = False
    class_mapping: dict | None = None

    def check(self):
        check_type("model.name", self.name, str)
        check_type("model.args", self.args, dict)
        check_type("model.freeze_batch_norm", self.freeze_batch_norm, bool)
        if self.class_mapping is not None:
            check_type("model.class_mapping", self.class_mapping, dict)
            if not isinstance(self.args.get("weights"), str):
                raise ValueError("`model.class_mapping` maps a preset's classes: it needs "
                                 "`model.args.weights` to name the preset. Received: "
                                 f"model.args.weights={self.args.get('weights')!r}")
        if self.bn_momentum is not None:
            check_type("model.bn_momentum", self.bn_momentum, float)
            check_number("model.bn_momentum", self.bn_momentum, 0, 1, high_open=True)


@dataclasses.dataclass
class DataConfig:
    """Dataset and input pipeline.

    `dataset` "synthetic" draws scenes (`num_train_images`/`num_val_images`);
    the others read `root` with `kerasseg.data.load_dataset` ("folder":
    `root/<split>/images` + `root/<split>/masks`). `num_classes` None takes
    the dataset's own count. Training crops are `image_size`, after a random
    scale in `scale_range`; `resize` first resizes every image and mask of
    the splits to `image_size` (aspect not kept), as a fixed-input model such
    as a portrait model sees a photo (a split kept in memory as uint8 pixels
    when it fits in 2 GiB, `kerasseg.train.datasets.RESIZED_CACHE_BYTES`).
    `copy_paste` is the chance that a training example gets the `paste_class`
    pixels of another pasted on, at a height in `paste_scale` of its own, and
    `blur` the chance of a Gaussian blur: portrait augmentation. The keys
    named as fields of `kerasseg.data.Augmentation` make the training
    augmentation (`augmentation()`), which `augment: false` turns off.
    """

    dataset: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    num_classes: int | None = None
    image_size: tuple = (128, 128)
    batch_size: int = 8
    augment: bool = True
    scale_range: tuple = (0.5, 2.0)
    num_train_images: int | None = None
    num_val_images: int | None = None
    ignore_label: int = IGNORE_LABEL
    seed: int = 0
    resize: bool = False
    copy_paste: float = 0.0
    paste_scale: tuple = (0.5, 1.0)
    paste_class: int = 1
    blur: float = 0.0

    def check(self):
        check_choice("data.dataset", self.dataset, DATASETS)
        if self.dataset != "synthetic" and not self.root:
            raise ValueError(f"`data.root` is required when data.dataset={self.dataset!r}. "
                             "Received: data.root=None")
        if self.num_classes is not None:
            check_positive_int("data.num_classes", self.num_classes)
        self.image_size = _check_pair(
            "data.image_size", self.image_size, "[height, width], integers >= 32",
            lambda argument, v: check_positive_int(argument, v, 32))
        check_positive_int("data.batch_size", self.batch_size)
        for name in ("num_train_images", "num_val_images"):
            if getattr(self, name) is not None:
                check_positive_int(f"data.{name}", getattr(self, name))
        check_positive_int("data.ignore_label", self.ignore_label, 0)
        check_positive_int("data.seed", self.seed, 0)
        check_type("data.augment", self.augment, bool)
        check_type("data.resize", self.resize, bool)
        try:
            augmentation = self.augmentation()
        except ValueError as error:
            raise ValueError(f"data: {error}") from None
        self.scale_range, self.paste_scale = augmentation.scale_range, augmentation.paste_scale

    def augmentation(self):
        """The training `kerasseg.data.Augmentation` of these settings: every
        field of it that this section has (same name), the others its defaults."""
        names = {f.name for f in dataclasses.fields(Augmentation)}
        return Augmentation(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                               if f.name in names})


@dataclasses.dataclass
class OptimizerConfig:
    """SGD with momentum or AdamW, after a linear warmup of `warmup_steps`:
    `schedule` "poly" decays with `power` down to `end_learning_rate`, "step"
    multiplies by `decay_rate` at each fraction `decay_at` of the run."""

    name: str = "sgd"
    learning_rate: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    power: float = 0.9
    end_learning_rate: float = 0.0
    clipnorm: float | None = None
    schedule: str = "poly"
    decay_at: tuple = (2 / 3, 8 / 9)
    decay_rate: float = 0.1

    def check(self):
        check_choice("optimizer.name", self.name, OPTIMIZERS)
        check_number("optimizer.learning_rate", self.learning_rate, 0, low_open=True)
        for name in ("momentum", "weight_decay", "power", "end_learning_rate"):
            check_number(f"optimizer.{name}", getattr(self, name), 0)
        if self.clipnorm is not None:
            check_number("optimizer.clipnorm", self.clipnorm, 0, low_open=True)
        check_positive_int("optimizer.warmup_steps", self.warmup_steps, 0)
        check_choice("optimizer.schedule", self.schedule, SCHEDULES)
        fractions = self.decay_at
        try:
            check_type("optimizer.decay_at", fractions, (list, tuple))
            self.decay_at = tuple(
                float(check_number("optimizer.decay_at", v, 0, 1, True, True)) for v in fractions)
            if list(self.decay_at) != sorted(self.decay_at):
                raise ValueError
        except ValueError:
            raise ValueError("`optimizer.decay_at` must be increasing fractions of the run in "
                             f"(0, 1). Received: optimizer.decay_at={fractions!r}") from None
        check_number("optimizer.decay_rate", self.decay_rate, 0, 1, low_open=True)


@dataclasses.dataclass
class LossConfig:
    """`name`: a loss of `kerasseg.losses`; `args`: its keyword arguments.

    Panoptic models take "lpsnet", whose `args` are those of
    `kerasseg.panoptic.lpsnet_losses` (preset "coco", or "cityscapes" on
    Cityscapes, loss_weights, focal_alpha, focal_gamma, box_loss) and
    `size_ranges`, the FCOS object-size range of each box level P3..P7.

    `teacher` distils a teacher's soft outputs into the model: a `.keras`
    file, an exported `.tflite`/`.onnx` file or a preset
    (`kerasseg.train.distill`); the loss is then `teacher_weight` times the
    distillation loss plus `1 - teacher_weight` times the loss of `name`.
    A preset teacher's classes are summed into the dataset's by
    `teacher_class_mapping` ({preset class: dataset class}; for a one-class
    dataset, the preset classes that count as its foreground mapped to it).
    `teacher_image_size` [height, width] runs a `.keras` or preset teacher
    at that size (the batch resized to it, the targets back), such as the
    513x513 Google's VOC files were trained at; None runs it at the
    student's size. An exported teacher runs at its file's input size.
    """

    name: str = "cross_entropy"
    args: dict = dataclasses.field(default_factory=dict)
    teacher: str | None = None
    teacher_weight: float = 1.0
    teacher_class_mapping: dict | None = None
    teacher_image_size: tuple | None = None

    def check(self):
        check_type("loss.name", self.name, str)
        check_type("loss.args", self.args, dict)
        if self.teacher is not None:
            check_type("loss.teacher", self.teacher, str)
        check_number("loss.teacher_weight", self.teacher_weight, 0, 1)
        for name in ("teacher_class_mapping", "teacher_image_size"):
            if getattr(self, name) is not None and self.teacher is None:
                raise ValueError(f"`loss.{name}` describes the teacher: it needs `loss.teacher`. "
                                 "Received: loss.teacher=None")
        if self.teacher_class_mapping is not None:
            check_type("loss.teacher_class_mapping", self.teacher_class_mapping, dict)
        if self.teacher_image_size is not None:
            self.teacher_image_size = _check_pair(
                "loss.teacher_image_size", self.teacher_image_size,
                "[height, width], integers >= 1", check_positive_int)


@dataclasses.dataclass
class TrainingConfig:
    """Loop, checkpointing and devices.

    `steps_per_epoch` None is one pass over the training split.
    `checkpoint_every` is in steps: a killed run loses at most that many.
    `validate`: evaluate the validation split after every epoch.
    `strategy`/`precision`: see `kerasseg.train.strategy`.
    """

    epochs: int = 10
    steps_per_epoch: int | None = None
    checkpoint_every: int = 50
    validate: bool = True
    output_dir: str = "runs/train"
    strategy: str = "auto"
    precision: str = "auto"
    seed: int = 0
    verbose: int = 1

    def check(self):
        check_positive_int("training.epochs", self.epochs)
        if self.steps_per_epoch is not None:
            check_positive_int("training.steps_per_epoch", self.steps_per_epoch)
        check_positive_int("training.checkpoint_every", self.checkpoint_every)
        check_type("training.validate", self.validate, bool)
        check_type("training.output_dir", self.output_dir, str)
        check_choice("training.strategy", self.strategy, STRATEGIES)
        check_choice("training.precision", self.precision, PRECISIONS)
        check_positive_int("training.seed", self.seed, 0)
        check_positive_int("training.verbose", self.verbose, 0)


_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optimizer": OptimizerConfig,
    "loss": LossConfig,
    "training": TrainingConfig,
}


@dataclasses.dataclass
class Config:
    """A full training configuration (see the module docstring)."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def __post_init__(self):
        self.validate()

    @property
    def task(self):
        """The task name ("semantic", "panoptic", "binary"), from the model and data."""
        return config_task_name(self.model.name, self.data.dataset, self.data.num_classes)

    @classmethod
    def from_dict(cls, values, source="config"):
        """Builds a Config from nested dicts; `source` names the origin in errors.

        The values given are kept (`given_values`), so that `replace` can
        resolve the defaults again from what the user wrote.
        """
        if values is None:
            values = {}
        if not isinstance(values, dict):
            # reprlib: a file that is not a config (`--config /etc/passwd`) is not echoed.
            raise ValueError(f"{source}: expected a mapping of sections. Received: "
                             f"{type(values).__name__} {reprlib.repr(values)}")
        _check_keys(source, values, _SECTIONS)
        given = {}
        for name, section_cls in _SECTIONS.items():
            section = values.get(name) or {}
            if not isinstance(section, dict):
                raise ValueError(f"{source}: section `{name}` must be a mapping. Received: "
                                 f"{section!r}")
            fields = {f.name for f in dataclasses.fields(section_cls)}
            _check_keys(f"{source}: section `{name}`", section, fields)
            given[name] = copy.deepcopy(section)
        sections = _resolve_defaults(given)
        try:
            config = cls(**{name: _SECTIONS[name](**section) for name, section in sections.items()})
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        config._given = given
        return config

    @classmethod
    def load(cls, path):
        """Reads a `.yaml`/`.yml` or `.json` file."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Config file not found: {path}"
                                    + (" (a directory)" if os.path.isdir(path) else ""))
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
            values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a YAML or JSON config (not UTF-8 text)") from None
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot parse config ({error})") from None
        return cls.from_dict(values, source=path)

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["data"]["image_size"] = list(self.data.image_size)
        values["data"]["scale_range"] = list(self.data.scale_range)
        values["data"]["paste_scale"] = list(self.data.paste_scale)
        values["optimizer"]["decay_at"] = list(self.optimizer.decay_at)
        if self.loss.teacher_image_size is not None:
            values["loss"]["teacher_image_size"] = list(self.loss.teacher_image_size)
        return values

    def given_values(self):
        """The values the user gave, by section (a copy): those `from_dict`
        received, or, for a Config built from its sections, every value that
        differs from the field's default."""
        given = getattr(self, "_given", None)
        if given is None:
            defaults = Config.__new__(Config)
            for name, section_cls in _SECTIONS.items():
                setattr(defaults, name, section_cls())
            default_values, values = defaults.to_dict(), self.to_dict()
            given = {name: {key: value for key, value in section.items()
                            if value != default_values[name][key]}
                     for name, section in values.items()}
        return copy.deepcopy(given)

    def replace(self, **sections):
        """A copy with some fields changed: `config.replace(training={"epochs": 2})`.

        The changes apply to the values the user gave, and the defaults are
        resolved again as `from_dict` does: a new `model.name` without
        `model.args` starts from that builder's own defaults, and the task's
        defaults (panoptic, binary) follow the new model and data.
        """
        values = self.given_values()
        for name, changes in sections.items():
            _check_keys("replace()", {name: None}, _SECTIONS)
            if not isinstance(changes, dict):
                raise ValueError(f"replace(): section `{name}` must be a mapping. Received: "
                                 f"{changes!r}")
            if name == "model" and "name" in changes and "args" not in changes:
                values[name].pop("args", None)  # the arguments were the old model's
            values[name].update(copy.deepcopy(changes))
        return Config.from_dict(values, source="replace()")

    def save(self, directory):
        """Writes `directory/config.yaml`; returns its path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "config.yaml")
        with open(path, "w") as file:
            yaml.safe_dump(self.to_dict(), file, sort_keys=False)
        return path

    def validate(self):
        """Validates every section, then what the task requires of them."""
        for section in (self.model, self.data, self.optimizer, self.loss, self.training):
            section.check()
        TASKS[self.task].check(self)


def as_config(config):
    """`config` as a `Config`: a Config, a dict of sections or a YAML/JSON path."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config.from_dict(config)
    return Config.load(config)


def _resolve_defaults(given):
    """The sections to build from the values given: the default model's args
    only for the default model, and the task's defaults under what was given."""
    sections = copy.deepcopy(given)
    model, data = sections["model"], sections["data"]
    name = model.get("name", ModelConfig.name)
    if name != ModelConfig.name:
        model.setdefault("args", {})  # the default args are the default model's
    if isinstance(name, str):
        task = config_task_name(name, data.get("dataset", DataConfig.dataset),
                                data.get("num_classes"))
        for section, defaults in TASKS[task].defaults.items():
            sections[section] = {**defaults, **sections[section]}
    return sections


def _check_pair(argument, value, expected, check_item):
    """A 2-element list/tuple whose items pass `check_item(argument, item)` (a
    `check_*` helper returning the item), as a tuple."""
    try:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError
        return tuple(check_item(argument, v) for v in value)
    except ValueError:
        raise ValueError(f"`{argument}` must be {expected}. Received: {argument}={value!r}") \
            from None


def _check_keys(where, values, valid):
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}. "
                         f"Valid keys: {', '.join(map(repr, valid))}")
