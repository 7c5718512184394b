"""Learning-rate schedules: formulas, warmup, serialization."""

import keras
import pytest

from kerasseg.schedules import PolyDecay, StepDecay


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
    schedule = StepDecay(0.01, boundaries=[60, 80], decay_rate=0.1, warmup_steps=10,
                         warmup_start=0.5)
    for step, expected in ((0, 0.005), (5, 0.0075), (10, 0.01), (59, 0.01), (60, 0.001),
                           (79, 0.001), (80, 0.0001), (500, 0.0001)):
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5), step
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, StepDecay) and restored.get_config() == schedule.get_config()
