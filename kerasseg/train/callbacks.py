"""Callbacks of the training loop: step-level backup for resume, the JSON metrics
log, the learning rate in the logs, and panoptic validation."""

import json
import os
import shutil
import warnings

import keras

from kerasseg.panoptic.evaluate import evaluate_panoptic
from kerasseg.panoptic.targets import LABEL_DIVISOR
from kerasseg.utils import KerassegError


class StepBackup(keras.callbacks.Callback):
    """Saves weights and optimizer state every `every` steps, for resume.

    Works like `keras.callbacks.BackupAndRestore(save_freq=every)` but resumes
    *inside* an epoch: the optimizer's step counter is saved with the weights,
    and `kerasseg.train.train` restarts from exactly that step. (Keras'
    callback restarts an interrupted epoch from its first batch, and a resumed
    run records epoch 0 in its metadata until its first epoch ends, so a second
    kill sends it back to the start.) The file is replaced atomically, so a kill
    while writing leaves the previous backup intact.

    Args:
        directory: Folder of the backup, `latest.weights.h5` inside.
        every: Save every this many optimizer steps.
    """

    def __init__(self, directory, every):
        super().__init__()
        self.directory = os.fspath(directory)
        self.every = int(every)
        self.path = os.path.join(self.directory, "latest.weights.h5")

    def restore(self, model):
        """Loads the backup into `model` (compiled); returns the restored step, 0 if none.

        Raises:
            KerassegError: the backup was saved from another model (one line,
                instead of Keras' warning per layer and error).
        """
        if not os.path.exists(self.path):
            return 0
        model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.load_weights(self.path)
                cause = None
            except (ValueError, OSError) as error:
                cause = str(error).splitlines()[0]
        # Keras leaves layers it finds no weights for as initialised, with a warning.
        skipped = [w for w in caught if "Skipping" in str(w.message)]
        for warning in caught:
            if warning not in skipped:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
        if cause or skipped:
            raise KerassegError(
                f"{self.directory}/ does not fit the model of this config (it was saved from "
                f"another model: {cause or str(skipped[0].message).splitlines()[0]}). Start "
                "afresh with --overwrite (train(config, overwrite=True)), or train into "
                "another --output-dir.")
        return int(model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        self._step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every == 0:
            self.save()

    def save(self):
        os.makedirs(self.directory, exist_ok=True)
        partial = os.path.join(self.directory, "partial.weights.h5")
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, self.path)

    def clear(self):
        shutil.rmtree(self.directory, ignore_errors=True)


class JSONLogger(keras.callbacks.Callback):
    """Appends each epoch's logs to a JSON list in `path` (kept across resumes)."""

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        records = []
        if os.path.exists(self.path):
            with open(self.path) as file:
                records = json.load(file)
        records = [r for r in records if r["epoch"] < epoch + 1]
        records.append({"epoch": epoch + 1, **{k: _to_float(v) for k, v in (logs or {}).items()}})
        with open(self.path, "w") as file:
            json.dump(records, file, indent=1)


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the current learning rate to each epoch's logs (for CSV, JSON, TensorBoard)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


class PanopticValidation(keras.callbacks.Callback):
    """Scores the panoptic head on a validation split after every epoch.

    Adds "val_pq", "val_sq", "val_rq", "val_pq_things", "val_pq_stuff" and
    "val_mean_iou" (semantic output) to the epoch's logs, for the callbacks
    after it (checkpoints, CSV, TensorBoard). `kerasseg.train.train` uses it
    for panoptic models.

    Args:
        dataset: unbatched (image, panoptic id map) pairs.
        num_classes: number of categories.
        thing_classes: thing category ids, in the class head's order.
        label_divisor: panoptic id divisor.
        **merge_options: overrides of `kerasseg.panoptic.MERGE_DEFAULTS`.
    """

    KEYS = ("pq", "sq", "rq", "pq_things", "pq_stuff")

    def __init__(self, dataset, num_classes, thing_classes, label_divisor=LABEL_DIVISOR,
                 **merge_options):
        super().__init__()
        self.dataset = dataset
        self.num_classes = num_classes
        self.thing_classes = tuple(thing_classes)
        self.label_divisor = label_divisor
        self.merge_options = merge_options

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        result = evaluate_panoptic(self.model, self.dataset, self.num_classes,
                                   self.thing_classes, self.label_divisor, **self.merge_options)
        logs.update({f"val_{key}": result[key] for key in self.KEYS})
        logs["val_mean_iou"] = result["semantic"]["mean_iou"]


class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that saves `model`, the functional
    model a run trains, when `fit` runs a wrapper on its layers (a
    `DistilledModel`, a `PerWorkerLogs`): `best.keras` loads as the plain model."""

    def __init__(self, model, filepath, **kwargs):
        super().__init__(filepath, **kwargs)
        self._saved_model = model

    def set_model(self, model):
        super().set_model(self._saved_model)
