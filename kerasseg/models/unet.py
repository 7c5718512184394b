"""U-Net: a contracting path, an expanding path, and skips between them.

Reference: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI 2015.
"""

import keras

from kerasseg.layers import CropLike, Preprocess
from kerasseg.models.blocks import output_layer
from kerasseg.models.inputs import check_builder_arguments, image_input
from kerasseg.utils import check_choice, check_positive_int, check_type, load_model_weights

PADDINGS = ("same", "valid")


def valid_output_size(size, depth):
    """Output size of a "valid" U-Net for input `size`, or None if the input
    does not fit (every pooled map must have an even size)."""
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    if size <= 0:
        return None
    for _ in range(depth):
        size = size * 2 - 4
    return size if size > 0 else None


def _check_valid_size(input_shape, depth):
    for axis, size in zip(("height", "width"), input_shape[:2]):
        if size is None:
            raise ValueError(
                'padding="valid" needs a fixed input size (its crops depend on it). '
                f"Received: input_shape={input_shape!r}"
            )
        if valid_output_size(size, depth) is None:
            fits = next(s for s in range(size, size + 2**depth * 8) if valid_output_size(s, depth))
            raise ValueError(
                f'padding="valid" with depth={depth} cannot take {axis} {size}: every pooled '
                f"map must have an even size. Pad the input to {fits} (output "
                f"{valid_output_size(fits, depth)}). Received: input_shape={input_shape!r}"
            )


def _double_conv(x, filters, padding, norm, name):
    """Two 3x3 convs with ReLU, each followed by `norm` when it is not None."""
    for index in (1, 2):
        x = keras.layers.Conv2D(
            filters, 3, padding=padding, use_bias=norm is None, name=f"{name}_conv{index}"
        )(x)
        if norm is not None:
            x = norm(x, f"{name}_conv{index}_bn")
        x = keras.layers.ReLU(name=f"{name}_conv{index}_relu")(x)
    return x


def unet(
    num_classes=2,
    input_shape=(None, None, 3),
    *,
    base_filters=64,
    depth=4,
    padding="same",
    batch_norm=False,
    norm=None,
    dropout=0.5,
    weights=None,
    activation=None,
    name=None,
):
    """U-Net: 3x3 convolutions, 2x2 max pooling, 2x2 up-convolutions, skips
    concatenated.

    The paper's network is `unet(input_shape=(572, 572, 1), padding="valid")`,
    with its two classes (the default): filters 64 to 1024, unpadded
    convolutions, skips centre-cropped, 572x572 in and 388x388 out, 31.03M
    parameters. The default `padding="same"` takes any input size and returns
    logits at the input size: odd sizes pool in "ceil" mode and each
    up-convolution is cropped to its skip.

    Reference:
        Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for
        Biomedical Image Segmentation", MICCAI 2015.

    Args:
        num_classes: number of classes (>= 1).
        input_shape: (height, width, channels) of raw [0, 255] images. With
            padding="same" height and width may be None.
        base_filters: filters of the first level, doubled at each level.
        depth: number of poolings (4 in the paper).
        padding: "same" (output at input size) or "valid" (the paper's
            unpadded convolutions; output smaller than the input).
        batch_norm: add batch normalisation after every convolution (not in
            the paper).
        norm: the `BatchNormSettings` of those layers, with `batch_norm` (a
            dict of its fields; None for `BatchNormSettings()`).
        dropout: dropout rate at the end of the contracting path, as in the
            paper.
        weights: None or the path of a full-model weights file.
        activation: None for logits, or e.g. "softmax".
        name: model name; None names it "unet".

    Returns:
        A functional `keras.Model`.

    Example:
        >>> model = kerasseg.unet(input_shape=(None, None, 1))  # 2 classes
    """
    input_shape, norm = check_builder_arguments(num_classes, input_shape, norm=norm)
    check_type("batch_norm", batch_norm, bool)
    norm = norm if batch_norm else None
    check_positive_int("base_filters", base_filters)
    check_positive_int("depth", depth)
    check_choice("padding", padding, PADDINGS)
    if padding == "valid":
        _check_valid_size(input_shape, depth)

    inputs = image_input(input_shape)
    x = Preprocess("tf", name="preprocess")(inputs)

    # === Contracting path ===
    skips = []
    for level in range(depth):
        x = _double_conv(x, base_filters * 2**level, padding, norm, f"down{level + 1}")
        skips.append(x)
        # "same" pooling is ceil mode: odd maps keep their last row/column.
        x = keras.layers.MaxPooling2D(2, padding=padding, name=f"down{level + 1}_pool")(x)
    x = _double_conv(x, base_filters * 2**depth, padding, norm, "bottleneck")
    x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)

    # === Expanding path ===
    for level in range(depth, 0, -1):
        filters = base_filters * 2 ** (level - 1)
        skip = skips[level - 1]
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_upconv")(x)
        if padding == "valid":
            skip = CropLike(name=f"up{level}_crop_skip")([skip, x])
        else:
            x = CropLike(offset=0, name=f"up{level}_crop")([x, skip])
        x = keras.layers.Concatenate(name=f"up{level}_concat")([skip, x])
        x = _double_conv(x, filters, padding, norm, f"up{level}")

    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    outputs = output_layer(x, activation)
    model = keras.Model(inputs, outputs, name=name or "unet")
    return load_model_weights(model, weights)
