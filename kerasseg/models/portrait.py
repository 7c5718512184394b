"""Portrait-mode model presets: one-channel person masks for phones.

`portrait_model` builds the phone configurations (Lite R-ASPP on
MobileNetV3, or DeepLabv3+ on MobileNetV2), all ending in a sigmoid: one
channel, the probability that a pixel is a person, and no ARG_MAX in the
exported graph. Training data: `kerasseg.data.synthetic.person_mask_dataset`
(synthetic) or a binary-mask dataset; compositing:
`kerasseg.runtime.compositing`.

Example:
    >>> model = portrait_model("lraspp_mobilenetv3small", input_shape=(256, 256, 3))
"""

from kerasseg.models.deeplab import deeplabv3plus
from kerasseg.models.lraspp import lraspp
from kerasseg.utils import check_choice, check_input_shape

# Builder name and keyword arguments of each configuration; every one gets
# num_classes=1 and activation="sigmoid".
PORTRAIT_CONFIGS = {
    # MediaPipe-sized: the backbone stops at stride 16 (its stride-32 stage,
    # most of MobileNetV3's weights, is never built) at half width.
    "lraspp_mobilenetv3small": (
        "lraspp",
        {
            "backbone": "mobilenetv3small",
            "high_level": "P4",
            "head_filters": 64,
            "backbone_kwargs": {"alpha": 0.5},
        },
    ),
    # Thinner still: about half MediaPipe's weights, for the slowest phones.
    "lraspp_mobilenetv3small_035": (
        "lraspp",
        {
            "backbone": "mobilenetv3small",
            "high_level": "P4",
            "head_filters": 32,
            "backbone_kwargs": {"alpha": 0.35},
        },
    ),
    # The paper's LR-ASPP configuration (full backbone at output stride 16).
    "lraspp_mobilenetv3large": (
        "lraspp",
        {"backbone": "mobilenetv3large", "output_stride": 16, "head_filters": 128},
    ),
    "deeplabv3plus_mobilenetv2": ("deeplabv3plus", {"backbone": "mobilenetv2"}),
}

_BUILDERS = {"lraspp": lraspp, "deeplabv3plus": deeplabv3plus}


def portrait_model(
    config="lraspp_mobilenetv3small",
    input_shape=(256, 256, 3),
    weights=None,
    backbone_weights=None,
    name=None,
    **overrides,
):
    """Builds a one-channel person-mask model for portrait mode.

    Args:
        config: One of `PORTRAIT_CONFIGS`: "lraspp_mobilenetv3small" (sized
            like MediaPipe's selfie segmentation model),
            "lraspp_mobilenetv3small_035" (about half that),
            "lraspp_mobilenetv3large" (the paper's LR-ASPP) or
            "deeplabv3plus_mobilenetv2".
        input_shape: (height, width, 3) of raw [0, 255] RGB images. Use a
            fixed size (256x256 square, 144x256 landscape) for export.
        weights: Path of a full-model weights file, or None.
        backbone_weights: None, "imagenet" or a path, for the backbone.
        name: Model name; defaults to "portrait_{config}".
        **overrides: Builder keyword arguments replacing the configuration's.

    Returns:
        A `keras.Model` from (batch, H, W, 3) images to (batch, H, W, 1)
        person probabilities.

    Example:
        >>> model = portrait_model(input_shape=(144, 256, 3))
    """
    check_choice("config", config, tuple(PORTRAIT_CONFIGS))
    check_input_shape(input_shape)
    builder, arguments = PORTRAIT_CONFIGS[config]
    return _BUILDERS[builder](
        num_classes=1,
        input_shape=input_shape,
        weights=weights,
        backbone_weights=backbone_weights,
        activation="sigmoid",
        name=name or f"portrait_{config}",
        **{**arguments, **overrides},
    )
