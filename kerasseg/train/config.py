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

`Config.save(run_dir)` writes the resolved values (defaults filled in) to
`run_dir/config.yaml`, so every run records exactly what it ran.

The task follows from the model (`Config.task`): a builder with a
`thing_classes` argument (`lpsnet`) is panoptic, every other one semantic.
A panoptic config reads panoptic ground truth ("synthetic", "coco_panoptic",
"cityscapes") and its unset keys take the paper's recipe
(`PANOPTIC_DEFAULTS`: LPSNet's multi-task loss, SGD 0.01 with step decay):

```yaml
model: {name: lpsnet, args: {backbone: mobilenetv2, backbone_kwargs: {alpha: 0.35},
                             fpn_filters: 64, semantic_filters: 32, head_convs: 2}}
data: {dataset: synthetic, image_size: [128, 128], batch_size: 8}
loss: {name: lpsnet, args: {preset: coco, size_ranges: [[0, 32], [32, 64], [64, 128],
                                                        [128, 256], [256, .inf]]}}
```
"""

import dataclasses
import json
import os

import yaml

from kerasseg.utils import check_choice

# "synthetic" plus the readers of `kerasseg.data.readers.DATASETS`.
DATASETS = ("synthetic", "voc", "cityscapes", "ade20k", "coco_panoptic", "folder", "camvid",
            "binary", "people")
PANOPTIC_DATASETS = ("synthetic", "coco_panoptic", "cityscapes")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "step")
TASKS = ("semantic", "panoptic")
# Unset keys of a panoptic config: LPSNet's paper recipe (SGD, lr 0.01 for a
# batch of 16, momentum 0.9, weight decay 1e-4, x0.1 at 2/3 and 8/9 of the run)
# and its multi-task loss (`kerasseg.panoptic.lpsnet_losses`).
PANOPTIC_DEFAULTS = {
    "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                  "schedule": "step"},
    "loss": {"name": "lpsnet"},
}


def model_task(name):
    """"panoptic" if the builder `name` takes `thing_classes`, else "semantic".

    Args:
        name: a kerasseg builder name or "package.module:function"; a name that
            does not resolve counts as semantic (building it fails later, with
            the error of `kerasseg.train.build_model`).
    """
    import importlib
    import inspect

    module_name, _, attribute = name.rpartition(":") if ":" in name else ("kerasseg", "", name)
    try:
        builder = getattr(importlib.import_module(module_name), attribute)
        parameters = inspect.signature(builder).parameters
    except (AttributeError, ImportError, TypeError, ValueError):
        return "semantic"
    return "panoptic" if "thing_classes" in parameters else "semantic"


@dataclasses.dataclass
class ModelConfig:
    """`name`: a kerasseg builder (`kerasseg.<name>`) or "package.module:function";
    `args`: its keyword arguments. `bn_momentum` overrides the momentum of every
    BatchNormalization layer (None keeps the builder's): the 0.999 of
    `keras.applications` backbones, right for fine-tuning, leaves the moving
    statistics near their initial values for the first thousand steps of a
    short run from scratch, so validation would score a broken model; 0.9 suits
    such runs."""

    name: str = "deeplabv3plus"
    args: dict = dataclasses.field(
        default_factory=lambda: {
            "backbone": "mobilenetv2", "backbone_kwargs": {"alpha": 0.35}, "aspp_filters": 64,
            "low_level_filters": 24, "decoder_filters": 64,
        }
    )
    bn_momentum: float | None = None


@dataclasses.dataclass
class DataConfig:
    """Dataset and input pipeline.

    `dataset` "synthetic" draws scenes (`num_train_images`/`num_val_images`);
    the others read `root` with `kerasseg.data.load_dataset` ("folder":
    `root/<split>/images` + `root/<split>/masks`). `num_classes` None takes
    the dataset's own count. Training crops are `image_size`, after a random
    scale in `scale_range`.
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
    ignore_label: int = 255
    seed: int = 0


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


@dataclasses.dataclass
class LossConfig:
    """`name`: a loss of `kerasseg.losses`; `args`: its keyword arguments.

    Panoptic models take "lpsnet", whose `args` are those of
    `kerasseg.panoptic.lpsnet_losses` (preset "coco", or "cityscapes" on
    Cityscapes, loss_weights, focal_alpha, focal_gamma, box_loss) and
    `size_ranges`, the FCOS object-size range of each box level P3..P7.
    """

    name: str = "cross_entropy"
    args: dict = dataclasses.field(default_factory=dict)


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
        """"semantic" or "panoptic", from the model (see `model_task`)."""
        return model_task(self.model.name)

    @classmethod
    def from_dict(cls, values, source="config"):
        """Builds a Config from nested dicts; `source` names the origin in errors."""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a mapping of sections. Received: {values!r}")
        _check_keys(source, values, _SECTIONS)
        sections = {}
        for name, section_cls in _SECTIONS.items():
            section = values.get(name) or {}
            if not isinstance(section, dict):
                raise ValueError(f"{source}: section `{name}` must be a mapping. Received: "
                                 f"{section!r}")
            fields = {f.name for f in dataclasses.fields(section_cls)}
            _check_keys(f"{source}: section `{name}`", section, fields)
            sections[name] = section
        model = sections["model"]
        if model.get("name", ModelConfig.name) != ModelConfig.name:
            # The default args are the default model's: another model starts from none.
            model.setdefault("args", {})
            if isinstance(model["name"], str) and model_task(model["name"]) == "panoptic":
                for name, defaults in PANOPTIC_DEFAULTS.items():
                    sections[name] = {**defaults, **sections[name]}
        sections = {name: _SECTIONS[name](**section) for name, section in sections.items()}
        try:
            return cls(**sections)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None

    @classmethod
    def load(cls, path):
        """Reads a `.yaml`/`.yml` or `.json` file."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Config file not found: {path}")
        with open(path) as file:
            text = file.read()
        try:
            values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot parse config ({error})") from None
        return cls.from_dict(values, source=path)

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["data"]["image_size"] = list(self.data.image_size)
        values["data"]["scale_range"] = list(self.data.scale_range)
        values["optimizer"]["decay_at"] = list(self.optimizer.decay_at)
        return values

    def replace(self, **sections):
        """A copy with some fields changed: `config.replace(training={"epochs": 2})`."""
        values = self.to_dict()
        for name, changes in sections.items():
            _check_keys("replace()", {name: None}, _SECTIONS)
            values[name].update(changes)
        return Config.from_dict(values, source="replace()")

    def save(self, directory):
        """Writes `directory/config.yaml`; returns its path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "config.yaml")
        with open(path, "w") as file:
            yaml.safe_dump(self.to_dict(), file, sort_keys=False)
        return path

    def validate(self):
        model, data, optimizer, loss, training = (
            self.model, self.data, self.optimizer, self.loss, self.training
        )
        _check_type("model.name", model.name, str)
        _check_type("model.args", model.args, dict)
        if model.bn_momentum is not None and (
                isinstance(model.bn_momentum, bool) or not isinstance(model.bn_momentum, float)
                or not 0 <= model.bn_momentum < 1):
            raise ValueError("`model.bn_momentum` must be None or a float in [0, 1). "
                             f"Received: model.bn_momentum={model.bn_momentum!r}")
        check_choice("data.dataset", data.dataset, DATASETS)
        if data.dataset != "synthetic" and not data.root:
            raise ValueError(f"`data.root` is required when data.dataset={data.dataset!r}. "
                             "Received: data.root=None")
        if data.num_classes is not None:
            _check_int("data.num_classes", data.num_classes, 2)
        size = data.image_size
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 32
                           for v in size)):
            raise ValueError("`data.image_size` must be [height, width], integers >= 32. "
                             f"Received: data.image_size={size!r}")
        data.image_size = tuple(size)
        scales = data.scale_range
        if (not isinstance(scales, (list, tuple)) or len(scales) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in scales) or not 0 < scales[0] <= scales[1]):
            raise ValueError("`data.scale_range` must be [min, max] with 0 < min <= max. "
                             f"Received: data.scale_range={scales!r}")
        data.scale_range = tuple(float(v) for v in scales)
        _check_int("data.batch_size", data.batch_size, 1)
        for name in ("num_train_images", "num_val_images"):
            if getattr(data, name) is not None:
                _check_int(f"data.{name}", getattr(data, name), 1)
        _check_int("data.ignore_label", data.ignore_label, 0)
        _check_int("data.seed", data.seed, 0)
        _check_type("data.augment", data.augment, bool)
        check_choice("optimizer.name", optimizer.name, OPTIMIZERS)
        for name in ("learning_rate", "momentum", "weight_decay", "power", "end_learning_rate"):
            value = getattr(optimizer, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`optimizer.{name}` must be a number >= 0. "
                                 f"Received: optimizer.{name}={value!r}")
        if optimizer.learning_rate <= 0:
            raise ValueError("`optimizer.learning_rate` must be > 0. "
                             f"Received: optimizer.learning_rate={optimizer.learning_rate!r}")
        _check_int("optimizer.warmup_steps", optimizer.warmup_steps, 0)
        check_choice("optimizer.schedule", optimizer.schedule, SCHEDULES)
        fractions = optimizer.decay_at
        if (not isinstance(fractions, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
                for v in fractions) or list(fractions) != sorted(fractions)):
            raise ValueError("`optimizer.decay_at` must be increasing fractions of the run in "
                             f"(0, 1). Received: optimizer.decay_at={fractions!r}")
        optimizer.decay_at = tuple(float(v) for v in fractions)
        if isinstance(optimizer.decay_rate, bool) or not isinstance(
                optimizer.decay_rate, (int, float)) or not 0 < optimizer.decay_rate <= 1:
            raise ValueError("`optimizer.decay_rate` must be a number in (0, 1]. "
                             f"Received: optimizer.decay_rate={optimizer.decay_rate!r}")
        _check_type("loss.name", loss.name, str)
        _check_type("loss.args", loss.args, dict)
        if self.task == "panoptic":
            check_choice("data.dataset", data.dataset, PANOPTIC_DATASETS)
            if loss.name != "lpsnet":
                raise ValueError("A panoptic model trains with `loss.name` 'lpsnet'. "
                                 f"Received: loss.name={loss.name!r}")
            ranges = loss.args.get("size_ranges")
            if ranges is not None and (
                    not isinstance(ranges, (list, tuple)) or len(ranges) != 5
                    or not all(isinstance(r, (list, tuple)) and len(r) == 2 and 0 <= r[0] < r[1]
                               for r in ranges)):
                raise ValueError("`loss.args.size_ranges` must be 5 [low, high] pixel ranges, "
                                 f"one per box level P3..P7. Received: {ranges!r}")
        _check_int("training.epochs", training.epochs, 1)
        if training.steps_per_epoch is not None:
            _check_int("training.steps_per_epoch", training.steps_per_epoch, 1)
        _check_int("training.checkpoint_every", training.checkpoint_every, 1)
        _check_type("training.validate", training.validate, bool)
        _check_type("training.output_dir", training.output_dir, str)
        from kerasseg.train.strategy import PRECISIONS, STRATEGIES

        check_choice("training.strategy", training.strategy, STRATEGIES)
        check_choice("training.precision", training.precision, PRECISIONS)
        _check_int("training.seed", training.seed, 0)
        _check_int("training.verbose", training.verbose, 0)


def _check_keys(where, values, valid):
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}. "
                         f"Valid keys: {', '.join(map(repr, valid))}")


def _check_type(name, value, expected):
    if not isinstance(value, expected):
        raise ValueError(f"`{name}` must be of type {expected.__name__}. "
                         f"Received: {name}={value!r}")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
