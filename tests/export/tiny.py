"""A tiny trained segmentation model shared by the exporter and runtime tests."""

import functools

import numpy as np

from tests.model_tester import tiny_batch

NUM_CLASSES = 3
LABELS = ("background", "disc", "stripes")
PALETTE = ((0, 0, 0), (255, 0, 0), (0, 255, 0))


def build(input_shape=(None, None, 3), activation=None):
    """Preprocess -> strided conv -> BN -> 1x1 classifier -> resize to input: the
    shape of every kerasseg head, built from public layers and ours."""
    import keras

    from kerasseg.layers import Preprocess, ResizeLike

    image = keras.Input(input_shape, name="image")
    x = Preprocess("tf", name="preprocess")(image)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(NUM_CLASSES, 1, name="classifier")(x)
    x = ResizeLike(name="upsample_logits")([x, image])
    x = keras.layers.Activation(activation or "linear", dtype="float32", name="logits")(x)
    return keras.Model(image, x, name="tiny")


@functools.cache
def trained():
    """The tiny model fitted for a few steps on discs and stripes, so its
    logits have margins (int8 agreement is then meaningful)."""
    import keras

    keras.utils.set_random_seed(0)
    model = build()
    images, masks = tiny_batch(batch=8, num_classes=NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, masks, batch_size=8, epochs=40, verbose=0)
    return model


def images(batch=2, size=(64, 64), seed=1):
    """Images like the training ones, as uint8 raw pixels."""
    x, _ = tiny_batch(size=size, batch=batch, num_classes=NUM_CLASSES, seed=seed)
    return np.round(x).astype(np.uint8)


def hostile(model, outlier=1000.0):
    """`model` (from `build`) with a quantisation-hostile tensor before its
    classifier: conv2's 16 channels plus a 17th that is `outlier` everywhere,
    which the classifier ignores. Float outputs are unchanged; a per-tensor
    int8 scale set by the outlier rounds the 16 real channels to a few
    levels, so the int8 labels fall apart unless that tensor stays float."""
    import keras

    from kerasseg.layers import ResizeLike

    features = model.get_layer("conv2").output
    channels = features.shape[-1]
    grow = keras.layers.Conv2D(channels + 1, 1, name="outlier")
    x = grow(features)
    kernel = np.zeros((1, 1, channels, channels + 1), "float32")
    kernel[0, 0, :, :channels] = np.eye(channels)
    grow.set_weights([kernel, np.r_[np.zeros(channels), outlier].astype("float32")])
    weights, bias = model.get_layer("classifier").get_weights()
    classifier = keras.layers.Conv2D(NUM_CLASSES, 1, name="classifier")
    x = classifier(x)
    classifier.set_weights([np.concatenate([weights, np.zeros_like(weights[:, :, :1])], 2), bias])
    x = ResizeLike(name="upsample_logits")([x, model.input])
    x = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(model.input, x, name="hostile")


def hostile_everywhere(size=(64, 64), outlier=3000.0, seed=0):
    """A random three-conv model whose every conv after the first reads a
    tensor with an `outlier` channel it ignores (as in `hostile`): int8
    recovers only with most multiply-adds kept in float."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((*size, 3))
    x = keras.layers.Rescaling(1 / 255)(image)
    layers = []
    for index in range(3):
        conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"conv{index}")
        grow = keras.layers.Conv2D(9, 1, name=f"outlier{index}")
        x = grow(conv(x))
        layers.append((conv, grow))
    classifier = keras.layers.Conv2D(NUM_CLASSES, 1, name="classifier")
    x = keras.layers.Activation("linear", dtype="float32", name="logits")(classifier(x))
    model = keras.Model(image, x, name="hostile_everywhere")
    for _, grow in layers:
        grow.set_weights([np.eye(8, 9, dtype="float32")[None, None],
                          np.r_[np.zeros(8), outlier].astype("float32")])
    for reader in [conv for conv, _ in layers[1:]] + [classifier]:
        kernel, bias = reader.get_weights()
        kernel[:, :, 8] = 0.0  # the outlier channel is ignored
        reader.set_weights([kernel, bias])
    return model
