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

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
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
    precision="fp32",
    *,
    calibration_data=None,
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
    max_metric_loss=int8.DEFAULT_MAX_METRIC_LOSS,
    **renamed,
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
        precision: "fp32", "fp16" (float16 weights), "dynamic" (int8
            weights, float activations) or "int8" (full integer, needs
            `calibration_data`). (Formerly `quantization`, with None for
            float32: still accepted, with a DeprecationWarning.)
        calibration_data: Calibration images for "int8": a `tf.data.Dataset`
            (of images or (image, mask) pairs, batched or not), an array
            (N, H, W, C) or an iterable; resized to `image_size`. (Formerly
            `representative_data`.)
        calibration_steps: At most this many images are read from
            `calibration_data`; without `validation_data` a quarter of
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
        min_agreement: For "int8" on unlabelled held-out images: the share of
            their clear-margin pixels whose label must match the Keras
            model's; None skips every check (plain int8).
        validation_data: For "int8": held-out images for the check, in any
            form `calibration_data` takes; with masks ((image, mask) pairs or
            an (images, masks) tuple) the check is in the task's metric
            (`max_metric_loss`). None holds out a quarter of the calibration
            images.
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
        max_metric_loss: For "int8" with labelled `validation_data`: the mIoU
            (IoU for one class) points int8 may lose against the Keras model.

    Returns:
        The path of the `.tflite` file.

    Raises:
        Int8AgreementError: "int8" misses its target before the file would
            be mostly float (under `int8.MIN_COVERAGE` of its multiply-adds
            in int8).

    Example:
        >>> to_tflite(model, "model.tflite", (256, 256), precision="int8",
        ...           calibration_data=images, io_dtype="uint8")
    """
    precision, calibration_data = common.renamed_arguments(
        "to_tflite", renamed, precision, calibration_data)
    check_choice("precision", precision, PRECISIONS)
    check_choice("io_dtype", io_dtype, IO_DTYPES)
    check_positive_int("calibration_steps", calibration_steps)
    settings = int8.check_target(min_agreement, max_metric_loss, output)
    model = common.strip_crf(model)
    image = common.single_input(model)
    image_size = common.fixed_image_size(model, image_size)
    native = common.check_output(model, output)
    common.check_labels(model, labels, palette)
    graph = model if resize_logits else common.without_logits_resize(model, output)
    spec = tf.TensorSpec((1, *image_size, image.shape[-1]),
                         tf.uint8 if io_dtype == "uint8" else tf.float32, name="image")
    images = None
    if precision == "int8":
        images = int8.images(calibration_data, validation_data, image_size,
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
        if precision == "int8":
            route = _Int8Route(model, converter, images.calibration, io_dtype, per_channel,
                               allow_flex_ops, directory)
            flatbuffer, record = int8.check(route, model, images, settings)
        else:
            flatbuffer, record = _convert(converter, precision, allow_flex_ops), None

    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(short_tensor_names(flatbuffer))
    metadata = _metadata(model, output, path, image_size, precision, io_dtype, labels, palette)
    metadata["quantization"] = record or metadata["quantization"]
    write_metadata(path, metadata)
    return path


def _aligned_builder(size):
    """A flatbuffers Builder whose byte vectors start on 16 bytes, as TFLite's
    schema asks of constant buffers (`force_align: 16`); the Python object
    API would align them on 1."""
    import flatbuffers

    class Builder(flatbuffers.Builder):
        def CreateNumpyVector(self, x):
            if x.dtype != np.uint8:
                return super().CreateNumpyVector(x)
            self.StartVector(1, x.size, 16)
            self.head -= x.size
            self.Bytes[self.head:self.head + x.size] = x.tobytes()
            self.vectorNumElems = x.size
            return self.EndVector()

    return Builder(size)


def short_tensor_names(flatbuffer):
    """`flatbuffer` with each tensor named after the first op fused into it.

    The converter names a tensor after every op fused into it, joined by
    ";" ("model/conv/BiasAdd;model/conv/Conv2D;model/bn/..."): 2 % of a
    DeepLabv3 MobileNetV2 0.5 int8 file (16 KB), for names only a debugger reads.
    Names stay unique: where the first op's name is taken, the next ones
    are kept until it is not.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    for graph in model.subgraphs:
        taken = {tensor.name for tensor in graph.tensors if b";" not in tensor.name}
        for tensor in graph.tensors:
            parts = tensor.name.split(b";")
            for count in range(1, len(parts) + 1):
                short = b";".join(parts[:count])
                if short not in taken:
                    break
            taken.add(short)
            tensor.name = short
    builder = _aligned_builder(len(flatbuffer))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _convert(converter, precision, allow_flex_ops):
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
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


