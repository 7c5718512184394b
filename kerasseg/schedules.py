"""Learning-rate schedules: poly decay (DeepLab) and step decay (LPSNet), each
after an optional linear warmup. Keras `LearningRateSchedule`s, registered for
`.keras` files; `kerasseg.train` builds them from a config."""

import keras
from keras import ops

from kerasseg.utils import check_number, check_positive_int


class _WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule whose `rate(step)` is ramped linearly over the first
    `warmup_steps` steps from `warmup_start` times it to itself."""

    def __init__(self, initial_learning_rate, warmup_steps, warmup_start, name):
        super().__init__()
        check_number("initial_learning_rate", initial_learning_rate, 0, low_open=True)
        self.initial_learning_rate = float(initial_learning_rate)
        self.warmup_steps = check_positive_int("warmup_steps", warmup_steps, 0)
        self.warmup_start = float(warmup_start)
        self.name = name

    def rate(self, step):
        raise NotImplementedError

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = self.rate(step)
        if self.warmup_steps == 0:
            return rate
        ramp = self.warmup_start + (1.0 - self.warmup_start) * step / float(self.warmup_steps)
        return ops.where(step < float(self.warmup_steps), rate * ramp, rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "warmup_steps": self.warmup_steps, "warmup_start": self.warmup_start,
                "name": self.name}


@keras.saving.register_keras_serializable(package="kerasseg")
class PolyDecay(_WarmupSchedule):
    """Polynomial ("poly") decay after a linear warmup, as in DeepLab.

    For `step < warmup_steps` the rate rises linearly from
    `warmup_start * initial_learning_rate` to `initial_learning_rate`; then

        lr = end + (initial - end) * (1 - (step - warmup) / (decay_steps - warmup)) ** power

    and `end_learning_rate` once `step >= decay_steps`.

    Args:
        initial_learning_rate: Peak learning rate, reached after warmup.
        decay_steps: Total number of training steps (warmup included).
        power: Exponent of the poly decay; 0.9 in DeepLab.
        end_learning_rate: Learning rate at and after `decay_steps`.
        warmup_steps: Steps of linear warmup; 0 for none.
        warmup_start: Fraction of `initial_learning_rate` at step 0.
        name: Optional name.

    Example:
        >>> schedule = PolyDecay(0.01, decay_steps=1000, warmup_steps=50)
        >>> optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        power=0.9,
        end_learning_rate=0.0,
        warmup_steps=0,
        warmup_start=0.0,
        name="poly_decay",
    ):
        super().__init__(initial_learning_rate, warmup_steps, warmup_start, name)
        check_positive_int("decay_steps", decay_steps)
        if warmup_steps >= decay_steps:
            raise ValueError(
                "`warmup_steps` must be in [0, decay_steps). "
                f"Received: warmup_steps={warmup_steps!r}, decay_steps={decay_steps!r}"
            )
        self.decay_steps = int(decay_steps)
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)

    def rate(self, step):
        peak, end = self.initial_learning_rate, self.end_learning_rate
        warmup = float(self.warmup_steps)
        progress = ops.clip((step - warmup) / float(self.decay_steps - self.warmup_steps), 0, 1)
        # The decay is the peak until warmup ends, so the warmup ramps the peak.
        return end + (peak - end) * ops.power(1.0 - progress, self.power)

    def get_config(self):
        return {**super().get_config(), "decay_steps": self.decay_steps, "power": self.power,
                "end_learning_rate": self.end_learning_rate}


@keras.saving.register_keras_serializable(package="kerasseg")
class StepDecay(_WarmupSchedule):
    """Step decay after a linear warmup, as Detectron's schedules (and LPSNet).

    The rate is `initial_learning_rate * decay_rate ** k`, k the number of
    `boundaries` (steps) passed; for `step < warmup_steps` that rate is scaled
    linearly from `warmup_start` to 1.

    Args:
        initial_learning_rate: Learning rate before the first boundary.
        boundaries: Increasing steps at which the rate is multiplied by `decay_rate`.
        decay_rate: Factor applied at each boundary.
        warmup_steps: Steps of linear warmup; 0 for none.
        warmup_start: Fraction of the rate at step 0.
        name: Optional name.

    Example:
        >>> schedule = StepDecay(0.01, boundaries=[60000, 80000])  # the 1x schedule at 90k
    """

    def __init__(self, initial_learning_rate, boundaries, decay_rate=0.1, warmup_steps=0,
                 warmup_start=0.0, name="step_decay"):
        super().__init__(initial_learning_rate, warmup_steps, warmup_start, name)
        boundaries = [int(b) for b in boundaries]
        if boundaries != sorted(boundaries):
            raise ValueError(f"`boundaries` must be increasing. Received: boundaries={boundaries}")
        self.boundaries = boundaries
        self.decay_rate = float(decay_rate)

    def rate(self, step):
        passed = sum(ops.cast(step >= float(b), "float32") for b in self.boundaries)
        return self.initial_learning_rate * ops.power(self.decay_rate, passed)

    def get_config(self):
        return {**super().get_config(), "boundaries": self.boundaries,
                "decay_rate": self.decay_rate}
