"""Batch-normalisation settings of a whole model, given once at build time.

Every builder takes `norm` (a `BatchNormSettings`, or a dict of its fields)
and hands the one record to its backbone, decoder and head; every layer that
normalises is made by it, so no setting is rewritten after the model is
built. As `tf-models` passes `use_sync_bn, norm_momentum, norm_epsilon` once.

Example:
    >>> model = kerasseg.deeplabv3plus(21, norm={"synchronized": True, "momentum": 0.9})
"""

import dataclasses

import keras

from kerasseg.utils import check_number, check_type

# Keras' BatchNormalization default: the epsilon of the layers without
# pretrained statistics, and of the MobileNet and Xception weights.
DEFAULT_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class BatchNormSettings:
    """How every BatchNormalization layer of a model is made.

    Attributes:
        synchronized: Batch statistics over all replicas under `tf.distribute`
            (sync BN), for small per-device batches.
        momentum: Moving-average momentum of every layer, backbones included.
            0.99 (Keras' default) suits fine-tuning and long runs; a short run
            from scratch wants a faster average such as 0.9, or the moving
            statistics stay near their initial values.
        epsilon: The variance epsilon of every layer, or None for each
            layer's own: that of its pretrained weights (1.001e-5 in the
            ResNets, 1e-3 elsewhere), `DEFAULT_EPSILON` in decoders and heads.
    """

    synchronized: bool = False
    momentum: float = 0.99
    epsilon: float | None = None

    def __post_init__(self):
        check_type("norm.synchronized", self.synchronized, bool)
        check_number("norm.momentum", self.momentum, 0, 1, high_open=True)
        if self.epsilon is not None:
            check_number("norm.epsilon", self.epsilon, 0, low_open=True)

    def __call__(self, x, name, epsilon=DEFAULT_EPSILON):
        """`x` through a BatchNormalization layer `name` with these settings;
        `epsilon` is the layer's own, used when `self.epsilon` is None."""
        return keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon or epsilon,
            synchronized=self.synchronized, name=name,
        )(x)


# The defaults, shared: the record is frozen.
DEFAULT_NORM = BatchNormSettings()


def batch_norm_settings(norm):
    """`norm` as a `BatchNormSettings`: one, a dict of its fields, or None (the defaults).

    Raises:
        ValueError: another value, or a dict with an unknown key.
    """
    if norm is None:
        return BatchNormSettings()
    if isinstance(norm, BatchNormSettings):
        return norm
    if isinstance(norm, dict):
        fields = tuple(f.name for f in dataclasses.fields(BatchNormSettings))
        unknown = sorted(set(norm) - set(fields))
        if unknown:
            raise ValueError(f"`norm` has unknown key(s) {unknown}; valid keys: {fields}. "
                             f"Received: norm={norm!r}")
        return BatchNormSettings(**norm)
    raise ValueError("`norm` must be None, a dict of BatchNormSettings fields or a "
                     f"BatchNormSettings. Received: norm={norm!r}")
