"""Keras model -> TensorFlow SavedModel with serving signatures (TF Serving)."""

import os

import keras
import tensorflow as tf

from kerasseg.export import common
from kerasseg.runtime.metadata import write_metadata


def to_saved_model(model, path, output="logits", image_size=None, labels=None, palette=None):
    """Writes a SavedModel whose signatures take images of any size.

    Two signatures share one body: "serving_default" takes uint8 images
    (N, H, W, C), "serve_float32" float32 raw pixels in [0, 255]. The body
    casts, resizes to `image_size` when one is set (or the model has a fixed
    size), runs the model (normalisation is inside it), resizes logits back
    to (H, W) bilinearly, then applies `output`. CRF layers are kept; their
    message passing is a custom op, so a server loading such a SavedModel
    must `import kerasseg.layers.crf` first (TF Serving: build the op into it).

    Args:
        model: A Keras segmentation model (one image input).
        path: Output directory; the metadata goes to `<path>.json`.
        output: "logits", "probabilities" (softmax) or "labels" (argmax,
            int32). Models with several outputs (LPSNet) export "logits":
            every output as it is, unresized.
        image_size: (height, width) the model runs at; None runs every
            image at its own size (the model must accept any size).
        labels: Class names for the metadata.
        palette: (num_classes, 3) RGB colours for the metadata.

    Returns:
        `path`. Load with `tf.saved_model.load(path).signatures["serving_default"]`.

    Example:
        >>> to_saved_model(model, "exported/1", output="labels")
    """
    image = common.single_input(model)
    native = common.check_output(model, output)
    common.check_labels(model, labels, palette)
    if image_size is not None or None not in tuple(image.shape[1:3]):
        image_size = common.fixed_image_size(model, image_size)
    channels = int(image.shape[-1])
    single = len(model.outputs) == 1

    def body(images):
        images = tf.cast(images, tf.float32)
        size = tf.shape(images)[1:3]
        if image_size is not None:
            images = tf.image.resize(images, image_size)
        if not single:
            return common.run_model(model, images, output, native)
        logits = model(images, training=False)
        if image_size is not None:
            # Logits (never probabilities or labels) are what gets resized back.
            logits = tf.image.resize(logits, size)
        return {output: common.head(logits, output, native)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, dtype in (("serving_default", tf.uint8), ("serve_float32", tf.float32)):
        archive.add_endpoint(
            name, body, input_signature=[tf.TensorSpec((None, None, None, channels), dtype,
                                                       name="images")]
        )
    path = os.fspath(path)
    archive.write_out(path, verbose=False)
    names = [output] if single else list(model.output_names)
    metadata = common.build_metadata(model, output, names, image_size, "none", labels, palette,
                                     input_dtype="uint8")
    metadata["input"].update(name="images", shape=[None, None, None, channels])
    metadata["signatures"] = ["serving_default", "serve_float32"]
    write_metadata(path.rstrip("/"), metadata)
    return path
