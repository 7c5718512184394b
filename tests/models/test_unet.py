import numpy as np
import pytest

import kerasseg
from tests.model_tester import ModelTester


class TestUNet(ModelTester):
    builder = staticmethod(kerasseg.unet)
    config = {"base_filters": 8, "depth": 3, "dropout": 0.0}
    channels = 4  # e.g. RGB-D early fusion


def test_unet_papers_configuration():
    model = kerasseg.unet(2, input_shape=(572, 572, 1), padding="valid")
    assert model.output_shape == (None, 388, 388, 2)
    # Conv weights 64 -> 1024 -> 64 plus 2x2 up-convolutions and the 1x1 classifier.
    assert model.count_params() == 31_030_658


def test_unet_valid_mode_small_input_runs():
    model = kerasseg.unet(3, input_shape=(44, 44, 3), base_filters=4, depth=2, padding="valid")
    assert model.predict(np.zeros((1, 44, 44, 3), "float32"), verbose=0).shape == (1, 4, 4, 3)


def test_unet_valid_mode_size_error_says_how_to_pad():
    with pytest.raises(ValueError, match="Pad the input to 572"):
        kerasseg.unet(2, input_shape=(570, 572, 1), padding="valid")
    with pytest.raises(ValueError, match="fixed input size"):
        kerasseg.unet(2, padding="valid")


def test_unet_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        kerasseg.unet(2, padding="reflect")
    with pytest.raises(ValueError, match="depth"):
        kerasseg.unet(2, depth=0)
    with pytest.raises(ValueError, match="input_shape"):
        kerasseg.unet(2, input_shape=(64, 64))
