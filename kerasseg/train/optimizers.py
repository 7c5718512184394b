"""The optimizer of a run, built from `config.optimizer`."""

import keras

from kerasseg.schedules import PolyDecay, StepDecay


def build_schedule(options, total_steps):
    """The learning-rate schedule of `options` (an `OptimizerConfig`) over `total_steps`."""
    warmup_steps = min(options.warmup_steps, total_steps - 1)
    if options.schedule == "step":
        return StepDecay(
            options.learning_rate,
            boundaries=[max(1, int(f * total_steps)) for f in options.decay_at],
            decay_rate=options.decay_rate,
            warmup_steps=warmup_steps,
        )
    return PolyDecay(
        options.learning_rate,
        decay_steps=total_steps,
        power=options.power,
        end_learning_rate=options.end_learning_rate,
        warmup_steps=warmup_steps,
    )


def build_optimizer(options, total_steps):
    """SGD with momentum or AdamW on `build_schedule`, with decoupled weight
    decay on kernels only (not on biases and batch-norm parameters)."""
    schedule = build_schedule(options, total_steps)
    if options.name == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=options.momentum,
                                         weight_decay=options.weight_decay or None,
                                         clipnorm=options.clipnorm)
    else:  # AdamW takes a float only: 0.0 turns its decay off
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=options.weight_decay,
                                           clipnorm=options.clipnorm)
    if options.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer
