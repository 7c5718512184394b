"""Portrait-mode presets: one-channel person-mask models."""

import numpy as np
import pytest

from kerasseg.models import portrait


def test_portrait_model_outputs_one_channel_probability_at_landscape_size():
    model = portrait.portrait_model(input_shape=(144, 256, 3))
    out = model.predict(np.full((1, 144, 256, 3), 100.0, "float32"), verbose=0)
    assert out.shape == (1, 144, 256, 1)
    assert (out > 0).all() and (out < 1).all()
    assert model.name == "portrait_lraspp_mobilenetv3small"


def test_portrait_model_overrides_and_rejects_unknown_config():
    small = portrait.portrait_model(input_shape=(64, 64, 3))
    smaller = portrait.portrait_model(input_shape=(64, 64, 3), head_filters=8)
    assert smaller.count_params() < small.count_params()
    with pytest.raises(ValueError, match="config"):
        portrait.portrait_model("lraspp_resnet")
