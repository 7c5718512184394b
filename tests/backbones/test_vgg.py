"""VGG16 backbone: ImageNet-weight copy by name and output-stride geometry."""

import keras
import pytest

from kerasseg.backbones import vgg
from tests.backbones.backbone_checks import check_geometry, check_weights_match_application

VGG16_LEVELS = {f"P{n}": f"block{n}_pool" for n in range(1, 6)}


def test_vgg16_loads_application_weights_by_name(tmp_path):
    check_weights_match_application(
        vgg.vgg16,
        keras.applications.VGG16,
        {level: (lambda m, n=name: m.get_layer(n).output) for level, name in VGG16_LEVELS.items()},
        tmp_path,
        preprocess=keras.applications.vgg16.preprocess_input,
    )


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_vgg16_geometry(output_stride):
    # VGG pools with "valid" 2x2 windows: sizes halve exactly at 64.
    check_geometry(vgg.vgg16, 64, output_stride)
