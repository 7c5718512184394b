"""Keras model -> ONNX with tf2onnx, laid out for TensorRT.

tf2onnx (1.17) converts a `tf.function` directly, so the graph gets exactly
the names, layout and static shapes we ask for; Keras's own
`model.export(format="onnx")` goes through the same converter but names the
tensors after the Keras layers and has no NCHW option.
"""

import json
import os

import tensorflow as tf

from kerasseg.export import common
from kerasseg.runtime.metadata import write_metadata
from kerasseg.utils import check_positive_int

# TensorRT 8.6 (JetPack 5) and 10.x (JetPack 6) both parse opset 17.
DEFAULT_OPSET = 17


def to_onnx(
    model,
    path,
    image_size=None,
    static_shape=True,
    nchw=False,
    opset=DEFAULT_OPSET,
    output="logits",
    batch_size=1,
    labels=None,
    palette=None,
):
    """Converts a segmentation model to ONNX, input "image", output named after
    `output` ("logits", "probabilities" or "labels").

    The input takes raw pixels in [0, 255] (normalisation is inside the
    graph). CRF layers are dropped with a warning.

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

    Returns:
        The path of the `.onnx` file.

    Example:
        >>> to_onnx(model, "model.onnx", image_size=(512, 512), nchw=True)
    """
    import tf2onnx

    check_positive_int("opset", opset, minimum=13)
    check_positive_int("batch_size", batch_size)
    model = common.strip_crf(model)
    image = common.single_input(model)
    native = common.check_output(model, output)
    common.check_labels(model, labels, palette)
    if static_shape:
        image_size = common.fixed_image_size(model, image_size)
        shape = (batch_size, *image_size, image.shape[-1])
    else:
        if image_size is not None:
            image_size = common.fixed_image_size(model, image_size)
        shape = (None, *(image_size or image.shape[1:3]), image.shape[-1])
    spec = (tf.TensorSpec(shape, tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def serve(image):
        return common.run_model(model, image, output, native)

    layout = "NCHW" if nchw else "NHWC"
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
    metadata = common.build_metadata(model, output, names, shape[1:3], "none", labels, palette,
                                     layout=layout)
    metadata["input"]["shape"] = [shape[0], shape[3], shape[1], shape[2]] if nchw else list(shape)
    metadata["opset"] = opset
    # A copy inside the file too, for tools that see only the .onnx.
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = "kerasseg_metadata", json.dumps(metadata)
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    write_metadata(path, metadata)
    return path
