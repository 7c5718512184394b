"""DeepLabv3 on MobileNet-EdgeTPU with random weights: the shared builder
checks, builtin-only TFLite parity, and the Cityscapes file's head."""

import kerasseg
from tests.model_tester import ModelTester
from tests.models.context_checks import check_tflite_parity

TINY_EDGETPU = {"backbone": "mobilenet_edgetpu", "backbone_kwargs": {"alpha": 0.25},
                "output_stride": 8, "aspp_filters": 16, "aspp_rates": ()}


class TestDeepLabV3EdgeTPU(ModelTester):
    builder = staticmethod(kerasseg.deeplabv3)
    config = {**TINY_EDGETPU, "dropout": 0.0}
    overfit_learning_rate = 1e-2


def test_tflite_builtin_only_and_matches_keras():
    model = kerasseg.deeplabv3(3, input_shape=(65, 65, 3), **TINY_EDGETPU)
    check_tflite_parity(model)


def test_corner_aligned_logits_convert_and_match():
    model = kerasseg.deeplabv3(3, input_shape=(65, 65, 3), align_corners=True, **TINY_EDGETPU)
    assert model.get_layer("upsample_logits").align_corners
    check_tflite_parity(model)


def test_cityscapes_head_without_weights():
    """The file's head: ASPP of a 1x1 branch and image pooling, 128 channels, 19 classes."""
    model = kerasseg.deeplabv3(19, backbone="mobilenet_edgetpu", aspp_filters=128, aspp_rates=())
    assert model.get_layer("aspp_conv_0").kernel.shape == (1, 1, 1280, 128)
    assert model.get_layer("aspp_projection").kernel.shape == (1, 1, 256, 128)
    assert model.get_layer("classifier").kernel.shape == (1, 1, 128, 19)
