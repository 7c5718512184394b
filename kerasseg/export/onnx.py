"""Keras model -> ONNX with tf2onnx, laid out for TensorRT.

tf2onnx (1.17) converts a `tf.function` directly, so the graph gets exactly
the names, layout and static shapes we ask for; Keras's own
`model.export(format="onnx")` goes through the same converter but names the
tensors after the Keras layers and has no NCHW option.

The precision lives in the ONNX file itself: TensorRT 11 builds only strongly
typed networks (no FP16/INT8 builder flags, no calibrators), and TensorRT 10
does the same when asked. So "fp16" stores fp16 tensors and "int8" stores
explicit QuantizeLinear/DequantizeLinear (Q/DQ) nodes, both with float32
inputs and outputs, and every TensorRT version builds the same engine.
"""

import contextlib
import copy
import io
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from kerasseg.export import common, int8
from kerasseg.runtime.metadata import PRECISIONS, write_metadata
from kerasseg.utils import check_choice, check_positive_int

# TensorRT 10.x (JetPack 6) and 11.x both parse opset 17.
DEFAULT_OPSET = 17
# Q/DQ goes on the inputs of the weighted layers only: TensorRT fuses those
# Q/DQ pairs into INT8 convolution/GEMM kernels (its Q/DQ placement advice:
# quantize the inputs of weighted layers, not their outputs). Q/DQ around
# Resize, Softmax, pooling or element-wise ops would make TensorRT reformat
# between INT8 and float there and cost accuracy for no speed.
INT8_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Calibration of the int8 Q/DQ graph (benchmarks/int8_calibration.py, 32
# calibration scenes, agreement on 32 unseen ones): the 99.99th percentile of
# each activation beat min-max on all 9 trained models, by 0.01 to 0.28
# points (quickstart model 97.85 -> 98.04%); entropy matched min-max;
# per-tensor weights lost up to 0.3. TensorRT takes symmetric int8 only.
# Weights use 7 of their 8 bits (reduce_range): ONNX Runtime runs int8 Conv
# on x86 as u8 x s8 with VPMADDUBSW, whose pairwise int16 sums saturate on
# AVX2 CPUs without VNNI (255 x 127 x 2 > 32767; 255 x 64 x 2 is not), so
# the same file labelled differently on an AVX2 and an AVX-512 VNNI CPU.
# Measured on an AVX2-only EPYC, 6 parity models (test scenes, ORT fused
# kernels vs the exact Q/DQ arithmetic of an unfused graph): 8-bit weights
# pspnet 97.72 vs 99.16%, fcn8s 98.10 vs 98.86%; 7-bit 99.13 vs 99.08%,
# 98.61 vs 98.65% (benchmarks/int8_calibration.py --saturation).
# Asymmetric (u8) activations saturate worse there (fcn8s 96.23%).
CALIBRATION = {"method": "Percentile", "percentile": 99.99, "per_channel": True,
               "symmetric": True, "reduce_range": True}


def to_onnx(
    model,
    path,
    image_size=None,
    *,
    static_shape=True,
    nchw=False,
    opset=DEFAULT_OPSET,
    output="logits",
    batch_size=1,
    labels=None,
    palette=None,
    precision="fp32",
    calibration_data=None,
    calibration_steps=100,
    min_agreement=int8.DEFAULT_MIN_AGREEMENT,
    validation_data=None,
    max_metric_loss=int8.DEFAULT_MAX_METRIC_LOSS,
    **renamed,
):
    """Converts a segmentation model to ONNX, input "image", output named after
    `output` ("logits", "probabilities" or "labels").

    The input takes raw pixels in [0, 255] (normalisation is inside the
    graph). CRF layers are dropped with a warning. Inputs and outputs stay
    float32 (int32 labels) at every precision; the precision is in the graph,
    ready for a strongly typed TensorRT build (`to_tensorrt`, `trtexec
    --stronglyTyped`).

    Args:
        model: A Keras segmentation model (one image input).
        path: Output `.onnx` path; the metadata goes to `<path>.json`.
        image_size: (height, width); None takes the model's input size.
        static_shape: Fix batch and image size (what TensorRT engines and
            most edge runtimes want); False leaves batch, and height/width
            unless given, dynamic.
        nchw: Take (N, 3, H, W) input and give (N, C, H, W) logits, as
            jetson-inference and most TensorRT code expect; the transposes
            are in the graph, so TensorRT fuses them.
        opset: ONNX opset.
        output: "logits", "probabilities" (softmax) or "labels" (argmax, int32).
        batch_size: Batch size of a static-shape model.
        labels: Class names for the metadata.
        palette: (num_classes, 3) RGB colours for the metadata.
        precision: "fp32"; "fp16" (fp16 weights and activations); or "int8"
            (explicit Q/DQ quantization: symmetric int8 activations and
            per-channel weights on Conv/ConvTranspose/Gemm/MatMul inputs,
            activation scales from the 99.99th percentile of their values
            on `calibration_data`, weights' from their extremes). An int8
            export is held to `min_agreement` as `to_tflite`'s is: the
            weighted layers whose Q/DQ loses most stay float until the
            labels of held-out images agree with Keras, or
            `Int8AgreementError` says how far it got.
        calibration_data: For "int8": raw-pixel images like the ones the
            model will see, NHWC whatever `nchw` is, in any form `to_tflite`
            takes (a `tf.data.Dataset`, an array (N, H, W, C), an iterable);
            resized to the export size. (`representative_data`, `to_tflite`'s
            old name, is accepted with a DeprecationWarning.)
        calibration_steps, min_agreement, validation_data, max_metric_loss:
            The int8 guarantee's images and targets, as `to_tflite` takes
            them (one guarantee, `kerasseg.export.int8`); validation images
            are NHWC whatever `nchw` is.

    Returns:
        The path of the `.onnx` file.

    Raises:
        Int8AgreementError: "int8" misses its target before the file would
            be mostly float.

    Example:
        >>> to_onnx(model, "model.onnx", image_size=(512, 512), nchw=True)
        >>> to_onnx(model, "model_int8.onnx", image_size=(512, 512), nchw=True,
        ...         precision="int8", calibration_data=images)
    """
    precision, calibration_data = common.renamed_arguments(
        "to_onnx", renamed, precision, calibration_data)
    check_positive_int("opset", opset, minimum=13)
    check_positive_int("batch_size", batch_size)
    check_choice("precision", precision, PRECISIONS)
    check_positive_int("calibration_steps", calibration_steps)
    settings = int8.check_target(min_agreement, max_metric_loss, output)
    model = common.strip_crf(model)
    native = common.check_output(model, output)
    common.check_labels(model, labels, palette)
    shape = _input_shape(model, image_size, static_shape, batch_size)
    if precision == "int8":
        images = _int8_images(calibration_data, validation_data, shape, calibration_steps,
                              min_agreement)
    elif calibration_data is not None:
        raise ValueError(
            "`calibration_data` sets int8 scales and is used only with precision='int8'. "
            f"Received: precision={precision!r}"
        )
    model_proto, names = _convert(model, shape, output, native, opset, nchw)
    record = None
    if precision == "fp16":
        model_proto = _to_fp16(model_proto)
    elif precision == "int8":
        route = _Int8Route(model, model_proto, images.calibration, "NCHW" if nchw else "NHWC",
                           shape[0] or 1)
        with tempfile.TemporaryDirectory(prefix="kerasseg_int8_") as directory:
            route.directory = directory
            model_proto, record = int8.check(route, model, images, settings)
    # "none" for fp32, as `to_tflite` writes for an unquantized model.
    mode = "none" if precision == "fp32" else precision
    metadata = common.build_metadata(model, output, names, shape[1:3], mode, labels,
                                     palette, layout="NCHW" if nchw else "NHWC")
    metadata["quantization"] = record or metadata["quantization"]
    metadata["input"]["shape"] = [shape[0], shape[3], shape[1], shape[2]] if nchw else list(shape)
    metadata["opset"] = opset
    return _write(model_proto, path, metadata)


def _input_shape(model, image_size, static_shape, batch_size):
    """The exported input's NHWC shape: fixed, or with a free batch (and size)."""
    channels = common.single_input(model).shape[-1]
    if static_shape:
        return (batch_size, *common.fixed_image_size(model, image_size), channels)
    if image_size is not None:
        image_size = common.fixed_image_size(model, image_size)
    return (None, *(image_size or model.inputs[0].shape[1:3]), channels)


def _convert(model, shape, output, native, opset, nchw):
    """(ONNX model proto, output names) of `model` through tf2onnx."""
    import tf2onnx

    spec = (tf.TensorSpec(shape, tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def serve(image):
        return common.run_model(model, image, output, native)

    structured = serve.get_concrete_function().structured_outputs
    names = list(structured)
    rank4 = [name for name in names if structured[name].shape.rank == 4]
    model_proto, _ = tf2onnx.convert.from_function(
        serve,
        input_signature=spec,
        opset=opset,
        inputs_as_nchw=["image"] if nchw else None,
        outputs_as_nchw=rank4 if nchw else None,
    )
    return model_proto, names


def _write(model_proto, path, metadata):
    """Writes the `.onnx` (with a copy of the metadata inside, for tools that
    see only the file) and its sidecar; returns the path."""
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = "kerasseg_metadata", json.dumps(metadata)
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    write_metadata(path, metadata)
    return path


def _int8_images(data, validation, shape, steps, min_agreement):
    """`int8.images` at the export size (that of the first image when the
    export's size is free), with at least one batch to calibrate on."""
    size = shape[1:3]
    if None in size:
        size = int8.collect_images(data, None, shape[3], 1, "calibration_data").shape[1:3]
    images = int8.images(data, validation, tuple(size), shape[3], steps, min_agreement)
    batch = shape[0] or 1
    if len(images.calibration) < batch:
        raise ValueError(
            f"`calibration_data` must hold at least batch_size={batch} images. "
            f"Received {len(images.calibration)}."
        )
    return images


def _to_fp16(model_proto):
    """fp16 weights and activations, float32 inputs and outputs.

    The converter keeps what must stay float32 (Resize scales) and leaves
    integer tensors (shapes, argmax) alone; it appends the input casts at the
    end of the node list, so the graph is sorted again afterwards.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model_proto = convert_float_to_float16(model_proto, keep_io_types=True)
    OnnxModel(model_proto).topological_sort()
    return model_proto


def _to_int8(model_proto, images, batch, exclude=(), cache=None, calibration=None):
    """Explicit Q/DQ quantization, in the form TensorRT accepts: int8 with zero
    point 0 (symmetric), per-channel weights, float bias, Q/DQ pairs on the
    float weights (TensorRT folds them into its own int8 weights). Nodes in
    `exclude` stay float; `cache` is a calibration cache file (calibration
    runs once, later calls reuse the ranges); `calibration` overrides
    entries of CALIBRATION (for measurements)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        """Feeds `images` (in the ONNX input's layout) `batch` at a time."""

        def __init__(self):
            name, usable = model_proto.graph.input[0].name, len(images) // batch * batch
            self.feeds = iter({name: np.ascontiguousarray(images[i:i + batch])}
                              for i in range(0, usable, batch))

        def get_next(self):
            return next(self.feeds, None)

    settings = {**CALIBRATION, **(calibration or {})}
    # The calibrators print their progress to stdout.
    with tempfile.TemporaryDirectory(prefix="kerasseg_int8_") as directory, \
            contextlib.redirect_stdout(io.StringIO()):
        quantized = os.path.join(directory, "int8.onnx")
        quantize_static(
            copy.deepcopy(model_proto),  # it moves the weights of what it is given to a file
            quantized,
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(INT8_OP_TYPES),
            nodes_to_exclude=list(exclude),
            calibration_cache_path=cache,
            per_channel=settings["per_channel"],
            reduce_range=settings["reduce_range"],
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, settings["method"]),
            extra_options={
                "ActivationSymmetric": settings["symmetric"],
                "WeightSymmetric": True,
                "CalibPercentile": settings["percentile"],
                "AddQDQPairToWeight": True,
                # TensorRT has no int32 DequantizeLinear for a quantized bias.
                "QuantizeBias": False,
                "OpTypesToExcludeOutputQuantization": list(INT8_OP_TYPES),
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            },
        )
        return onnx.load(quantized)


def measured_on():
    """The runtime and CPU the int8 check ran its candidates on, and why the
    result holds on other x86 CPUs."""
    import onnxruntime

    return {"runtime": f"ONNX Runtime {onnxruntime.__version__} (CPUExecutionProvider)",
            **common.cpu_description(),
            "kernels": "7-bit weights (reduce_range): integer results are the same with or "
                       "without VNNI (no 16-bit saturation on AVX2)"}


class _Int8Route:
    """`_to_int8` for `int8.check`: a kept unit is a weighted node (Conv,
    Gemm, ...) left out of the Q/DQ quantization, ranked by the
    noise-to-signal ratio of its int8 input plus its int8 weights, measured
    in the fully quantized graph."""

    # Calibration images the per-node comparison runs on.
    DEBUG_IMAGES = 8

    def __init__(self, model, proto, calibration, layout, batch):
        self.model, self.proto, self.layout, self.batch = model, proto, layout, batch
        self.calibration = calibration.transpose(0, 3, 1, 2) if layout == "NCHW" else (
            calibration)
        self.macs = _node_macs(proto, (batch, *self.calibration.shape[1:]))
        self.directory = None  # set by the caller: where candidates are written

    def quantize(self, kept):
        cache = os.path.join(self.directory, "calibration.json")
        quantized = _to_int8(self.proto, self.calibration, self.batch, kept, cache)
        if not kept:
            self.quantized = quantized  # the fully quantized graph, for `ranked`
        return quantized

    def labels(self, proto, images, threshold):
        path = os.path.join(self.directory, "candidate.onnx")
        with open(path, "wb") as f:
            f.write(proto.SerializeToString())
        return int8.exported_labels(path, images, self.layout, threshold)

    def coverage(self, proto):
        producers = {out: node.op_type for node in proto.graph.node for out in node.output}
        quantized = sum(self.macs.get(node.name, 0) for node in proto.graph.node
                        if node.op_type in INT8_OP_TYPES
                        and producers.get(node.input[0]) == "DequantizeLinear")
        total = sum(self.macs.values())
        return float(quantized / total) if total else 1.0

    def float_layers(self, kept):
        # tf2onnx names some convolutions "Conv__<n>": their weights keep the layer's name.
        nodes = {node.name: node for node in self.proto.graph.node}
        return int8.layer_names([";".join([name, *nodes[name].input[1:2]]) for name in kept],
                                self.model)

    def settings(self, kept):
        return {"float_nodes": len(kept), "calibration": dict(CALIBRATION),
                "measured_on": measured_on()}

    def ranked(self):
        """Quantized nodes, largest input + weight noise-to-signal ratio first."""
        pairs = _qdq_pairs(self.quantized)
        activations = [name for (exact, rounded, _), _ in pairs.values()
                       for name in (exact, rounded)]
        weights = [name for _, (exact, rounded, _) in pairs.values() for name in (exact, rounded)]
        runs = _run_with_outputs(self.quantized, self.calibration[:self.DEBUG_IMAGES],
                                 self.batch, activations + weights)
        # Activations over every run; weights (the same in each run) once.
        values = {**{name: np.concatenate(runs[name]) for name in activations},
                  **{name: runs[name][0] for name in weights}}
        scores = {node: sum(int8.noise_to_signal(np.moveaxis(values[exact], axis, -1),
                                                 np.moveaxis(values[rounded], axis, -1))
                            for exact, rounded, axis in pair)
                  for node, pair in pairs.items()}
        return sorted(scores, key=lambda node: -scores[node])


def _node_macs(proto, input_shape):
    """{weighted node: multiply-adds} of a float graph fed `input_shape`:
    output elements times weights per output channel (ConvTranspose: input
    elements times weights per input channel; Gemm/MatMul: output elements
    times the shared dimension)."""
    import onnx

    proto = copy.deepcopy(proto)
    for dim, size in zip(proto.graph.input[0].type.tensor_type.shape.dim, input_shape):
        dim.dim_value = int(size)
    proto = onnx.shape_inference.infer_shapes(proto)
    shapes = {info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
              for info in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
    shapes.update({t.name: list(t.dims) for t in proto.graph.initializer})
    macs = {}
    for node in proto.graph.node:
        if node.op_type not in INT8_OP_TYPES:
            continue
        data, weights = (shapes.get(name) for name in node.input[:2])
        output = shapes.get(node.output[0])
        if not data or not weights or not output or 0 in data + weights + output:
            continue
        if node.op_type == "Conv":
            macs[node.name] = int(np.prod(output)) * int(np.prod(weights[1:]))
        elif node.op_type == "ConvTranspose":
            macs[node.name] = int(np.prod(data)) * int(np.prod(weights[1:]))
        else:
            macs[node.name] = int(np.prod(output)) * data[-1]
    return macs


def _qdq_pairs(proto):
    """{weighted node: [(float input, its Q/DQ value, channel axis), (float
    weight, its Q/DQ value, channel axis)]} for each quantized node of `proto`.

    The activation's channel axis is 1 for convolutions (NCHW inside the
    graph), the last otherwise; the weight's is its DequantizeLinear's axis.
    """
    producer = {out: node for node in proto.graph.node for out in node.output}
    pairs = {}
    for node in proto.graph.node:
        if node.op_type not in INT8_OP_TYPES:
            continue
        pair = []
        for position, name in enumerate(node.input[:2]):
            dequantize = producer.get(name)
            quantize = producer.get(dequantize.input[0]) if dequantize is not None and (
                dequantize.op_type == "DequantizeLinear") else None
            if quantize is None or quantize.op_type != "QuantizeLinear":
                break
            axis = 1 if node.op_type.startswith("Conv") else -1
            if position:
                axis = next((a.i for a in dequantize.attribute if a.name == "axis"), 1)
            pair.append((quantize.input[0], name, axis))
        if len(pair) == 2:
            pairs[node.name] = pair
    return pairs


def _run_with_outputs(proto, images, batch, names):
    """{name: [value per run]} of the tensors `names` of `proto` on `images`
    (`batch` at a time); an initializer has one value."""
    import onnx
    import onnxruntime

    proto = copy.deepcopy(proto)
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    wanted = [n for n in dict.fromkeys(names) if n not in initializers]
    existing = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in wanted if n not in existing)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    feed = proto.graph.input[0].name
    runs = [session.run(wanted, {feed: images[i:i + batch]})
            for i in range(0, len(images) // batch * batch, batch)]
    values = {n: [run[k] for run in runs] for k, n in enumerate(wanted)}
    return {**{n: [initializers[n]] for n in names if n in initializers}, **values}
