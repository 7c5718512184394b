"""Feature pyramid network (Lin et al., CVPR 2017) with the extra levels of
RetinaNet/FCOS and an optional pyramid pooling module on the top level, as
LPSNet uses it (Hong et al., CVPR 2021)."""

import keras

from kerasseg.layers import DEFAULT_NORM, ResizeLike


def feature_pyramid(features, filters=256, top_level=7, *, ppm=True, ppm_bins=(1, 2, 3, 6),
                    norm=DEFAULT_NORM, name="fpn"):
    """FPN levels P2..`top_level` from backbone levels P2..P5.

    P2..P5: 1x1 lateral convs, top-down bilinear upsampling with
    `ResizeLike` (so any input size aligns), addition, 3x3 smoothing convs.
    P6 is a stride-2 3x3 conv on the P5 output, P7 a stride-2 3x3 conv on
    ReLU(P6), as in FCOS. With `ppm`, the backbone's P5 first goes through the
    pyramid pooling module of PSPNet (`kerasseg.models.decoders`), which the
    LPSNet ablation credits with +3.4 PQ (branch width `filters / len(bins)`).

    Args:
        features: dict of backbone feature maps with "P2".."P5".
        filters: channels of every pyramid level.
        top_level: highest level built, 5, 6 or 7.
        ppm: apply the pyramid pooling module to P5 before its lateral conv.
        ppm_bins: pooling grid sizes of the module.
        norm: the `BatchNormSettings` of every BatchNormalization layer.
        name: layer-name prefix.

    Returns:
        dict "P2".."P{top_level}" of tensors with `filters` channels.
    """
    top = features["P5"]
    if ppm:
        from kerasseg.models.decoders import pyramid_pooling_module

        # Branches of filters / len(bins) channels keep the module light; the
        # lateral 1x1 conv then maps its output to `filters`.
        top = pyramid_pooling_module(top, bins=ppm_bins, filters=max(1, filters // len(ppm_bins)),
                                     norm=norm, name=f"{name}_ppm")
    inputs = {"P2": features["P2"], "P3": features["P3"], "P4": features["P4"], "P5": top}
    laterals = {
        level: keras.layers.Conv2D(filters, 1, name=f"{name}_lateral_{level.lower()}")(x)
        for level, x in inputs.items()
    }
    outputs = {}
    merged = laterals["P5"]
    for level in ("P5", "P4", "P3", "P2"):
        if level != "P5":
            upsampled = ResizeLike(name=f"{name}_upsample_{level.lower()}")(
                [merged, laterals[level]]
            )
            merged = keras.layers.Add(name=f"{name}_add_{level.lower()}")(
                [laterals[level], upsampled]
            )
        outputs[level] = keras.layers.Conv2D(
            filters, 3, padding="same", name=f"{name}_output_{level.lower()}"
        )(merged)
    previous = outputs["P5"]
    for level in range(6, top_level + 1):
        if level > 6:
            previous = keras.layers.ReLU(name=f"{name}_p{level}_relu")(previous)
        previous = keras.layers.Conv2D(
            filters, 3, strides=2, padding="same", name=f"{name}_output_p{level}"
        )(previous)
        outputs[f"P{level}"] = previous
    return {level: outputs[level] for level in sorted(outputs, key=lambda k: int(k[1:]))}
