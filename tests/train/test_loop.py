"""The training loop: a short run that learns, and resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from kerasseg.train import Config, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 150  # kill guard; each subprocess takes about 10 s on an idle 2-core machine


def small_unet_config(output_dir, **training):
    return {
        "model": {"name": "unet", "args": {"base_filters": 8, "depth": 3, "batch_norm": True,
                                            "dropout": 0.0}, "bn_momentum": 0.9},
        "data": {"image_size": [64, 64], "num_train_images": 96, "num_val_images": 16,
                 "batch_size": 8, "augment": False},
        "optimizer": {"name": "adamw", "learning_rate": 5e-3, "warmup_steps": 5},
        "training": {"epochs": 6, "output_dir": output_dir, "precision": "float32",
                     "verbose": 0, **training},
    }


def test_short_run_learns_synthetic_scenes_and_writes_the_run_dir(tmp_path):
    result = train(small_unet_config(str(tmp_path / "run")))
    assert result.history["val_mean_iou"][-1] >= 0.5
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "metrics.json", "model.keras", "best.keras"):
        assert (run / name).exists(), name
    assert any((run / "logs" / "train").iterdir())
    assert not (run / "backup").exists()  # removed once the run completed
    records = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["val_mean_iou"] == pytest.approx(result.history["val_mean_iou"][-1])
    assert Config.load(run / "config.yaml").training.epochs == 6
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and "val_mean_iou" in csv_lines[0]


# === Resume after SIGKILL ===


class _Blocker(keras.callbacks.Callback):
    """Blocks after optimizer step `step` (so the test can kill the process)."""

    def __init__(self, step, marker):
        super().__init__()
        self.step, self.marker = step, marker

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            with open(self.marker, "w") as file:
                file.write("ready")
            time.sleep(600)


class _Counter(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.batches = getattr(self, "batches", 0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _resume_worker(args):
    callbacks = [_Counter()]
    if args.get("block_at"):
        callbacks.append(_Blocker(args["block_at"], args["marker"]))
    result = train(args["config"], callbacks=callbacks)
    print("RESULT " + json.dumps({
        "initial_step": result.initial_step,
        "final_step": int(result.model.optimizer.iterations.numpy()),
        "batches_run": callbacks[0].batches,
        "epochs_run": len(result.history["loss"]),
    }), flush=True)


def _spawn(args):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), json.dumps(args)],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_run_killed_mid_epoch_resumes_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    config = small_unet_config(str(run), epochs=2, steps_per_epoch=5, checkpoint_every=2,
                               validate=False)
    config["model"]["args"] = {"base_filters": 4, "depth": 2}
    marker = tmp_path / "blocked"
    # Backups at steps 2, 4, 6; killed at step 7 (epoch 2, its second batch).
    first = _spawn({"config": config, "block_at": 7, "marker": str(marker)})
    try:
        deadline = time.monotonic() + TIMEOUT
        while not marker.exists():
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never reached step 7"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert (run / "backup" / "latest.weights.h5").exists()
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1]

    second = _spawn({"config": config})
    try:
        output, _ = second.communicate(timeout=TIMEOUT)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output[-3000:]
    assert f"Resuming the run in {run} at step 6 from backup/ (same config)." in output
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    # Resumed from the step-6 backup: 4 steps left (7..10), not 10 from scratch.
    assert result == {"initial_step": 6, "final_step": 10, "batches_run": 4, "epochs_run": 1}
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    assert not (run / "backup").exists()


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    _resume_worker(json.loads(sys.argv[1]))
