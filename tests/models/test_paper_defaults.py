"""Every builder called with no argument builds its paper's configuration."""

import keras
import pytest

from kerasseg.models import MODELS

# Output channels of each builder's paper configuration: FCN and DeepLab on
# PASCAL VOC, SegNet on CamVid as its authors ship it (void is ignored), U-Net
# two classes, PSPNet on PASCAL VOC, LR-ASPP on Cityscapes (MobileNetV3
# paper), LPSNet on COCO panoptic.
PAPER_CLASSES = {
    "fcn32s": 21, "fcn16s": 21, "fcn8s": 21, "segnet": 11, "unet": 2, "pspnet": 21,
    "deeplabv3": 21, "deeplabv3plus": 21, "lraspp": 19, "lpsnet": 133,
}
COCO_THINGS = 80


def test_every_builder_has_a_paper_configuration():
    assert set(PAPER_CLASSES) == set(MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER_CLASSES))
def test_builder_without_arguments_builds_the_papers_classes(name):
    keras.backend.clear_session()
    model = MODELS[name]()
    if name == "lpsnet":
        assert model.output["semantic"].shape[-1] == PAPER_CLASSES[name]
        assert model.output["class_logits"].shape[-1] == COCO_THINGS
    else:
        assert model.output.shape[-1] == PAPER_CLASSES[name]
    keras.backend.clear_session()


def test_lpsnet_default_things_are_cocos_first_80_categories():
    import inspect

    from kerasseg.data.labels import COCO_THING_CLASSES
    from kerasseg.models.lpsnet import lpsnet

    defaults = inspect.signature(lpsnet).parameters
    assert defaults["num_classes"].default == 133
    assert defaults["thing_classes"].default == COCO_THING_CLASSES == tuple(range(80))
