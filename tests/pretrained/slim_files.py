"""Small `.tflite` files written the way Google's TF1 DeepLab files are: each
convolution's batch norm folded into its kernel and bias, weights float,
uint8 per tensor or int8 per channel, tensors named by TF-slim scopes
("MobilenetV2/expanded_conv_3/depthwise/depthwise_Fold"), and the ASPP
projection fed by a concatenation in the reference's order (image pooling
first, through TILE and QUANTIZE). Only what the importer reads is written:
the files hold no runnable graph.

The names are spelled out here, independently of `kerasseg.pretrained`.
"""

import re

import flatbuffers
import keras
import numpy as np
from ai_edge_litert import schema_py_generated as schema

HEAD_SCOPES = {
    "aspp_conv_0": "aspp0",
    "aspp_pool_conv": "image_pooling",
    "aspp_projection": "concat_projection",
    "classifier": "logits/semantic",
}


def slim_scope(layer_name):
    """TF-slim's scope of a kerasseg MobileNetV2 DeepLab layer."""
    if layer_name in HEAD_SCOPES:
        return HEAD_SCOPES[layer_name]
    if layer_name == "Conv1":
        return "MobilenetV2/Conv"
    if layer_name == "Conv_1":
        return "MobilenetV2/Conv_1"
    block = re.fullmatch(r"block_(\d+)_(expand|depthwise|project)", layer_name)
    if block:
        return f"MobilenetV2/expanded_conv_{block.group(1)}/{block.group(2)}"
    first = re.fullmatch(r"expanded_conv_(depthwise|project)", layer_name)
    return f"MobilenetV2/expanded_conv/{first.group(1)}"


def batch_norm_name(layer_name):
    if layer_name == "Conv1":
        return "bn_Conv1"
    if layer_name == "Conv_1":
        return "Conv_1_bn"
    if layer_name.startswith(("block_", "expanded_conv_")):
        return f"{layer_name}_BN"
    return None if layer_name == "classifier" else f"{layer_name}_bn"


def folded(model, layer):
    """(kernel, bias) of `layer` with its batch norm folded in, float64."""
    kernel = np.asarray(layer.kernel, np.float64)
    bn_name = batch_norm_name(layer.name)
    if bn_name is None:
        return kernel, np.asarray(layer.bias, np.float64)
    gamma, beta, mean, variance = (np.asarray(w, np.float64)
                                   for w in model.get_layer(bn_name).get_weights())
    factor = gamma / np.sqrt(variance + model.get_layer(bn_name).epsilon)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        factor_k = factor.reshape(kernel.shape[2], kernel.shape[3])
        return kernel * factor_k, beta - mean * factor
    return kernel * factor, beta - mean * factor


def to_tflite_layout(kernel, depthwise):
    """Keras (kh, kw, in, out|mult) -> TFLite (out, kh, kw, in) or (1, kh, kw, in*mult)."""
    if depthwise:
        kh, kw, channels, multiplier = kernel.shape
        return kernel.reshape(1, kh, kw, channels * multiplier)
    return kernel.transpose(3, 0, 1, 2)


def quantize(values, mode, axis):
    """(stored array, TensorType, QuantizationParametersT or None) of `values`;
    and the values the file then means (dequantised), float32."""
    values = values.astype(np.float32)
    if mode == "float":
        return values, schema.TensorType.FLOAT32, None, values
    params = schema.QuantizationParametersT()
    if mode == "uint8":
        low, high = min(values.min(), 0.0), max(values.max(), 0.0)
        scale = max((high - low) / 255.0, 1e-8)
        zero_point = int(np.clip(np.round(-low / scale), 0, 255))
        stored = np.clip(np.round(values / scale) + zero_point, 0, 255).astype(np.uint8)
        params.scale, params.zeroPoint = [float(scale)], [zero_point]
        return stored, schema.TensorType.UINT8, params, (stored - np.float32(zero_point)) * \
            np.float32(scale)
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    scale = np.maximum(np.abs(moved).max(axis=1) / 127.0, 1e-8).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = -1
    stored = np.clip(np.round(values / scale.reshape(shape)), -127, 127).astype(np.int8)
    params.scale, params.zeroPoint = scale.tolist(), [0] * scale.size
    params.quantizedDimension = axis
    return stored, schema.TensorType.INT8, params, stored * scale.reshape(shape)


