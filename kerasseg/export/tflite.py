"""Keras model -> `.tflite` (LiteRT) at a fixed input size.

The converter is kept behind this one module: TensorFlow says `tf.lite` will
leave the TF package.
"""

import contextlib
import os
import re
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from kerasseg.export import common, int8
from kerasseg.runtime.metadata import write_metadata
from kerasseg.utils import check_choice, check_positive_int

QUANTIZATIONS = (None, "fp16", "dynamic", "int8")
IO_DTYPES = ("float32", "uint8")
# Ops an int8 export keeps in float for speed: LiteRT's XNNPACK delegate runs
# them only in float, and the builtin int8 kernel is slower than the float
# one with its QUANTIZE/DEQUANTIZE (HARD_SWISH, LR-ASPP MobileNetV3-Large at
# 512x512: 43.7 ms of 65.5 in int8; 1.1 ms in float, plus 1.6 ms of
# (de)quantisation, bringing int8 from 0.8x to 2.2x the float32 speed).
FLOAT_OPS = ("HARD_SWISH",)


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
    min_agreement=int8.DEFAULT_MIN_AGREEMENT,
    validation_data=None,
    resize_logits=True,
    per_channel=True,
):
    """Converts a segmentation model to a `.tflite` file and its metadata sidecar.

    The file takes one image of a fixed size, raw pixels in [0, 255], NHWC
    (normalisation is inside the model). CRF layers are dropped with a
    warning. By default only builtin ops are allowed; a graph that needs Flex
    ops fails with `UnsupportedOpsError` naming them.

    An "int8" export is checked against the Keras model: if the labels of
    fewer than `min_agreement` of the pixels of held-out images agree, the
    layers whose int8 tensors lose most (ranked by LiteRT's quantisation
    debugger, then by the agreement each reaches alone in float) stay in
    float until they do, or `Int8AgreementError` says how far it got. The
    sidecar records the agreement and the float layers.

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
        calibration_steps: At most this many images are read from
            `representative_data`; without `validation_data` a quarter of
            them are held out for the agreement check.
        io_dtype: "float32" or "uint8" input. A uint8 input takes camera
            pixels directly (cast to float in the graph); with "int8" it also
            makes the output the graph's own int8 tensor (dequantise with its
            scale and zero point), float32 otherwise.
        output: "logits", "probabilities" (softmax in the graph) or "labels"
            (argmax in the graph, int32 class ids: smaller output, but the
            GPU delegate runs ARG_MAX on the CPU).
        allow_flex_ops: Allow TensorFlow (Flex) ops where builtins do not suffice.
        labels: Class names for the metadata.
        palette: (num_classes, 3) RGB colours for the metadata.
        min_agreement: For "int8": the share of held-out pixels whose label
            must match the Keras model's; None skips the check.
        validation_data: For "int8": held-out images for the check, in any
            form `representative_data` takes; None holds out a quarter of the
            calibration images.
        resize_logits: False leaves the final bilinear resize of the logits
            to the runtime: the file outputs the classifier's logits at the
            network's output stride (`Segmenter` resizes them to the image,
            as the graph would). Needs output="logits" and a model that ends
            in that resize; faster, most of all in int8.
        per_channel: For "int8": one weight scale per output channel (True)
            or per tensor (False). The file stores a float32 scale and an
            int64 zero point for each scale, 12 bytes a channel: per tensor
            saves 0.33 MB on DeepLabv3 MobileNetV2 (Google's size), and the
            agreement check applies as usual.

    Returns:
        The path of the `.tflite` file.

    Raises:
        Int8AgreementError: "int8" stays under `min_agreement` with every
            candidate layer kept in float.

    Example:
        >>> to_tflite(model, "model.tflite", (256, 256), quantization="int8",
        ...           representative_data=images, io_dtype="uint8")
    """
    check_choice("quantization", quantization, QUANTIZATIONS)
    check_choice("io_dtype", io_dtype, IO_DTYPES)
    check_positive_int("calibration_steps", calibration_steps)
    int8.check_min_agreement(min_agreement)
    model = common.strip_crf(model)
    image = common.single_input(model)
    image_size = common.fixed_image_size(model, image_size)
    native = common.check_output(model, output)
    common.check_labels(model, labels, palette)
    graph = model if resize_logits else common.without_logits_resize(model, output)
    spec = tf.TensorSpec((1, *image_size, image.shape[-1]),
                         tf.uint8 if io_dtype == "uint8" else tf.float32, name="image")
    images = _int8_images(quantization, representative_data, validation_data, image_size,
                          int(image.shape[-1]), calibration_steps, min_agreement)

    def serve(image):
        return common.run_model(graph, tf.cast(image, tf.float32), output, native)

    # Keras 3's documented route (ExportArchive -> SavedModel -> converter):
    # the converter freezes the variables; from_concrete_functions would keep
    # them as resource variables, which calibration cannot read.
    with tempfile.TemporaryDirectory() as directory:
        archive = keras.export.ExportArchive()
        archive.track(graph)
        archive.add_endpoint("serving_default", serve, input_signature=[spec])
        archive.write_out(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        if quantization == "int8":
            check = _Int8Check(model, output, io_dtype, min_agreement, per_channel, directory)
            flatbuffer, record = check.convert(converter, *images, allow_flex_ops)
        else:
            flatbuffer, record = _convert(converter, quantization, allow_flex_ops), None

    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    metadata = _metadata(model, output, path, image_size, quantization, io_dtype, labels, palette)
    metadata["quantization"] = record or metadata["quantization"]
    write_metadata(path, metadata)
    return path


def _int8_images(quantization, data, validation, image_size, channels, steps, min_agreement):
    """(calibration, held-out) raw-pixel images for "int8"; (None, None) otherwise."""
    if quantization != "int8":
        return None, None
    if data is None:
        raise ValueError(
            "`representative_data` is required for quantization='int8': a tf.data.Dataset "
            "or array of training-like images (raw pixels in [0, 255]), e.g. "
            "kerasseg.data.synthetic_dataset('train', 64, image_size)."
        )
    images = int8.collect_images(data, image_size, channels, steps, "representative_data")
    if validation is not None:
        validation = int8.collect_images(validation, image_size, channels, 10**9,
                                         "validation_data")
    return int8.split_held_out(images, validation, min_agreement)


def _convert(converter, quantization, allow_flex_ops):
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if allow_flex_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    with _naming_flex_ops(allow_flex_ops):
        return converter.convert()


@contextlib.contextmanager
def _naming_flex_ops(allow_flex_ops):
    """Turns the converter's error about non-builtin ops into `UnsupportedOpsError`."""
    try:
        yield
    except Exception as error:  # the converter raises its own (private) error class
        offending = _offending_ops(str(error))
        if offending and not allow_flex_ops:
            raise UnsupportedOpsError(offending, str(error)[-2000:]) from None
        raise


def _noise_to_signal(float_values, quantized, scale, zero_point):
    """A QuantizationDebugger layer metric: the int8 tensor against its float twin."""
    return int8.noise_to_signal(float_values, (quantized.astype(np.float32) - zero_point) * scale)


class _Int8Check:
    """Full-integer conversion through LiteRT's quantisation debugger, which
    calibrates once and can then quantise again with any nodes left in float,
    held to `min_agreement` by `int8.guarantee`.

    A kept unit is a tensor the debugger measured: its producer and all its
    consumers stay float, so the tensor itself is never quantised.
    """

    # Images the debugger's per-layer comparison runs on (its interpreter is
    # TensorFlow's reference one, without XNNPACK).
    DEBUG_IMAGES = 8

    def __init__(self, model, output, io_dtype, min_agreement, per_channel, directory):
        self.model, self.io_dtype, self.min_agreement = model, io_dtype, min_agreement
        self.per_channel = per_channel
        self.threshold = 0.5 if output == "probabilities" else 0.0
        self.directory = directory

    def convert(self, converter, calibration, held_out, allow_flex_ops):
        dtype = np.uint8 if self.io_dtype == "uint8" else np.float32

        def dataset(images=calibration):
            return ([np.clip(np.round(image), 0, 255).astype(dtype)[None]
                     if dtype == np.uint8 else image[None]] for image in images)

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        # The converter's only switch for per-tensor weights is this attribute.
        converter._experimental_disable_per_channel = not self.per_channel
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.SELECT_TF_OPS] if allow_flex_ops else [])
        # fully_quantize: a uint8 input is cast in the graph and the output
        # stays int8; otherwise float32 in and out.
        self.options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"noise_to_signal": _noise_to_signal},
            denylisted_ops=list(FLOAT_OPS), fully_quantize=self.io_dtype == "uint8")
        with _naming_flex_ops(allow_flex_ops), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self.debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=lambda: dataset(
                    calibration[:self.DEBUG_IMAGES]), debug_options=self.options)
        self.graph = _TensorGraph(self.debugger.calibrated_model)
        reference = int8.reference_labels(self.model, held_out, self.threshold)
        outcome = int8.guarantee(self._quantize, lambda flatbuffer: self._labels(
            flatbuffer, held_out), reference, self._ranked, self.min_agreement)
        nodes = self.graph.nodes(outcome.kept)
        record = int8.metadata_record(
            outcome, self.min_agreement, len(calibration), len(held_out),
            int8.layer_names(nodes, self.model),
            {"float_nodes": len(nodes), "float_ops": list(FLOAT_OPS),
             "per_channel": self.per_channel})
        return outcome.artifact, record

    def _quantize(self, kept):
        self.options.denylisted_nodes = self.graph.nodes(kept)
        return self.debugger.get_nondebug_quantized_model()

    def _labels(self, flatbuffer, images):
        path = os.path.join(self.directory, "candidate.tflite")
        with open(path, "wb") as f:
            f.write(flatbuffer)
        return int8.exported_labels(path, images, threshold=self.threshold)

    def _ranked(self):
        """Measured tensors, largest noise-to-signal ratio first."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.debugger.run()
        scores = {}
        for key, metrics in self.debugger.layer_statistics.items():
            name = self.graph.tensor_name(key)
            if name is not None:
                scores[name] = max(scores.get(name, 0.0), metrics["noise_to_signal"])
        return sorted(scores, key=lambda name: -scores[name])


class _TensorGraph:
    """Producer and consumer op outputs by tensor name in a `.tflite` flatbuffer
    (the names `QuantizationDebugOptions.denylisted_nodes` take)."""

    def __init__(self, flatbuffer):
        from ai_edge_litert import schema_py_generated as schema

        graph = schema.ModelT.InitFromPackedBuf(flatbuffer, 0).subgraphs[0]
        names = [tensor.name.decode() for tensor in graph.tensors]
        self.outputs = {names[op.outputs[0]] for op in graph.operators}
        self.consumers = {}
        for op in graph.operators:
            for index in op.inputs:
                if index >= 0:
                    self.consumers.setdefault(names[index], []).append(names[op.outputs[0]])

    def tensor_name(self, key):
        """The op output a debugger statistic ("NumericVerify/<name>:<index>",
        the name sometimes with a "1" appended) is about; None if unknown."""
        name = key.split("/", 1)[-1].rsplit(":", 1)[0]
        for candidate in (name, name[:-1]):
            if candidate in self.outputs:
                return candidate
        return None

    def nodes(self, tensors):
        """The nodes to denylist so that `tensors` stay float: producers and consumers."""
        nodes = []
        for tensor in tensors:
            for node in [tensor, *self.consumers.get(tensor, [])]:
                if node not in nodes:
                    nodes.append(node)
        return nodes


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
