"""Keras model -> `.tflite` (LiteRT) at a fixed input size.

The converter is kept behind this one module: TensorFlow says `tf.lite` will
leave the TF package.
"""

import os
import re
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kerasseg.export import common
from kerasseg.runtime.image import resize_bilinear
from kerasseg.runtime.metadata import write_metadata
from kerasseg.utils import check_choice, check_positive_int

QUANTIZATIONS = (None, "fp16", "dynamic", "int8")
IO_DTYPES = ("float32", "uint8")


class UnsupportedOpsError(ValueError):
    """The graph needs TensorFlow ops that are not TFLite builtins (Flex ops)."""

    def __init__(self, ops, detail=""):
        self.ops = ops
        super().__init__(
            "The model needs TensorFlow ops that are not TFLite builtins: "
            f"{', '.join(ops)}. Replace the layers that use them, or pass "
            "allow_flex_ops=True (the app then needs the Flex delegate, about 10 MB)."
            + (f"\nConverter message:\n{detail}" if detail else "")
        )


def _offending_ops(message):
    """TF op names the converter could not lower to builtins, from its error."""
    flagged = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    if not flagged and "flex" in message.lower():
        flagged = re.findall(r"\btf\.([A-Z]\w*)\b", message)
    return sorted(set(flagged))


def _representative_dataset(data, image_size, channels, steps):
    """A converter `representative_dataset`: one (1, H, W, C) float32 raw-pixel
    image per step, from a tf.data pipeline, an array or an iterable."""
    if data is None:
        raise ValueError(
            "`representative_data` is required for quantization='int8': a tf.data.Dataset "
            "or array of training-like images (raw pixels in [0, 255]), e.g. "
            "kerasseg.data.synthetic_dataset('train', 64, image_size)."
        )

    def generate():
        elements = data.as_numpy_iterator() if isinstance(data, tf.data.Dataset) else data
        count = 0
        for element in elements:
            if isinstance(element, (tuple, list)):
                element = element[0]
            if isinstance(element, dict):
                element = element["image"] if "image" in element else next(iter(element.values()))
            images = np.asarray(element, np.float32)
            images = images[None] if images.ndim == 3 else images
            if images.ndim != 4 or images.shape[-1] != channels:
                raise ValueError(
                    f"`representative_data` must yield images (H, W, {channels}) or batches "
                    f"(N, H, W, {channels}), optionally in (image, label) pairs. "
                    f"Received an element of shape {np.shape(element)}."
                )
            for image in resize_bilinear(images, image_size):
                yield [image[None]]
                count += 1
                if count >= steps:
                    return

    return generate


def to_tflite(
    model,
    path,
    image_size=None,
    quantization=None,
    representative_data=None,
    calibration_steps=100,
    io_dtype="float32",
    output="logits",
    allow_flex_ops=False,
    labels=None,
    palette=None,
):
    """Converts a segmentation model to a `.tflite` file and its metadata sidecar.

    The file takes one image of a fixed size, raw pixels in [0, 255], NHWC
    (normalisation is inside the model). CRF layers are dropped with a
    warning. By default only builtin ops are allowed; a graph that needs Flex
    ops fails with `UnsupportedOpsError` naming them.

    Args:
        model: A Keras segmentation model (one image input).
        path: Output `.tflite` path; the metadata goes to `<path>.json`.
        image_size: (height, width); None takes the model's fixed input size.
        quantization: None (float32), "fp16" (float16 weights), "dynamic"
            (int8 weights, float activations) or "int8" (full integer, needs
            `representative_data`).
        representative_data: Calibration images for "int8": a `tf.data.Dataset`
            (of images or (image, label) pairs, batched or not), an array
            (N, H, W, C) or an iterable; resized to `image_size`.
        calibration_steps: Number of calibration images used.
        io_dtype: "float32" or "uint8" for the input (and, with "int8", the
            quantised output). A uint8 input takes camera pixels directly.
        output: "logits", "probabilities" (softmax in the graph) or "labels"
            (argmax in the graph, int32 class ids: smaller output, but the
            GPU delegate runs ARG_MAX on the CPU).
        allow_flex_ops: Allow TensorFlow (Flex) ops where builtins do not suffice.
        labels: Class names for the metadata.
        palette: (num_classes, 3) RGB colours for the metadata.

    Returns:
        The path of the `.tflite` file.

    Example:
        >>> to_tflite(model, "model.tflite", (256, 256), quantization="int8",
        ...           representative_data=images)
    """
    check_choice("quantization", quantization, QUANTIZATIONS)
    check_choice("io_dtype", io_dtype, IO_DTYPES)
    check_positive_int("calibration_steps", calibration_steps)
    model = common.strip_crf(model)
    image = common.single_input(model)
    image_size = common.fixed_image_size(model, image_size)
    native = common.check_output(model, output)
    common.check_labels(model, labels, palette)
    channels = int(image.shape[-1])

    # A uint8 input of a float model is cast in the graph; with "int8" the
    # converter makes the input itself uint8.
    graph_dtype = tf.uint8 if io_dtype == "uint8" and quantization != "int8" else tf.float32
    spec = tf.TensorSpec((1, *image_size, channels), graph_dtype, name="image")

    def serve(image):
        return common.run_model(model, tf.cast(image, tf.float32), output, native)

    # Keras 3's documented route (ExportArchive -> SavedModel -> converter):
    # the converter freezes the variables; from_concrete_functions would keep
    # them as resource variables, which calibration cannot read.
    with tempfile.TemporaryDirectory() as saved_model_dir:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", serve, input_signature=[spec])
        archive.write_out(saved_model_dir, verbose=False)
        flatbuffer = _convert(
            tf.lite.TFLiteConverter.from_saved_model(saved_model_dir), quantization,
            representative_data, image_size, channels, calibration_steps, io_dtype, output,
            allow_flex_ops,
        )

    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    write_metadata(path, _metadata(model, output, path, image_size, quantization, io_dtype,
                                   labels, palette))
    return path


def _convert(converter, quantization, representative_data, image_size, channels,
             calibration_steps, io_dtype, output, allow_flex_ops):
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = _representative_dataset(
            representative_data, image_size, channels, calibration_steps
        )
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_dtype == "uint8":
            converter.inference_input_type = tf.uint8
            if output != "labels":
                converter.inference_output_type = tf.uint8
    if allow_flex_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    try:
        return converter.convert()
    except Exception as error:  # the converter raises its own (private) error class
        offending = _offending_ops(str(error))
        if offending and not allow_flex_ops:
            raise UnsupportedOpsError(offending, str(error)[-2000:]) from None
        raise


def _metadata(model, output, path, image_size, quantization, io_dtype, labels, palette):
    """The sidecar, with the converted file's tensor shapes, dtypes and quantisation."""
    from kerasseg.runtime.backends import LiteRTBackend

    backend = LiteRTBackend(path)
    metadata = common.build_metadata(
        model, output, [o.name for o in backend.outputs], image_size, quantization or "none",
        labels, palette, input_dtype=io_dtype,
    )
    for entry, info in zip([metadata["input"], *metadata["outputs"]],
                           [*backend.inputs, *backend.outputs]):
        entry.update(shape=list(info.shape), dtype=str(info.dtype),
                     quantization=list(info.quantization) if info.quantization else None)
    return metadata