class _Int8Route:
    """Full-integer conversion through LiteRT's quantisation debugger, which
    calibrates once and can then quantise again with any nodes left in float;
    `int8.check` holds it to the target.

    A kept unit is a tensor the debugger measured: its producer and all its
    consumers stay float, so the tensor itself is never quantised.
    """

    # Images the debugger's per-layer comparison runs on (its interpreter is
    # TensorFlow's reference one, without XNNPACK).
    DEBUG_IMAGES = 8

    def __init__(self, model, converter, calibration, io_dtype, per_channel, allow_flex_ops,
                 directory):
        dtype = np.uint8 if io_dtype == "uint8" else np.float32
        self.model, self.per_channel, self.directory = model, per_channel, directory

        def dataset(images=calibration):
            return ([np.clip(np.round(image), 0, 255).astype(dtype)[None]
                     if dtype == np.uint8 else image[None]] for image in images)

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        # The converter's only switch for per-tensor weights is this attribute.
        converter._experimental_disable_per_channel = not per_channel
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.SELECT_TF_OPS] if allow_flex_ops else [])
        # fully_quantize: a uint8 input is cast in the graph and the output
        # stays int8; otherwise float32 in and out.
        self.options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"noise_to_signal": _noise_to_signal},
            denylisted_ops=list(FLOAT_OPS), fully_quantize=io_dtype == "uint8")
        with _naming_flex_ops(allow_flex_ops), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self.debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=lambda: dataset(
                    calibration[:self.DEBUG_IMAGES]), debug_options=self.options)
        self.graph = _TensorGraph(self.debugger.calibrated_model)

    def float_layers(self, kept):
        return int8.layer_names(self.graph.nodes(kept), self.model)

    def settings(self, kept):
        return {"float_nodes": len(self.graph.nodes(kept)), "float_ops": list(FLOAT_OPS),
                "per_channel": self.per_channel, "measured_on": measured_on()}

    def coverage(self, flatbuffer):
        return int8_coverage(flatbuffer)

    def quantize(self, kept):
        self.options.denylisted_nodes = self.graph.nodes(kept)
        return self.debugger.get_nondebug_quantized_model()

    def labels(self, flatbuffer, images, threshold):
        path = os.path.join(self.directory, "candidate.tflite")
        with open(path, "wb") as f:
            f.write(flatbuffer)
        return int8.exported_labels(path, images, threshold=threshold)

    def ranked(self):
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


def measured_on():
    """The runtime and CPU the int8 check ran its candidates on."""
    from importlib.metadata import version

    return {"runtime": f"LiteRT {version('ai-edge-litert')} (XNNPACK)",
            **common.cpu_description()}


# Ops with weights: their multiply-adds are what int8 coverage counts.
_WEIGHTED = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1),
             "TRANSPOSE_CONV": (2, 1)}


def int8_coverage(flatbuffer):
    """Share of the multiply-adds of a `.tflite` file's weighted ops (conv,
    depthwise, fully connected, transposed conv) that take int8 inputs.

    A conv's multiply-adds are its output elements times its weights per
    output channel; a transposed conv's, its input elements times its
    weights per input channel.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    graph = model.subgraphs[0]
    names = {getattr(schema.BuiltinOperator, name): name for name in _WEIGHTED}
    total = quantized = 0
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if name is None:
            continue
        data, weights = (graph.tensors[op.inputs[i]] for i in _WEIGHTED[name])
        weight_count = float(np.prod(weights.shape))
        if name == "TRANSPOSE_CONV":
            macs = np.prod(data.shape) * weight_count / weights.shape[-1]
        else:
            output = graph.tensors[op.outputs[0]].shape
            macs = np.prod(output) * weight_count / output[-1]
        total += macs
        if data.type in (schema.TensorType.INT8, schema.TensorType.UINT8):
            quantized += macs
    return float(quantized / total) if total else 1.0


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


def _metadata(model, output, path, image_size, precision, io_dtype, labels, palette):
    """The sidecar, with the converted file's tensor shapes, dtypes and quantisation."""
    from kerasseg.runtime.backends import LiteRTBackend

    backend = LiteRTBackend(path)
    metadata = common.build_metadata(
        model, output, [o.name for o in backend.outputs], image_size,
        "none" if precision == "fp32" else precision,
        labels, palette, input_dtype=io_dtype,
    )
    for entry, info in zip([metadata["input"], *metadata["outputs"]],
                           [*backend.inputs, *backend.outputs]):
        entry.update(shape=list(info.shape), dtype=str(info.dtype),
                     quantization=list(info.quantization) if info.quantization else None)
    return metadata
