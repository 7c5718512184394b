"""Callbacks of the training loop: step-level backup for resume, JSON metrics log."""

import json
import os
import shutil

import keras


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
        """Loads the backup into `model` (compiled); returns the restored step, 0 if none."""
        if not os.path.exists(self.path):
            return 0
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.path)
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
