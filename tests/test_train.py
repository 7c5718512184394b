"""kerasseg.train: config, poly schedule, optimizer, resume after SIGKILL, a short
run that learns the synthetic scenes."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from kerasseg.train import Config, PolyDecay, StepDecay, train
from kerasseg.train.config import DATASETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


# === Config ===


def test_config_round_trip_yaml_and_json(tmp_path):
    config = Config.from_dict({"optimizer": {"name": "adamw"}, "training": {"epochs": 3}})
    path = config.save(tmp_path)
    assert Config.load(path) == config
    json_path = tmp_path / "config.json"
    json_path.write_text(json.dumps(config.to_dict()))
    assert Config.load(json_path) == config
    assert Config.load(path).data.image_size == (128, 128)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"optimiser": {}}, "unknown key.*'optimiser'.*Valid keys"),
        ({"training": {"epoch": 3}}, "section `training`: unknown key.*'epoch'"),
        ({"optimizer": {"name": "adam"}}, "optimizer.name.*'sgd', 'adamw'.*'adam'"),
        ({"optimizer": {"learning_rate": -1}}, "optimizer.learning_rate"),
        ({"data": {"image_size": [16, 16]}}, "data.image_size"),
        ({"data": {"batch_size": 0}}, "data.batch_size"),
        ({"data": {"dataset": "voc"}}, "data.root.*required"),
        ({"training": {"strategy": "tpu"}}, "training.strategy"),
        ({"data": {"scale_range": [2.0, 0.5]}}, "data.scale_range"),
    ],
)
def test_config_errors_name_the_key(tmp_path, values, message):
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ValueError, match=message) as error:
        Config.load(path)
    assert str(path) in str(error.value)


def test_config_datasets_match_the_readers():
    from kerasseg.data.readers import DATASETS as READERS

    assert set(DATASETS) == {"synthetic", *READERS}


def test_unparsable_config_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        Config.load(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        Config.load(tmp_path / "missing.yaml")


# === Schedule and optimizer ===


def test_poly_decay_matches_formula_and_round_trips():
    schedule = PolyDecay(0.1, decay_steps=100, power=0.9, end_learning_rate=0.001,
                         warmup_steps=10, warmup_start=0.1)
    for step in (0, 5, 9, 10, 11, 50, 99, 100, 150):
        if step < 10:
            expected = 0.1 * (0.1 + 0.9 * step / 10)
        else:
            expected = 0.001 + 0.099 * (1 - min(step - 10, 90) / 90) ** 0.9
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5), step
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, PolyDecay)
    assert restored.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps"):
        PolyDecay(0.1, decay_steps=10, warmup_steps=10)


def test_step_decay_matches_formula_and_round_trips():
    from kerasseg.train import _optimizer

    schedule = StepDecay(0.01, boundaries=[60, 80], decay_rate=0.1, warmup_steps=10,
                         warmup_start=0.5)
    for step, expected in ((0, 0.005), (5, 0.0075), (10, 0.01), (59, 0.01), (60, 0.001),
                           (79, 0.001), (80, 0.0001), (500, 0.0001)):
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5), step
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, StepDecay) and restored.get_config() == schedule.get_config()
    # The config's "step" schedule decays at its fractions of the run.
    config = Config.from_dict({"optimizer": {"schedule": "step", "learning_rate": 0.1,
                                             "decay_at": [0.5, 0.75], "decay_rate": 0.5}})
    optimizer = _optimizer(config.optimizer, total_steps=100)
    rates = []
    for step in (49, 50, 75):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert rates == pytest.approx([0.1, 0.05, 0.025])


def test_weight_decay_skips_biases_and_batch_norm():
    from kerasseg.train import _optimizer

    config = Config.from_dict({"optimizer": {"name": "sgd", "learning_rate": 0.5,
                                             "momentum": 0.0, "weight_decay": 0.1}})
    optimizer = _optimizer(config.optimizer, total_steps=10)
    layer = keras.layers.Dense(2)
    layer.build((None, 2))
    norm = keras.layers.BatchNormalization()
    norm.build((None, 2))
    variables = [layer.kernel, layer.bias, norm.gamma, norm.beta]
    before = [v.numpy().copy() + 1.0 for v in variables]
    for variable, value in zip(variables, before, strict=True):
        variable.assign(value)
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])
    # Decoupled decay: w -= lr * wd * w for kernels; the others stay.
    np.testing.assert_allclose(layer.kernel.numpy(), before[0] * (1 - 0.5 * 0.1), rtol=1e-6)
    for variable, value in zip(variables[1:], before[1:], strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_build_model_sets_bn_momentum_and_custom_builders():
    from kerasseg.train import build_model

    config = Config.from_dict({"model": {"name": "unet", "bn_momentum": 0.5, "args": {
        "base_filters": 4, "depth": 2, "batch_norm": True}}})
    norms = [layer for layer in build_model(config, 3).layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.get_config()["momentum"] == 0.5 for layer in norms)
    custom = Config.from_dict({"model": {"name": "tests.test_distribute:tiny_net", "args": {}}})
    assert build_model(custom, 4).output_shape == (None, None, None, 4)
    with pytest.raises(ValueError, match="model.name.*'nonet'"):
        build_model(Config.from_dict({"model": {"name": "nonet"}}), 3)


# === Training ===


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
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    # Resumed from the step-6 backup: 4 steps left (7..10), not 10 from scratch.
    assert result == {"initial_step": 6, "final_step": 10, "batches_run": 4, "epochs_run": 1}
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    assert not (run / "backup").exists()


def test_recompute_batch_norm_averages_batch_statistics_and_restores_momentum():
    from kerasseg.train import batch_norm_layers, recompute_batch_norm

    inner = keras.Sequential([keras.layers.BatchNormalization(momentum=0.999)])
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(momentum=0.9),
                              inner])
    assert len(batch_norm_layers(model)) == 2  # the nested model's too
    images = np.random.default_rng(0).normal(5.0, 2.0, (8, 3)).astype("float32")
    recompute_batch_norm(model, images, batch_size=4)
    first = model.layers[0]
    expected = (images[:4].mean(0) + images[4:].mean(0)) / 2  # the mean of the batch means
    np.testing.assert_allclose(first.moving_mean.numpy(), expected, rtol=1e-5)
    expected_variance = (images[:4].var(0) + images[4:].var(0)) / 2
    np.testing.assert_allclose(first.moving_variance.numpy(), expected_variance, rtol=1e-4)
    assert [layer.momentum for layer in batch_norm_layers(model)] == [0.9, 0.999]


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    _resume_worker(json.loads(sys.argv[1]))
