"""What every exporter shares: CRF stripping, the output head (logits,
probabilities or labels) and the metadata sidecar built from the model."""

import warnings

import keras
import numpy as np
import tensorflow as tf

from kerasseg.inference import model_output_kind
from kerasseg.utils import check_choice
from kerasseg.version import __version__

OUTPUTS = ("logits", "probabilities", "labels")
# Layers that refine logits after the network and have no builtin-op lowering.
CRF_LAYERS = ("DenseCRF",)


def _is_crf(layer):
    return type(layer).__name__ in CRF_LAYERS


def strip_crf(model, warn=True):
    """Returns `model` without its CRF layers: each CRF is replaced by the
    logits it refines. Other layers (and their weights) are shared.

    Args:
        model: A functional Keras model, e.g. from `kerasseg.with_crf`.
        warn: Emit a warning naming the dropped layers.

    Returns:
        `model` itself when it has no CRF, otherwise a new functional model.

    Example:
        >>> plain = strip_crf(kerasseg.with_crf(model))
    """
    crf_names = [layer.name for layer in model.layers if _is_crf(layer)]
    if not crf_names:
        return model
    if warn:
        warnings.warn(
            f"Dropping CRF layer(s) {crf_names} from the export: TFLite and ONNX have no "
            "builtin dense CRF, so the exported model outputs the logits the CRF would "
            "refine. Use to_saved_model to keep the CRF.",
            stacklevel=3,
        )

    def call(layer, *args, **kwargs):
        if _is_crf(layer):
            inputs = args[0]
            return inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return layer(*args, **kwargs)

    stripped = keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call
    )
    # An input only the CRF used (a separate guidance image) is no longer needed.
    used = [t for t in stripped.inputs if _feeds_outputs(stripped, t)]
    if len(used) != len(stripped.inputs):
        stripped = keras.Model(used, stripped.outputs, name=stripped.name)
    return stripped


def _feeds_outputs(model, tensor):
    try:
        keras.Model(tensor, model.outputs)
    except ValueError:
        return False
    return True


def check_output(model, output):
    """Validates `output` for `model`; returns the model's own output kind."""
    check_choice("output", output, OUTPUTS)
    native = model_output_kind(model)
    if len(model.outputs) > 1 and output != "logits":
        raise ValueError(
            f"`output` must be 'logits' for a model with several outputs "
            f"({model.output_names}); they are exported as they are. Received: output={output!r}"
        )
    if native == "probabilities" and output == "logits":
        raise ValueError(
            "This model ends in an activation, so it has no logits to export; use "
            "output='probabilities' or 'labels', or build it with activation=None. "
            "Received: output='logits'"
        )
    return native


def run_model(model, images, output, native):
    """Calls `model` and returns {name: tensor}: {output: logits, probabilities
    or labels} for one output, the model's own named outputs otherwise."""
    outputs = model(images, training=False)
    if isinstance(outputs, dict):
        return dict(outputs)
    outputs = tf.nest.flatten(outputs)
    if len(outputs) > 1:
        return dict(zip(model.output_names, outputs))
    return {output: head(outputs[0], output, native)}


def head(logits, output, native):
    """Applies the requested output kind to a single-output model's tensor.

    A one-channel output is a foreground score: its probability is the
    sigmoid of the logit, its label 1 where that probability passes 0.5.
    """
    if output == native:
        return logits
    if logits.shape[-1] == 1:
        if output == "labels":
            threshold = 0.0 if native == "logits" else 0.5
            return tf.cast(logits[..., 0] > threshold, tf.int32)
        return tf.sigmoid(logits)
    if output == "labels":
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.nn.softmax(logits, axis=-1)


# The builders' head: classifier -> "upsample_logits" (ResizeLike to the input) -> "logits".
LOGITS_RESIZE = "upsample_logits"


def without_logits_resize(model, output="logits"):
    """`model` without its final bilinear resize of the logits to the input
    size: a model sharing its layers that outputs the classifier's logits at
    the network's output stride (the runtime resizes them).

    Raises:
        ValueError: `output` is not "logits", or the model does not end in
            that resize (e.g. FCN's learned upsampling, LPSNet's outputs).
    """
    if output != "logits":
        raise ValueError(
            "Leaving the logits resize to the runtime (resize_logits=False) needs "
            f"output='logits': {output} at low resolution would not resize into the same "
            f"labels. Received: output={output!r}"
        )
    names = [layer.name for layer in model.layers]
    last = model.get_layer("logits") if "logits" in names else None
    if (LOGITS_RESIZE not in names or last is None or len(model.outputs) != 1
            or last.output is not model.outputs[0]
            or last.input is not model.get_layer(LOGITS_RESIZE).output):
        raise ValueError(
            f"resize_logits=False needs a model whose last layers are the bilinear "
            f"'{LOGITS_RESIZE}' resize and the 'logits' activation, as the kerasseg builders' "
            f"heads; model {model.name!r} does not end that way."
        )
    logits = model.get_layer(LOGITS_RESIZE).input[0]
    # A new float32 "logits" layer: calling the model's own would give it a second node.
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(model.inputs, logits, name=model.name)


