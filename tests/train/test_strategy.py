"""tf.distribute: MirroredStrategy over 2 logical CPUs matches one device, two
MultiWorkerMirroredStrategy workers on localhost end with equal weights, and
the strategy and precision choices.

Device layouts must be set before TensorFlow initialises, so each distributed
run is a subprocess running this file as a script (`python test_strategy.py
WORKER_ARGS_JSON`).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

TIMEOUT = 150  # kill guard; each run takes about 10 s on an idle 2-core machine
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_net(num_classes, input_shape=(None, None, 3), synchronized_bn=False):
    """Conv-BN-ReLU, strided conv, upsample, classifier: batch norm makes sync BN matter."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(synchronized=synchronized_bn)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    return keras.Model(inputs, keras.layers.Conv2D(num_classes, 1, name="logits")(x))


def register_tiny_net():
    """Configs name builders; the test's own is registered (a config cannot import code)."""
    from kerasseg.train.model import register_builder

    register_builder("test_tiny_net", tiny_net)


def tiny_config(output_dir, strategy="auto"):
    register_tiny_net()
    return {
        "model": {"name": "test_tiny_net", "args": {}},
        "data": {"image_size": [64, 64], "num_train_images": 16, "num_val_images": 4,
                 "batch_size": 4, "augment": False},
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "warmup_steps": 1},
        "training": {"epochs": 1, "steps_per_epoch": 3, "output_dir": output_dir,
                     "checkpoint_every": 100, "strategy": strategy, "precision": "float32",
                     "verbose": 0},
    }


def _worker(args):
    """Runs in the subprocess: configure devices, train each config, save the weights."""
    import tensorflow as tf

    if args.get("logical_cpus"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"]
        )
    from kerasseg.train import train

    register_tiny_net()
    for config, weights in zip(args["configs"], args["weights"], strict=True):
        result = train(config)
        np.savez(weights, *result.model.get_weights())
        with open(weights + ".json", "w") as file:
            kind = ("multi_worker" if isinstance(result.strategy,
                                                 tf.distribute.MultiWorkerMirroredStrategy)
                    else type(result.strategy).__name__)
            json.dump({"replicas": result.strategy.num_replicas_in_sync, "strategy": kind}, file)


def _start(args, env=None):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), json.dumps(args)],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(processes):
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for index, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"process {index} failed:\n{output[-3000:]}"
    return outputs


def _weights(path):
    with np.load(path) as archive:
        return [archive[key] for key in sorted(archive.files, key=lambda k: int(k.split("_")[1]))]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_mirrored_two_logical_cpus_matches_one_device(tmp_path):
    # One process with two logical CPUs trains under the default strategy
    # (one device), then under MirroredStrategy over both.
    args = {
        "logical_cpus": 2,
        "configs": [tiny_config(str(tmp_path / name), strategy=name)
                    for name in ("default", "mirrored")],
        "weights": [str(tmp_path / f"{name}.npz") for name in ("default", "mirrored")],
    }
    _finish([_start(args)])
    with open(tmp_path / "mirrored.npz.json") as file:
        assert json.load(file) == {"strategy": "MirroredStrategy", "replicas": 2}
    with open(tmp_path / "default.npz.json") as file:
        assert json.load(file)["replicas"] == 1
    one, two = _weights(tmp_path / "default.npz"), _weights(tmp_path / "mirrored.npz")
    initial = _weights_of_fresh_model()
    moved = max(float(np.abs(a - b).max()) for a, b in zip(one, initial, strict=True))
    assert moved > 1e-3  # training changed the weights, so equality below means something
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _weights_of_fresh_model():
    import keras

    from kerasseg.train import Config, build_model

    keras.utils.set_random_seed(0)
    return build_model(Config.from_dict(tiny_config("unused")), 7).get_weights()


def test_multi_worker_two_processes_end_with_equal_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        args = {"configs": [tiny_config(str(tmp_path / "run"))],
                "weights": [str(tmp_path / f"worker{index}.npz")]}
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        processes.append(_start(args, env={"TF_CONFIG": json.dumps(tf_config)}))
    _finish(processes)
    for index in range(2):
        with open(tmp_path / f"worker{index}.npz.json") as file:
            assert json.load(file) == {"strategy": "multi_worker", "replicas": 2}
    first, second = _weights(tmp_path / "worker0.npz"), _weights(tmp_path / "worker1.npz")
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # Only the chief (worker 0) writes the run directory's model and logs.
    assert (tmp_path / "run" / "model.keras").exists()
    assert (tmp_path / "run" / "config.yaml").exists()
    assert not (tmp_path / "run" / ".worker1").exists()  # worker 1's scratch saves, removed


def test_default_strategy_on_this_machine(monkeypatch):
    import tensorflow as tf

    from kerasseg.train.strategy import choose_precision, choose_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("checks the CPU-only choice")
    assert choose_strategy() is tf.distribute.get_strategy()
    assert choose_precision("auto") == "float32"
    with pytest.raises(ValueError, match="strategy"):
        choose_strategy("tpu")


def test_bad_tf_config_is_reported(monkeypatch):
    from kerasseg.train.strategy import choose_strategy

    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        choose_strategy()


def test_mixed_precision_wraps_optimizer_in_loss_scaling():
    import keras

    from kerasseg.train.strategy import set_precision

    try:
        assert set_precision("mixed_float16") == "mixed_float16"
        inputs = keras.Input((8, 8, 3))
        model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
        model.compile(keras.optimizers.SGD(0.1), "mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        set_precision("float32")
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    _worker(json.loads(sys.argv[1]))
