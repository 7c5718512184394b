"""The run directory: owned by one run at a time, never lost to a rerun.

`run_lock(run_dir)` holds `run_dir/train.lock` (an advisory `flock`, with the
owner's pid and host written inside) while a run trains: a second run into
the same directory is refused in one line naming the owner, and the lock of a
process that died (SIGKILL leaves the file behind; the kernel drops the lock)
is taken over with a message.

`plan_run(config, overwrite)` decides what a run does with what is there
already: nothing there, a fresh run; the same config's unfinished run (a
`backup/`), resume it; the same config's run that stopped before its first
backup, start it again; anything else (a finished run, another config's
run) is refused with the options (`--overwrite`, another `--output-dir`).
A run that replaces an old one first moves the old files aside
(`PreviousRun`), and deletes them only once its first batch has passed: a
config that fails at its first batch leaves the old run as it was.
"""

import contextlib
import fcntl
import os
import shutil
import socket
import sys

import keras
import yaml

from kerasseg.utils import KerassegError

LOCK_NAME = "train.lock"
# What a run writes into its directory (see kerasseg.train.loop).
RUN_FILES = ("config.yaml", "backup", "logs", "metrics.csv", "metrics.json", "best.keras",
             "model.keras")
PREVIOUS_NAME = ".previous_run"
# Keys that may differ between a run and its resumption: where it is, how much
# it prints, and how long it trains (raise epochs to train a run further).
RESUMABLE_CHANGES = ("training.output_dir", "training.verbose", "training.epochs")


@contextlib.contextmanager
def run_lock(run_dir):
    """Holds `run_dir`'s lock while the block runs; raises KerassegError if another
    live run holds it."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_NAME)
    descriptor = _locked_descriptor(path, run_dir)
    try:
        owner = os.read(descriptor, 1024).decode(errors="replace").strip()
        if owner and not owner.endswith(f" on {socket.gethostname()}"):
            # Locks do not reach across machines: that run may be alive.
            raise KerassegError(f"{run_dir} is locked by {owner} ({path}): that machine's run "
                                "may be alive. Remove the lock if it is not, or train into "
                                "another --output-dir.")
        if owner:
            print(f"Taking over {path} from {owner}, which is no longer running.",
                  file=sys.stderr)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.unlink(path)  # while still locked: a waiting opener sees a new file
    finally:
        os.close(descriptor)  # releases the lock


def _locked_descriptor(path, run_dir):
    """A descriptor of `path` holding its exclusive lock."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(descriptor, 1024).decode(errors="replace").strip() or "another run"
            os.close(descriptor)
            raise KerassegError(
                f"{run_dir} is in use by another training run ({owner}; {path}): wait for it "
                "to finish, or train into another --output-dir.") from None
        # The owner unlinks the file before unlocking it: a lock won on an
        # unlinked file is no lock; open the new one.
        if os.path.exists(path) and os.path.samestat(os.fstat(descriptor), os.stat(path)):
            return descriptor
        os.close(descriptor)


def plan_run(config, overwrite=False):
    """"fresh", "resume" or "replace": what `train` does with `config`'s run
    directory (see the module docstring); raises KerassegError to refuse."""
    run_dir = config.training.output_dir
    if os.path.isdir(os.path.join(run_dir, PREVIOUS_NAME)):
        print(f"Restoring the run in {run_dir} that a replacement, killed before its first "
              f"batch passed, had moved to {PREVIOUS_NAME}/.", file=sys.stderr)
        PreviousRun(run_dir).put_back()
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(run_dir, name))]
    if not found:
        return "fresh"
    if overwrite:
        return "replace"
    has_backup = "backup" in found
    state = ("an unfinished run (backup/)" if has_backup else
             "a finished run (model.keras)" if "model.keras" in found else
             "a run that stopped before its first backup")
    differences = config_differences(run_dir, config)
    if differences:
        raise KerassegError(
            f"{run_dir} holds {state} of another config (it differs in "
            f"{', '.join(differences)}): pass --overwrite to replace it, or choose another "
            "--output-dir.")
    if has_backup:
        return "resume"
    if "model.keras" in found:
        raise KerassegError(
            f"{run_dir} holds a finished run of this config (model.keras): pass --overwrite "
            "to train it again, or choose another --output-dir.")
    print(f"Starting the run in {run_dir} again: it stopped before its first backup "
          "(same config).", file=sys.stderr)
    return "replace"


def config_differences(run_dir, config):
    """Dotted keys whose values differ between `run_dir/config.yaml` and `config`
    (`RESUMABLE_CHANGES` aside), a few at most; ["config.yaml"] without one."""
    path = os.path.join(run_dir, "config.yaml")
    try:
        with open(path) as file:
            recorded = _flat(yaml.safe_load(file))
    except (OSError, yaml.YAMLError):
        return ["config.yaml (missing or unreadable)"]
    # Through YAML, as config.yaml was written: tuples become lists.
    current = _flat(yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False)))
    keys = [key for key in dict.fromkeys([*current, *recorded])
            if key not in RESUMABLE_CHANGES and current.get(key) != recorded.get(key)]
    return keys[:4] + ([f"{len(keys) - 4} more"] if len(keys) > 4 else [])


def _flat(values):
    """{"section.key": value} of a config's dict (a mapping such as `model.args`
    stays one value)."""
    if not isinstance(values, dict):
        return {"": values}
    return {f"{section}.{key}": value for section, fields in values.items()
            for key, value in (fields.items() if isinstance(fields, dict) else [("", fields)])}


class PreviousRun(keras.callbacks.Callback):
    """Moves an old run's files aside (`stash`), deletes them once the new run's
    first batch has passed, and puts them back (`put_back`) if it failed before."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir
        self.aside = os.path.join(run_dir, PREVIOUS_NAME)

    def stash(self):
        os.makedirs(self.aside)
        for name in RUN_FILES:
            if os.path.exists(os.path.join(self.run_dir, name)):
                os.replace(os.path.join(self.run_dir, name), os.path.join(self.aside, name))

    def on_train_batch_end(self, batch, logs=None):
        if os.path.exists(self.aside):
            shutil.rmtree(self.aside)

    def put_back(self):
        """The old run's files back in place of what the new run wrote (its
        first batch did not pass: there is nothing of it to keep)."""
        if not os.path.isdir(self.aside):
            return
        for name in RUN_FILES:
            _remove(os.path.join(self.run_dir, name))
        for name in os.listdir(self.aside):
            os.replace(os.path.join(self.aside, name), os.path.join(self.run_dir, name))
        os.rmdir(self.aside)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