class _FileBuilder:
    def __init__(self):
        self.tensors, self.buffers, self.operators, self.codes = [], [schema.BufferT()], [], []

    def tensor(self, name, shape, dtype=schema.TensorType.FLOAT32, data=None, params=None):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name.encode(), list(shape), dtype
        tensor.quantization = params
        tensor.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buffer)
            tensor.buffer = len(self.buffers) - 1
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def operator(self, code, inputs, output):
        if code not in self.codes:
            self.codes.append(code)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.codes.index(code), inputs, [output]
        self.operators.append(op)

    def finish(self):
        graph = schema.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.operators
        graph.inputs, graph.outputs = [0], [len(self.tensors) - 1]
        model = schema.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [graph], self.buffers
        model.operatorCodes = []
        for code in self.codes:
            operator_code = schema.OperatorCodeT()
            operator_code.builtinCode = code
            operator_code.deprecatedBuiltinCode = min(code, 127)
            model.operatorCodes.append(operator_code)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def write_slim_file(model, path, mode="float", leave_out=()):
    """Writes `model`'s convolutions as a TF1-style folded `.tflite` file.

    Returns {layer name: (file kernel in Keras layout, file bias)}: what the
    file means, dequantised, for the tests to compare with.
    """
    ops = schema.BuiltinOperator
    file = _FileBuilder()
    previous = file.tensor("MobilenetV2/input", (1, 65, 65, 3))
    outputs, meant = {}, {}
    convolutions = [layer for layer in model.layers
                    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    for layer in convolutions:
        if layer.name in leave_out:
            continue
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        kernel, bias = folded(model, layer)
        if layer.name == "aspp_projection":
            # Ours concatenates (aspp0, image pooling); the reference the other way.
            conv_channels = model.get_layer("aspp_conv_0").kernel.shape[-1]
            kernel = np.concatenate(
                [kernel[:, :, conv_channels:], kernel[:, :, :conv_channels]], axis=2
            )
        stored, dtype, params, dequantized = quantize(
            to_tflite_layout(kernel, depthwise), mode, 3 if depthwise else 0
        )
        scope = slim_scope(layer.name)
        suffix = "depthwise_Fold" if depthwise else "Conv2D_Fold"
        weights = file.tensor(f"{scope}/{suffix};{scope}/weights_quant/FakeQuant",
                              stored.shape, dtype, stored, params)
        if mode == "float":
            bias_stored, bias_type, bias_params = bias.astype(np.float32), 0, None
            bias_meant = bias_stored
        else:
            bias_scale = float(np.max(params.scale)) / 64.0
            bias_stored = np.round(bias / bias_scale).astype(np.int32)
            bias_params = schema.QuantizationParametersT()
            bias_params.scale, bias_params.zeroPoint = [bias_scale], [0]
            bias_type, bias_meant = schema.TensorType.INT32, bias_stored * np.float32(bias_scale)
        bias_index = file.tensor(f"{scope}/BatchNorm_Fold/bias", bias.shape, bias_type,
                                 bias_stored, bias_params)
        source = previous
        if layer.name == "aspp_projection":
            tiled = file.tensor("Tile", (1, 5, 5, 1))
            file.operator(ops.TILE, [outputs["aspp_pool_conv"]], tiled)
            requantized = file.tensor("Tile1", (1, 5, 5, 1))
            file.operator(ops.QUANTIZE, [tiled], requantized)
            pool_channels = model.get_layer("aspp_pool_conv").kernel.shape[-1]
            conv_channels = model.get_layer("aspp_conv_0").kernel.shape[-1]
            file.tensors[requantized].shape = [1, 5, 5, pool_channels]
            file.tensors[outputs["aspp_conv_0"]].shape = [1, 5, 5, conv_channels]
            source = file.tensor("concat", (1, 5, 5, pool_channels + conv_channels))
            file.operator(ops.CONCATENATION, [requantized, outputs["aspp_conv_0"]], source)
        output = file.tensor(f"{scope}/Relu6;{scope}/add_fold", (1, 5, 5, kernel.shape[-1]))
        file.operator(ops.DEPTHWISE_CONV_2D if depthwise else ops.CONV_2D,
                      [source, weights, bias_index], output)
        outputs[layer.name], previous = output, output
        file_kernel = dequantized
        if depthwise:
            file_kernel = dequantized.reshape(layer.kernel.shape)
        else:
            file_kernel = dequantized.transpose(1, 2, 3, 0)
        meant[layer.name] = (file_kernel, bias_meant)
    with open(path, "wb") as f:
        f.write(file.finish())
    return meant