def fixed_image_size(model, image_size, argument="image_size"):
    """(height, width) to export at: `image_size`, else the model's static input size."""
    if image_size is None:
        image_size = tuple(model.inputs[0].shape[1:3])
        if None in image_size:
            raise ValueError(
                f"`{argument}` is required: this model takes any input size and the export "
                f"needs a fixed one, e.g. {argument}=(512, 512). Received: {argument}=None"
            )
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size)
    ):
        raise ValueError(
            f"`{argument}` must be (height, width) with positive integers. "
            f"Received: {argument}={image_size!r}"
        )
    model_size = tuple(model.inputs[0].shape[1:3])
    for want, have in zip(image_size, model_size):
        if have is not None and want != have:
            raise ValueError(
                f"`{argument}` must match the model's fixed input size {model_size}. "
                f"Received: {argument}={tuple(image_size)!r}"
            )
    return tuple(image_size)


def single_input(model):
    if len(model.inputs) != 1:
        raise ValueError(
            f"Exporters take a model with one image input; this one has {len(model.inputs)} "
            f"({[t.name for t in model.inputs]})."
        )
    return model.inputs[0]


def _normalisation(model):
    """Describes the model's in-graph `Preprocess` layer (the runtime feeds raw pixels)."""
    from kerasseg.layers import Preprocess
    from kerasseg.layers.preprocessing import NORMALIZATIONS

    for layer in model.layers:
        if isinstance(layer, Preprocess):
            order, mean, std = NORMALIZATIONS[layer.mode]
            return {
                "inside_model": True,
                "mode": layer.mode,
                "channel_order": "BGR" if order == (2, 1, 0) else "RGB",
                "mean": list(mean),
                "std": list(std),
            }
    return {"inside_model": False}


def check_labels(model, labels=None, palette=None):
    """Validates class names and colours against the model; returns JSON-ready lists."""
    num_classes = int(model.outputs[0].shape[-1]) if len(model.outputs) == 1 else None
    if labels is not None:
        labels = [str(label) for label in labels]
        if num_classes is not None and len(labels) != num_classes:
            raise ValueError(
                f"`labels` must have one name per class ({num_classes}). "
                f"Received {len(labels)} labels."
            )
    if palette is not None:
        palette = np.asarray(palette)
        if palette.ndim != 2 or palette.shape[1] != 3:
            raise ValueError(
                f"`palette` must be (num_classes, 3) RGB colours. Received shape {palette.shape}."
            )
        palette = palette.astype(int).tolist()
    return labels, palette


def build_metadata(model, output, names, image_size, quantization="none", labels=None,
                   palette=None, *, layout="NHWC", input_dtype="float32"):
    """The sidecar dict every exporter writes (see `kerasseg.runtime.metadata`)."""
    num_classes = int(model.outputs[0].shape[-1]) if len(model.outputs) == 1 else None
    labels, palette = check_labels(model, labels, palette)
    channels = int(model.inputs[0].shape[-1])
    height, width = image_size if image_size else (None, None)
    return {
        "kerasseg_version": __version__,
        "model_name": model.name,
        "num_classes": num_classes,
        "labels": labels,
        "palette": palette,
        "input": {
            "name": "image",
            "layout": layout,
            "shape": [1, channels, height, width] if layout == "NCHW"
            else [1, height, width, channels],
            "dtype": input_dtype,
            "pixel_range": [0, 255],
            "normalisation": _normalisation(model),
            "resize": "bilinear, half-pixel centres; logits resized back to the image size",
        },
        "outputs": [
            {"name": name, "kind": output if len(model.outputs) == 1 else "raw", "layout": layout}
            for name in names
        ],
        "quantization": {"mode": quantization},
    }


# Instruction sets that change which int8 and fp16 kernels a CPU runtime picks.
ISA_FLAGS = ("sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
             "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "asimd", "asimddp", "i8mm")


def cpu_description():
    """{"cpu": model name, "isa": the ISA_FLAGS this CPU has} from /proc/cpuinfo
    (Linux), else what `platform` knows; where an int8 measurement ran."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model name", "Hardware") and value.strip():
                    name = value.strip()
                elif key in ("flags", "Features"):
                    flags |= set(value.split())
    except OSError:
        pass
    return {"cpu": name, "machine": platform.machine(),
            "isa": [flag for flag in ISA_FLAGS if flag in flags]}


# Argument names every exporter once used differently -> the one name now used.
RENAMED = {"quantization": "precision", "representative_data": "calibration_data"}


def renamed_arguments(function, renamed, precision, calibration_data):
    """(precision, calibration_data) with the old names in `renamed` (the
    exporter's **kwargs) mapped to the new ones, each with a
    DeprecationWarning; a None precision (the old float32) is "fp32".

    Raises:
        TypeError: an unknown keyword, or an old name given with its new one.
    """
    unknown = sorted(set(renamed) - set(RENAMED))
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
    values = {"precision": precision, "calibration_data": calibration_data}
    for old, value in renamed.items():
        new = RENAMED[old]
        warnings.warn(f"{function}(): `{old}` is deprecated; use `{new}` (same values; "
                      "float32 is 'fp32').", DeprecationWarning, stacklevel=3)
        given = values[new] is not None and not (new == "precision" and values[new] == "fp32")
        if given:
            raise TypeError(f"{function}() got both `{old}` and `{new}`; pass `{new}` only.")
        values[new] = value
    return values["precision"] or "fp32", values["calibration_data"]
