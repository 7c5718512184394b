"""Distribution strategy and precision chosen for the machine training runs on.

- `TF_CONFIG` set (a cluster of workers): `MultiWorkerMirroredStrategy`.
- Several local GPUs: `MirroredStrategy` over all of them (likewise several
  logical CPU devices, as the tests configure).
- One GPU or CPU only: the default strategy (no replication).

Batch normalisation is synchronised across replicas when there is more than
one (`BatchNormalization(synchronized=True)`, set in the builders' `norm`
by `kerasseg.train.build_model`), so batch statistics are computed over the
global batch.

On a GPU, training runs under the `mixed_float16` policy. Keras then wraps the
optimizer in `keras.optimizers.LossScaleOptimizer` by itself at `compile`
(tested in tests/train/test_strategy.py), so loss scaling needs no code here.
"""

import json
import os

import keras
import tensorflow as tf
from keras import ops

from kerasseg.utils import check_choice

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def cluster_spec():
    """The parsed `TF_CONFIG` environment variable, or None when unset or empty."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"`TF_CONFIG` is not valid JSON ({error}). Received: {text!r}") from None
    if not config.get("cluster"):
        return None
    return config


def choose_strategy(kind="auto", devices=None):
    """Returns the `tf.distribute.Strategy` to train under.

    Args:
        kind: "auto" picks from the machine (see the module docstring);
            "default", "mirrored" or "multi_worker" force one.
        devices: Device names for "mirrored", e.g. ["/cpu:0", "/cpu:1"];
            None uses every local GPU (or every logical CPU device if no GPU).

    Returns:
        A `tf.distribute.Strategy`.

    Example:
        >>> strategy = choose_strategy()
        >>> with strategy.scope():
        ...     model = kerasseg.unet(num_classes=3)
    """
    check_choice("strategy", kind, STRATEGIES)
    if kind == "auto":
        if cluster_spec() is not None:
            kind = "multi_worker"
        elif devices is not None or len(_local_devices()) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "multi_worker":
        # RING all-reduce works on CPUs and GPUs alike; NCCL is chosen on GPUs by AUTO.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices or _local_devices())
    return tf.distribute.get_strategy()


def _local_devices():
    """Every local GPU; without GPUs, the logical CPU devices (several only when
    configured with `tf.config.set_logical_device_configuration`)."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


def is_chief(strategy):
    """True on the worker that writes logs, checkpoints and the final model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def worker_index(strategy):
    """The task index of this worker in a multi-worker cluster, else 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None else 0


def choose_precision(precision="auto"):
    """Resolves the dtype policy name: "auto" is mixed_float16 on a GPU, else float32.

    Args:
        precision: One of "auto", "float32", "mixed_float16", "mixed_bfloat16".

    Returns:
        The policy name.
    """
    check_choice("precision", precision, PRECISIONS)
    if precision == "auto":
        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    return precision


def set_precision(precision="auto"):
    """Sets the global Keras dtype policy (see `choose_precision`); returns its name."""
    policy = choose_precision(precision)
    keras.config.set_dtype_policy(policy)
    return policy


@keras.saving.register_keras_serializable(package="kerasseg")
class PerWorkerLogs(keras.Model):
    """A functional model whose train/test steps return logs of shape (1,).

    Keras 3.15 `fit` under MultiWorkerMirroredStrategy reduces the scalar logs
    with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars, and
    its symbolic build reduces the (x, y) tuple, which MWMS cannot. Giving the
    logs a leading axis fixes the first; building this wrapper outside the
    strategy scope (the layers and variables are the original model's,
    created inside it) skips the second.
    """

    def train_step(self, data):
        return {key: ops.expand_dims(value, 0) for key, value in super().train_step(data).items()}

    def test_step(self, data):
        return {key: ops.expand_dims(value, 0) for key, value in super().test_step(data).items()}
