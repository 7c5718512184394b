"""Weights from a `.tflite` file into a Keras model.

A `.tflite` file holds each convolution's kernel and bias as constant
tensors, int8 or uint8 with per-tensor or per-channel scales and zero
points, or float. Files exported from TF1 graphs with batch norm folded in
(Google's DeepLab and MobileNet files) keep one kernel and one bias per
convolution; `load_tflite_weights` puts them back into a kerasseg model's
convolution and the batch normalisation that follows it, so that the model
computes what the file computes and then fine-tunes like any other.

Layers are matched by name: a tensor's scope (`MobilenetV2/expanded_conv_3/
depthwise` of `MobilenetV2/expanded_conv_3/depthwise/depthwise_Fold;...`)
goes through a naming function to a Keras layer name. The graph fixes the
rest: which input channels of a convolution fed by a concatenation come
from which branch (the file's concatenation order need not be ours).

Keras is imported only by the functions that touch a model, so that
`kerasseg pretrained` lists the presets without loading TensorFlow.
"""

import dataclasses
import os

import numpy as np

# TFLite TensorType codes -> NumPy dtypes (schema.fbs).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16,
           9: np.int8}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as error:
        raise ImportError(
            "Reading .tflite files needs the ai-edge-litert package: "
            "pip install 'kerasseg[export]'"
        ) from error
    return schema_py_generated


@dataclasses.dataclass
class FileLayer:
    """One convolution of a `.tflite` file, its weights in Keras' layout.

    Attributes:
        scope: the kernel tensor's name scope, e.g. "MobilenetV2/Conv".
        kernel: float32, (kh, kw, in, out) or (kh, kw, in, 1) for depthwise.
        bias: float32 (out,), zeros when the file has none.
        depthwise: whether it is a depthwise convolution.
        concatenated: for a convolution whose input is a concatenation, the
            scope and channel count of the convolution behind each
            concatenated input, in the file's order; else None.
    """

    scope: str
    kernel: np.ndarray
    bias: np.ndarray
    depthwise: bool
    concatenated: list = None


class TFLiteFile:
    """The convolutions of a `.tflite` file (first subgraph), dequantised."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"{self.path}: no such .tflite file")
        with open(self.path, "rb") as f:
            data = f.read()
        if data[4:8] != b"TFL3":
            raise ValueError(f"{self.path}: not a .tflite file (no TFL3 identifier)")
        schema = _schema()
        self._ops = schema.BuiltinOperator
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        self._data = data
        self._buffers = model.buffers
        self._graph = model.subgraphs[0]
        self._codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
        self._producer = {
            op.outputs[0]: op for op in self._graph.operators if len(op.outputs)
        }

    def _name(self, index):
        return self._graph.tensors[index].name.decode()

    def _code(self, op):
        return self._codes[op.opcodeIndex]

    def constant(self, index):
        """Tensor `index` as float32, dequantised; through a DEQUANTIZE op
        (fp16 files) to its constant input."""
        tensor = self._graph.tensors[index]
        buffer = self._buffers[tensor.buffer]
        raw = buffer.data
        if (raw is None or len(raw) == 0) and buffer.offset > 1:
            raw = np.frombuffer(self._data, np.uint8, buffer.size, buffer.offset)
        if raw is None or len(raw) == 0:
            producer = self._producer.get(index)
            if producer is not None and self._code(producer) == self._ops.DEQUANTIZE:
                return self.constant(producer.inputs[0])
            raise ValueError(f"{self.path}: tensor {self._name(index)!r} holds no constant data")
        values = np.frombuffer(np.asarray(raw, np.uint8).tobytes(), _DTYPES[tensor.type])
        values = values.reshape(tensor.shape).astype(np.float32)
        quantization = tensor.quantization
        if tensor.type in (0, 1) or quantization is None or quantization.scale is None:
            return values
        scale = np.asarray(quantization.scale, np.float32)
        zero_point = np.asarray(
            quantization.zeroPoint if quantization.zeroPoint is not None else 0, np.float32
        )
        if scale.size > 1:
            shape = [1] * values.ndim
            shape[quantization.quantizedDimension] = -1
            scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
        return (values - zero_point) * scale

    def _scope(self, index):
        """"MobilenetV2/Conv" of "MobilenetV2/Conv/Conv2D_Fold;MobilenetV2/...":
        the first of the fused names, without its last component (the op)."""
        return self._name(index).split(";")[0].rsplit("/", 1)[0]

    def _branch(self, index):
        """The convolution behind tensor `index`, through weightless ops."""
        op = self._producer.get(index)
        while op is not None and self._code(op) not in (
            self._ops.CONV_2D, self._ops.DEPTHWISE_CONV_2D
        ):
            op = self._producer.get(op.inputs[0])
        return None if op is None else self._scope(op.inputs[1])

    def _convolutions(self):
        return [op for op in self._graph.operators
                if self._code(op) in (self._ops.CONV_2D, self._ops.DEPTHWISE_CONV_2D)]

    def scopes(self):
        """The scopes of the file's convolutions in graph order (nothing dequantised)."""
        return [self._scope(op.inputs[1]) for op in self._convolutions()]

    def layers(self):
        """The file's convolutions in graph order, as `FileLayer`s."""
        found = []
        for op in self._convolutions():
            depthwise = self._code(op) == self._ops.DEPTHWISE_CONV_2D
            kernel = self.constant(op.inputs[1])
            # TFLite: (out, kh, kw, in), and (1, kh, kw, in * multiplier) for
            # depthwise, which `_assign` reshapes to Keras' (kh, kw, in, multiplier).
            kernel = kernel.transpose(1, 2, 3, 0)
            bias = (self.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0
                    else np.zeros(kernel.shape[-1], np.float32))
            concatenated = None
            producer = self._producer.get(op.inputs[0])
            if producer is not None and self._code(producer) == self._ops.CONCATENATION:
                concatenated = [(self._branch(i), int(self._graph.tensors[i].shape[-1]))
                                for i in producer.inputs]
            found.append(FileLayer(self._scope(op.inputs[1]), kernel, bias, depthwise,
                                   concatenated))
        return found


