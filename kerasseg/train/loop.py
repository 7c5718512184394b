"""`train(config)`: one training loop, on Keras `fit`, for every task.

`train` does everything a run needs, driven by a `Config`:

- picks the strategy (`kerasseg.train.strategy`): MirroredStrategy over local
  GPUs, MultiWorkerMirroredStrategy from `TF_CONFIG`, the default on CPU; sync
  BN when replicas > 1; `mixed_float16` on a GPU;
- SGD with momentum or AdamW, decoupled weight decay (not on biases and BN),
  poly or step learning rate after a linear warmup (`kerasseg.train.optimizers`);
- writes into `training.output_dir`: `config.yaml` (resolved config),
  `backup/` (resume state every `checkpoint_every` steps), `logs/`
  (TensorBoard), `metrics.csv` and `metrics.json` (one row per epoch),
  `best.keras` (best validation score, when validating every epoch) and
  `model.keras` (final model);
- resumes a killed run from its last backup, inside the epoch it was in.

What differs between semantic and panoptic training (data, targets, loss,
metrics, validation, the score `best.keras` keeps) is the task's
(`kerasseg.train.tasks`); this loop only consults it.

Example:
    >>> from kerasseg.train import Config, train
    >>> config = Config.from_dict({"training": {"epochs": 2, "output_dir": "runs/demo"}})
    >>> result = train(config)
    >>> result.history["val_mean_iou"][-1]
"""

import dataclasses
import importlib.util
import os
import shutil
import sys
import warnings

import keras
import tensorflow as tf

