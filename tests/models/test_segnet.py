import numpy as np
import pytest

import kerasseg
from kerasseg.layers import MaxPoolingWithArgmax2D
from tests.model_tester import ModelTester


class TestSegNet(ModelTester):
    builder = staticmethod(kerasseg.segnet)
    config = {"base_filters": 8}
    overfit_learning_rate = 1e-2


def test_segnet_parameter_count_matches_paper():
    # The paper reports 29.5M for its 12-class CamVid model.
    count = kerasseg.segnet(num_classes=12).count_params()
    assert count == 29_465_804
    assert abs(count - 29.5e6) / 29.5e6 < 0.01


def test_segnet_decoder_unpools_at_encoder_argmax():
    import keras

    model = kerasseg.segnet(num_classes=2, base_filters=4)
    x = np.random.default_rng(0).uniform(0, 255, (1, 37, 29, 3)).astype("float32")
    probe = keras.Model(
        model.input,
        [model.get_layer("block1_conv2_relu").output, model.get_layer("decoder_block1_unpool").output],
    )
    encoder, unpooled = probe.predict(x, verbose=0)
    _, indices = MaxPoolingWithArgmax2D()(encoder)
    # Non-zero unpooled values sit only where the encoder's window maximum was.
    window_max = np.zeros_like(encoder, dtype=bool)
    idx = indices.numpy()
    for dy in range(2):
        for dx in range(2):
            sel = idx == dy * 2 + dx
            window_max[:, dy::2, dx::2][sel[:, : encoder[:, dy::2].shape[1], : encoder[:, :, dx::2].shape[2]]] = True
    assert not np.any(unpooled[~window_max])
    assert unpooled.shape == encoder.shape


def test_segnet_rejects_other_backbones():
    with pytest.raises(ValueError, match="vgg16_bn"):
        kerasseg.segnet(num_classes=2, backbone="resnet50")
