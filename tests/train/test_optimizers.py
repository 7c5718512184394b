"""The optimizer a config builds: schedules over the run, decoupled weight decay."""

import keras
import numpy as np
import pytest

from kerasseg.train import Config
from kerasseg.train.optimizers import build_optimizer


def test_config_step_schedule_decays_at_its_fractions_of_the_run():
    config = Config.from_dict({"optimizer": {"schedule": "step", "learning_rate": 0.1,
                                             "decay_at": [0.5, 0.75], "decay_rate": 0.5}})
    optimizer = build_optimizer(config.optimizer, total_steps=100)
    rates = []
    for step in (49, 50, 75):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert rates == pytest.approx([0.1, 0.05, 0.025])


def test_weight_decay_skips_biases_and_batch_norm():
    config = Config.from_dict({"optimizer": {"name": "sgd", "learning_rate": 0.5,
                                             "momentum": 0.0, "weight_decay": 0.1}})
    optimizer = build_optimizer(config.optimizer, total_steps=10)
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


def test_adamw_without_weight_decay_builds_and_leaves_kernels_alone():
    # `weight_decay: 0` with AdamW used to fail inside Keras ("must be a float").
    import keras
    import numpy as np

    from kerasseg.train.config import OptimizerConfig
    from kerasseg.train.optimizers import build_optimizer

    optimizer = build_optimizer(OptimizerConfig(name="adamw", learning_rate=0.1,
                                                weight_decay=0.0), 10)
    kernel = keras.Variable(np.ones((2, 2), np.float32), name="kernel")
    optimizer.apply_gradients([(np.zeros((2, 2), np.float32), kernel)])
    np.testing.assert_array_equal(kernel.numpy(), 1.0)