from kerasseg.train.callbacks import (
    BestModelCheckpoint,
    JSONLogger,
    LearningRateLogger,
    StepBackup,
)
from kerasseg.train.config import as_config
from kerasseg.train.datasets import training_stream
from kerasseg.train.model import build_model
from kerasseg.train.optimizers import build_optimizer
from kerasseg.train.rundir import PreviousRun, plan_run, run_lock
from kerasseg.train.strategy import (
    PerWorkerLogs,
    choose_strategy,
    is_chief,
    set_precision,
    worker_index,
)
from kerasseg.train.tasks import TASKS


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: The trained functional model (the one saved as `model.keras`).
        history: Dict of per-epoch lists, as `keras.callbacks.History`, over
            the epochs run by this call.
        run_dir: The run directory.
        initial_step: Optimizer step the run started from (> 0 when resumed).
        steps_per_epoch: Steps in one epoch.
        strategy: The `tf.distribute.Strategy` it trained under.
    """

    model: keras.Model
    history: dict
    run_dir: str
    initial_step: int
    steps_per_epoch: int
    strategy: tf.distribute.Strategy


def train(config, callbacks=(), overwrite=False):
    """Trains the model described by `config`; resumes if the run dir has a backup.

    The run directory is owned by one run at a time (`kerasseg.train.rundir`):
    a run into a directory another live run holds is refused; a directory
    holding the same config's unfinished run resumes it; one holding a
    finished run, or another config's, is refused unless `overwrite`, and its
    files are deleted only once the new run has passed its first batch.

    Args:
        config: A `Config`, a dict of sections, or the path of a YAML/JSON file.
        callbacks: Extra Keras callbacks.
        overwrite: Replace whatever run the directory holds.

    Returns:
        A `TrainResult`.
    """
    config = as_config(config)
    keras.utils.set_random_seed(config.training.seed)
    strategy = choose_strategy(config.training.strategy)
    previous_policy = keras.config.dtype_policy()
    set_precision(config.training.precision)
    try:
        if not is_chief(strategy):  # the chief owns the directory; workers resume their own
            return _run(config, strategy, callbacks, plan="resume")
        with run_lock(config.training.output_dir):
            return _run(config, strategy, callbacks, plan_run(config, overwrite))
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _run(config, strategy, callbacks, plan):
    task, training = TASKS[config.task], config.training
    chief, run_dir = is_chief(strategy), training.output_dir
    # Every worker saves (saving reads distributed variables: a collective op),
    # but only the chief into the run directory; the others into a scratch folder.
    save_dir = run_dir if chief else os.path.join(run_dir, f".worker{worker_index(strategy)}")
    data = task.split(config, config.data.train_split)
    steps_per_epoch = _steps_per_epoch(config, data.dataset, strategy.num_replicas_in_sync)
    total_steps = steps_per_epoch * training.epochs
    validation_data, validation_callbacks = (
        task.validation(config, data) if training.validate else (None, []))
    with strategy.scope():
        model = build_model(config, data.num_classes,
                            synchronized_bn=strategy.num_replicas_in_sync > 1,
                            **task.builder_args(data))
    trainee = _trainee(model, strategy, config)
    with strategy.scope():
        loss, loss_weights = task.loss(config)
        # A teacher run by kerasseg.runtime is a numpy function: XLA cannot compile it.
        jit = False if getattr(trainee, "uses_runtime_teacher", False) else "auto"
        trainee.compile(optimizer=build_optimizer(config.optimizer, total_steps), loss=loss,
                        loss_weights=loss_weights, metrics=task.metrics(config, data),
                        jit_compile=jit)
        if isinstance(trainee, PerWorkerLogs):
            trainee.distribute_reduction_method = "first"
        backup = StepBackup(os.path.join(save_dir, "backup"), training.checkpoint_every)
        initial_step = _restore(backup, trainee, total_steps) if plan == "resume" else 0
        previous = PreviousRun(save_dir)  # a worker's scratch folder has no old run
        if chief:
            _prepare_run_dir(config, plan, previous, initial_step)
        run_callbacks = [previous, backup, LearningRateLogger(), *callbacks,
                         *validation_callbacks,
                         *_checkpoint_and_logs(config, task, model, save_dir, chief)]
        try:
            history = _fit(trainee, config, task, data, validation_data, run_callbacks,
                           initial_step=initial_step, steps_per_epoch=steps_per_epoch,
                           verbose=training.verbose if chief else 0)
        except BaseException:
            previous.put_back()  # the new run failed before its first batch passed
            raise
        model.save(os.path.join(save_dir, "model.keras"))
    backup.clear()
    if not chief:
        shutil.rmtree(save_dir, ignore_errors=True)
    return TrainResult(model, history, run_dir, initial_step, steps_per_epoch, strategy)


def _steps_per_epoch(config, dataset, replicas):
    """Steps of one epoch, after checking the batch and the split's size."""
    data, training = config.data, config.training
    if data.batch_size % replicas:
        raise ValueError(
            f"`data.batch_size` must be a multiple of the number of replicas ({replicas}). "
            f"Received: data.batch_size={data.batch_size}"
        )
    count = int(dataset.cardinality())
    if count == 0 or (count < 0 and training.steps_per_epoch is None):
        raise ValueError(
            f"The {data.dataset!r} split {data.train_split!r} has "
            f"{'no examples' if count == 0 else 'an unknown size'}; "
            + ("check data.root." if count == 0 else "set training.steps_per_epoch.")
        )
    return training.steps_per_epoch or max(1, count // data.batch_size)


def _trainee(model, strategy, config):
    """The model `fit` runs: `model` itself; with `loss.teacher` a
    `DistilledModel` on the same layers; under MultiWorkerMirroredStrategy
    a `PerWorkerLogs` on the same layers, built outside the scope (see there)."""
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if config.loss.teacher is not None:
        if multi_worker:
            raise ValueError("`loss.teacher` (distillation) trains on one machine, not under "
                             "MultiWorkerMirroredStrategy")
        return _distilled(model, strategy, config)
    if not multi_worker:
        return model
    outputs = model.output if isinstance(model.output, dict) else model.outputs
    return PerWorkerLogs(model.inputs, outputs, name=model.name)


def _distilled(model, strategy, config):
    """`model` trained on the soft outputs of `loss.teacher` (`kerasseg.train.distill`)."""
    from kerasseg.data.readers import SOURCES
    from kerasseg.train.distill import RUNTIME_EXTENSIONS, distilled, teacher_probabilities

    source = SOURCES.get(config.data.dataset)
    with strategy.scope():
        targets = teacher_probabilities(
            config.loss.teacher, model.output_shape[-1],
            class_names=source.classes if source else None,
            class_mapping=config.loss.teacher_class_mapping,
            image_size=config.loss.teacher_image_size)
    runtime = config.loss.teacher.lower().endswith(RUNTIME_EXTENSIONS)
    return distilled(model, targets, config.loss.teacher_weight, compiled=not runtime)


def _restore(backup, trainee, total_steps):
    """The step the backup restores (0 without one); refuses a finished run's."""
    initial_step = backup.restore(trainee)
    if initial_step >= total_steps:
        raise ValueError(
            f"{backup.path} is at step {initial_step}, past the {total_steps} steps this "
            "config trains for. Remove it, or raise training.epochs."
        )
    return initial_step


def _prepare_run_dir(config, plan, previous, initial_step):
    """Says what the run does with its directory, moves an old run aside (none
    for a fresh one: then a run that fails at its first batch leaves no files
    behind either), and writes the resolved config."""
    run_dir = config.training.output_dir
    if plan == "resume":
        print(f"Resuming the run in {run_dir} at step {initial_step} from backup/ "
              "(same config).", file=sys.stderr)
    else:
        previous.stash()
    config.save(run_dir)


def _checkpoint_and_logs(config, task, model, save_dir, chief):
    """`best.keras` (of `model`, not of the trainee wrapping it) on the task's
    validation score; the chief's CSV, JSON and TensorBoard logs."""
    found = []
    if config.training.validate:
        found.append(BestModelCheckpoint(
            model, os.path.join(save_dir, "best.keras"), monitor=task.monitor, mode="max",
            save_best_only=True))
    if not chief:
        return found
    run_dir = config.training.output_dir
    found += [keras.callbacks.CSVLogger(os.path.join(run_dir, "metrics.csv"), append=True),
              JSONLogger(os.path.join(run_dir, "metrics.json"))]
    if importlib.util.find_spec("tensorboard") is not None:
        found.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
    else:
        warnings.warn("TensorBoard is not installed: no TensorBoard logs. "
                      "pip install 'tensorboard>=2.20,<3'", stacklevel=3)
    return found


def epoch_plan(initial_step, steps_per_epoch, epochs):
    """[(first_epoch, end_epoch, steps_per_epoch)] `fit` calls that finish the run.

    A run killed mid-epoch first finishes the remaining steps of that epoch.
    """
    epoch, done = divmod(initial_step, steps_per_epoch)
    plan = [(epoch, epoch + 1, steps_per_epoch - done)] if done else []
    epoch += bool(done)
    if epoch < epochs:
        plan.append((epoch, epochs, steps_per_epoch))
    return plan


def _fit(trainee, config, task, data, validation_data, callbacks, *, initial_step,
         steps_per_epoch, verbose):
    """Runs the `fit` calls of `epoch_plan`; returns their merged history."""
    seed, epochs = config.training.seed, config.training.epochs
    total_steps, step, history = steps_per_epoch * epochs, initial_step, {}
    for first_epoch, end_epoch, steps in epoch_plan(initial_step, steps_per_epoch, epochs):
        # The data stream restarts with each fit: a new seed, so no repeats.
        stream = training_stream(data.dataset, config, seed + step, total_steps - step,
                                 task.pad_label(config), task.targets(config, data))
        fit = trainee.fit(stream, epochs=end_epoch, initial_epoch=first_epoch,
                          steps_per_epoch=steps, validation_data=validation_data,
                          callbacks=callbacks, verbose=verbose,
                          shuffle=False)  # the stream is shuffled (with a seed) already
        step += steps * (end_epoch - first_epoch)
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(values)
        if trainee.stop_training:  # a callback ended the run early
            break
    return history