def _producers(model):
    """{id of a layer's output tensor: layer} for the model's layers."""
    found = {}
    for layer in model.layers:
        try:
            found[id(layer.output)] = layer
        except (AttributeError, ValueError):  # shared layers have no single output
            continue
    return found


def _batch_norm_after(model, layer):
    """The BatchNormalization layer fed by `layer`'s output, or None."""
    import keras

    for candidate in model.layers:
        if isinstance(candidate, keras.layers.BatchNormalization):
            if candidate.input is layer.output:
                return candidate
    return None


def _branch_layer(tensor, producers):
    """The convolution behind a Keras tensor, through weightless layers and BN."""
    import keras

    layer = producers.get(id(tensor))
    while layer is not None and not isinstance(
        layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    ):
        inputs = layer.input
        layer = producers.get(id(inputs[0] if isinstance(inputs, (list, tuple)) else inputs))
    return layer


def _concat_order(file_layer, layer, model, naming):
    """Indices of the file kernel's input channels in the Keras layer's order."""
    import keras

    producers = _producers(model)
    concat = producers.get(id(layer.input))
    if not isinstance(concat, keras.layers.Concatenate):
        return None
    starts, offset = {}, 0
    for scope, channels in file_layer.concatenated:
        starts[naming(scope) if scope else None] = (offset, channels)
        offset += channels
    order = []
    for tensor in concat.input:
        branch = _branch_layer(tensor, producers)
        name = branch.name if branch is not None else None
        if name not in starts:
            raise ValueError(
                f"{layer.name!r} concatenates {name!r}, which the file's "
                f"{file_layer.scope!r} does not"
            )
        start, channels = starts[name]
        order.extend(range(start, start + channels))
    return np.asarray(order)


def _unfold_batch_norm(batch_norm, bias):
    """A BN that adds `bias` and is otherwise the identity: mean 0, variance
    1, scale sqrt(1 + epsilon). Fine-tuning with BN frozen keeps it exact;
    in training mode the batch statistics take over."""
    batch_norm.moving_mean.assign(np.zeros_like(bias))
    batch_norm.moving_variance.assign(np.ones_like(bias))
    if batch_norm.scale:
        batch_norm.gamma.assign(np.full_like(bias, np.sqrt(1.0 + batch_norm.epsilon)))
    else:
        raise ValueError(f"{batch_norm.name!r} has no scale to unfold a folded BN into")
    batch_norm.beta.assign(bias)


def _assign(model, layer, file_layer, naming, path):
    kernel = file_layer.kernel
    target = tuple(layer.kernel.shape)
    if file_layer.depthwise and kernel.size == np.prod(target):
        kernel = kernel.reshape(target)
    if kernel.shape != target:
        raise ValueError(
            f"{path}: {file_layer.scope} -> layer {layer.name!r}: the file's kernel has "
            f"shape {kernel.shape}, the model's {target}"
        )
    if file_layer.concatenated:
        order = _concat_order(file_layer, layer, model, naming)
        if order is not None:
            kernel = kernel[:, :, order, :]
    layer.kernel.assign(kernel)
    batch_norm = _batch_norm_after(model, layer)
    if batch_norm is not None:
        _unfold_batch_norm(batch_norm, file_layer.bias)
    elif layer.use_bias:
        layer.bias.assign(file_layer.bias)
    elif np.any(file_layer.bias):
        raise ValueError(
            f"{path}: {file_layer.scope} has a bias; layer {layer.name!r} has neither a bias "
            "nor a batch normalisation to take it"
        )


def load_tflite_weights(model, path, naming, skip=()):
    """Loads the convolutions of the `.tflite` file at `path` into `model`.

    Args:
        model: a Keras model whose convolutions have the file's shapes.
        path: the `.tflite` file (float, fp16, int8 or uint8).
        naming: function from a file scope (e.g. "MobilenetV2/Conv") to the
            model's layer name, or None for a file layer to leave out.
        skip: names of model layers to leave as they are (and not require),
            e.g. a classifier with another class count.

    Raises:
        ValueError: in one line, naming the first file layer whose model
            layer is missing or has another shape, or the first model
            convolution the file does not fill.

    Returns:
        The names of the model layers that received weights.
    """
    import keras

    source = TFLiteFile(path)
    filled = []
    for file_layer in source.layers():
        name = naming(file_layer.scope)
        if name is None or name in skip:
            continue
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ValueError(
                f"{source.path}: {file_layer.scope} -> layer {name!r}, which the model "
                f"{model.name!r} does not have"
            ) from None
        _assign(model, layer, file_layer, naming, source.path)
        filled.append(name)
    for layer in model.layers:
        convolution = isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
        if convolution and layer.name not in filled and layer.name not in skip:
            raise ValueError(
                f"{source.path}: nothing in the file for layer {layer.name!r} of the model "
                f"{model.name!r}"
            )
    return filled
