"""Training and evaluation on Keras `fit`: `train(config)` and `evaluate(model, dataset)`.

One module per concern: `loop` (`train`), `config` (`Config`, one dataclass
per section), `tasks` (what differs between semantic and panoptic training),
`datasets` (splits, the training stream), `model` (building the model,
precise BN), `optimizers`, `callbacks`, `strategy` (devices and precision)
and `evaluate`. This package only re-exports them.

Example:
    >>> from kerasseg.train import Config, train
    >>> config = Config.from_dict({"training": {"epochs": 2, "output_dir": "runs/demo"}})
    >>> result = train(config)
    >>> result.history["val_mean_iou"][-1]
"""

from kerasseg.schedules import PolyDecay, StepDecay
from kerasseg.train.config import Config
from kerasseg.train.datasets import resolve_num_classes
from kerasseg.train.evaluate import evaluate
from kerasseg.train.loop import TrainResult, train
from kerasseg.train.model import batch_norm_layers, build_model, recompute_batch_norm
from kerasseg.train.tasks import TASKS, load_split, split_dataset

__all__ = [
    "TASKS", "Config", "PolyDecay", "StepDecay", "TrainResult", "batch_norm_layers",
    "build_model", "evaluate", "load_split", "recompute_batch_norm", "resolve_num_classes",
    "split_dataset", "train",
]
