"""The run directory: one run at a time, nothing of an old run lost to a new one,
resume that says where it resumes, and one line when it cannot."""

import json
import os
import socket
import subprocess
import sys
import time

import keras
import pytest
import yaml

from kerasseg import KerassegError
from kerasseg.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 150  # kill guard; a tiny run takes about 10 s on an idle 2-core machine


def tiny_config(output_dir, **training):
    return {
        "model": {"name": "unet", "args": {"base_filters": 4, "depth": 2}},
        "data": {"image_size": [32, 32], "num_train_images": 8, "num_val_images": 4,
                 "batch_size": 4, "augment": False},
        "training": {"epochs": 2, "steps_per_epoch": 2, "output_dir": str(output_dir),
                     "checkpoint_every": 1, "validate": False, "precision": "float32",
                     "verbose": 0, **training},
    }


class _FailAt(keras.callbacks.Callback):
    """Raises at optimizer step `step` (0: before the first batch has passed)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError(f"failed at step {self.step}")


class _Hold(keras.callbacks.Callback):
    """After the first batch, writes `marker` and waits until `release` exists."""

    def __init__(self, marker, release):
        super().__init__()
        self.marker, self.release = marker, release

    def on_train_batch_end(self, batch, logs=None):
        if not os.path.exists(self.marker):
            with open(self.marker, "w") as file:
                file.write("holding")
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(self.release) and time.monotonic() < deadline:
            time.sleep(0.1)


def _snapshot(run):
    """{relative path: bytes} of every file in the run directory."""
    return {os.path.relpath(os.path.join(folder, name), run):
            open(os.path.join(folder, name), "rb").read()
            for folder, _, names in os.walk(run) for name in names}


def test_two_trainings_into_one_directory(tmp_path):
    run, config = tmp_path / "run", tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(run)))
    marker, release = tmp_path / "holding", tmp_path / "release"
    first = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__),
         json.dumps({"config": str(config), "marker": str(marker), "release": str(release)})],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not marker.exists():
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never passed its first batch"
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "kerasseg.cli", "train", "--config",
                                 str(config)], cwd=ROOT, capture_output=True, text=True,
                                timeout=TIMEOUT)
        release.write_text("go")
        output, _ = first.communicate(timeout=TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
    # Before: both exited 0, with two interleaved runs in metrics.csv.
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"kerasseg train: error: {run} is in use by another training run "
        f"(pid {first.pid} on {socket.gethostname()}; {run / 'train.lock'}): wait for it to "
        "finish, or train into another --output-dir."]
    assert first.returncode == 0, output[-3000:]
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,") and lines[1].startswith("0,")
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    assert not (run / "train.lock").exists() and (run / "model.keras").exists()


def test_a_stale_lock_is_taken_over_and_a_live_one_elsewhere_is_not(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    # A lock file left by a killed run of this machine: the kernel released its flock.
    (run / "train.lock").write_text(f"pid 999999999 on {socket.gethostname()}\n")
    train(tiny_config(run, epochs=1))
    assert (f"Taking over {run / 'train.lock'} from pid 999999999 on {socket.gethostname()}, "
            "which is no longer running.") in capsys.readouterr().err
    assert not (run / "train.lock").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "train.lock").write_text("pid 12 on another-machine\n")
    with pytest.raises(KerassegError, match="locked by pid 12 on another-machine"):
        train(tiny_config(tmp_path / "other"))


def test_a_failed_rerun_leaves_the_finished_run_as_it_was(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run))
    finished = _snapshot(run)
    assert {"config.yaml", "metrics.csv", "metrics.json", "model.keras"} <= set(finished)
    other = tiny_config(run)
    other["model"]["args"]["base_filters"] = 8
    # Another config, or the same one finished: refused, naming the options.
    with pytest.raises(KerassegError) as refused:
        train(other)
    assert str(refused.value) == (
        f"{run} holds a finished run (model.keras) of another config (it differs in "
        "model.args): pass --overwrite to replace it, or choose another --output-dir.")
    with pytest.raises(KerassegError, match="finished run of this config"):
        train(tiny_config(run))
    # --overwrite with a run that fails before its first batch passes: before,
    # metrics.json and the logs were gone and config.yaml was the new one's.
    with pytest.raises(RuntimeError, match="failed at step 0"):
        train(other, callbacks=[_FailAt(0)], overwrite=True)
    assert _snapshot(run) == finished
    result = train(other, overwrite=True)
    assert result.initial_step == 0
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,")  # the old rows are gone
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["args"][
        "base_filters"] == 8
    assert not (run / ".previous_run").exists()


def test_a_fresh_run_failing_at_its_first_batch_leaves_nothing_behind(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="failed at step 0"):
        train(tiny_config(run), callbacks=[_FailAt(0)])
    assert os.listdir(run) == []
    fixed = tiny_config(run, epochs=1)
    fixed["model"]["args"]["base_filters"] = 8
    assert train(fixed).initial_step == 0  # another config, not refused: nothing was there


def test_the_old_run_comes_back_after_a_replacement_killed_in_its_first_batch(
        tmp_path, capsys):
    from kerasseg.train import Config
    from kerasseg.train.rundir import PreviousRun, plan_run

    run = tmp_path / "run"
    config = Config.from_dict(tiny_config(run))
    config.save(run)
    (run / "model.keras").write_bytes(b"the old model")
    (run / "metrics.csv").write_text("the old metrics")
    PreviousRun(str(run)).stash()  # what a replacement does first; then SIGKILL
    (run / "metrics.csv").write_text("epoch\n")  # the replacement's
    with pytest.raises(KerassegError, match="finished run of this config"):
        plan_run(config)
    assert (run / "model.keras").read_bytes() == b"the old model"
    assert (run / "metrics.csv").read_text() == "the old metrics"
    assert not (run / ".previous_run").exists()
    assert "Restoring the run in" in capsys.readouterr().err


def test_resume_says_where_and_a_changed_model_is_one_line(tmp_path, capsys):
    from kerasseg.train.model import register_builder

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="failed at step 3"):
        train(tiny_config(run), callbacks=[_FailAt(3)])  # backups at steps 1, 2, 3
    assert (run / "backup" / "latest.weights.h5").exists()
    changed = tiny_config(run)
    changed["model"]["args"]["depth"] = 3
    with pytest.raises(KerassegError, match=r"unfinished run \(backup/\) of another config \(it "
                                            r"differs in model.args\)"):
        train(changed)
    # The same config name, another model (a registered builder that changed):
    # one line instead of Keras' warning per layer.
    import kerasseg

    register_builder("changing_net", lambda num_classes, **kwargs: kerasseg.unet(
        num_classes, base_filters=4, depth=2, **kwargs))
    named = tiny_config(tmp_path / "named")
    named["model"] = {"name": "changing_net", "args": {}}
    with pytest.raises(RuntimeError):
        train(named, callbacks=[_FailAt(1)])
    register_builder("changing_net", lambda num_classes, **kwargs: kerasseg.unet(
        num_classes, base_filters=8, depth=2, **kwargs))
    with _no_warnings():
        with pytest.raises(KerassegError) as misfit:
            train(named)
    message = str(misfit.value)
    assert "\n" not in message and message.startswith(
        f"{tmp_path / 'named' / 'backup'}/ does not fit the model of this config")
    assert "--overwrite" in message
    capsys.readouterr()
    result = train(tiny_config(run))
    assert result.initial_step == 3
    assert (f"Resuming the run in {run} at step 3 from backup/ (same config)."
            in capsys.readouterr().err)


class _no_warnings:
    def __enter__(self):
        import warnings

        self.catcher = warnings.catch_warnings(record=True)
        self.caught = self.catcher.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)
        assert not [w for w in self.caught if "Skipping" in str(w.message)], self.caught


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    arguments = json.loads(sys.argv[1])
    train(arguments["config"], callbacks=[_Hold(arguments["marker"], arguments["release"])])
