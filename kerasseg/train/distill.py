"""Distillation: a teacher's soft outputs train the student, in the one trainer.

A config names the teacher in `loss.teacher`:

- a `.keras` file (any Keras model from raw pixels to the student's classes:
  logits or probabilities, read from its last layer);
- an exported file (`.tflite`, `.onnx`), run through `kerasseg.runtime`
  without TensorFlow's graph (so the training step is not compiled with XLA);
- a preset of `kerasseg.pretrained` (its name, or its dataset), whose class
  probabilities are summed into the student's classes by
  `loss.teacher_class_mapping`.

A `.keras` or preset teacher runs at the student's image size, or at
`loss.teacher_image_size` (the batch resized to it, the targets back: the
VOC presets were trained at 513x513); an exported file at its own input size.

`teacher_probabilities` turns any of them into one function from a batch of
images to the student's targets: (B, H, W, classes) probabilities, or the
foreground probability (B, H, W, 1) for a one-channel student. The loss
(`distillation_loss`) is the cross-entropy of the student against those soft
targets on every pixel (void ones included: the teacher labels them too), and
`loss.teacher_weight` mixes it with the masks' loss:
`teacher_weight * distillation + (1 - teacher_weight) * masks` (1: the
teacher alone; the masks then only score validation).

The teacher runs on the augmented batch the student sees, so distillation
uses every augmentation (copy-paste, rescales, blur) for free.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from kerasseg.inference import model_output_kind

RUNTIME_EXTENSIONS = (".tflite", ".onnx")


def teacher_probabilities(teacher, num_classes, class_names=None, class_mapping=None,
                          image_size=None):
    """A function from images (B, H, W, 3) float32 [0, 255] to the student's targets.

    Args:
        teacher: A `.keras` path, a `.tflite`/`.onnx` path, a preset name, or
            a `keras.Model`.
        num_classes: The student's output channels (1: a foreground score).
        class_names: The student's class names (a preset teacher's classes
            are mapped onto them); for a one-channel student, the names of
            (background, foreground).
        class_mapping: {preset class: student class}, for a preset teacher.
        image_size: (height, width) to run a Keras or preset teacher at
            (bilinear both ways); None: the images' own size. An exported
            file runs at its own input size.

    Returns:
        `targets(images) -> (B, H, W, num_classes)` float32 tensors; the
        function is traceable (a runtime file runs in `tf.numpy_function`).

    Raises:
        ValueError: in one line, for a teacher that is not one of the above,
            or whose classes do not match the student's.
    """
    if isinstance(teacher, keras.Model):
        _check_no_mapping(class_mapping, "the teacher model")
        return _at_size(_keras_teacher(teacher, num_classes, "the teacher model"), image_size)
    if not isinstance(teacher, (str, os.PathLike)):
        raise ValueError("`loss.teacher` must be a .keras file, an exported .tflite/.onnx file "
                         f"or a preset name. Received: {teacher!r}")
    path = os.fspath(teacher)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"loss.teacher: no such .keras file: {path}")
        _check_no_mapping(class_mapping, path)
        model = keras.models.load_model(path, compile=False)
        return _at_size(_keras_teacher(model, num_classes, path), image_size)
    if path.lower().endswith(RUNTIME_EXTENSIONS):
        _check_no_mapping(class_mapping, path)
        if image_size is not None:
            raise ValueError(f"loss.teacher_image_size: {path} runs at its own input size; "
                             "leave teacher_image_size unset for an exported teacher")
        return _runtime_teacher(path, num_classes)
    return _at_size(_preset_teacher(path, num_classes, class_names, class_mapping), image_size)


def _check_no_mapping(class_mapping, where):
    if class_mapping:
        raise ValueError(f"loss.teacher_class_mapping maps a preset teacher's classes; {where} "
                         "outputs the student's own: leave teacher_class_mapping unset")


def _at_size(targets, image_size):
    """`targets` run on the images resized to `image_size`, its output
    resized back: bilinear interpolation of probabilities keeps them
    probabilities (in [0, 1], summing to 1 over the classes)."""
    if image_size is None:
        return targets

    def resized(images):
        output = targets(tf.image.resize(images, image_size))
        return tf.ensure_shape(tf.image.resize(output, tf.shape(images)[1:3]),
                               [*images.shape[:-1], output.shape[-1]])

    return resized


def _check_channels(channels, num_classes, where):
    if channels != num_classes:
        raise ValueError(f"loss.teacher: {where} outputs {channels} channels; the student "
                         f"has {num_classes}")


def _keras_teacher(model, num_classes, where):
    _check_channels(model.output_shape[-1], num_classes, where)
    from_logits = model_output_kind(model) == "logits"
    model.trainable = False

    def targets(images):
        output = tf.cast(model(images, training=False), tf.float32)
        if not from_logits:
            return output
        return tf.sigmoid(output) if num_classes == 1 else tf.nn.softmax(output)

    return targets


def _runtime_teacher(path, num_classes):
    from kerasseg.runtime import Segmenter

    segmenter = Segmenter.load(path)
    _check_channels(segmenter.output_channels, num_classes, path)

    def run(images):
        # One image at a time: an exported file has a batch of one; each is
        # resized to the file's input and its output back (`predict_proba`).
        probabilities = np.stack([segmenter.predict_proba(image) for image in images])
        # A one-channel file's probabilities are [1 - p, p]: keep p.
        return probabilities[..., 1:] if num_classes == 1 else probabilities

    def targets(images):
        output = tf.numpy_function(run, [images], tf.float32, stateful=False)
        return tf.ensure_shape(output, [*images.shape[:-1], num_classes])

    return targets


def _preset_teacher(name, num_classes, class_names, class_mapping):
    from kerasseg.models.presets import from_preset
    from kerasseg.pretrained import check_class_mapping, is_preset, resolve_preset

    if not is_preset(name):
        raise ValueError("`loss.teacher` must be a .keras file, an exported .tflite/.onnx file "
                         f"or a model preset. Received: {name!r}")
    preset = resolve_preset(name)
    if not class_mapping or not class_names:
        raise ValueError(f"loss.teacher: the preset {preset.name!r} has its own classes; "
                         "`loss.teacher_class_mapping` must map them onto the dataset's")
    check_class_mapping(preset, class_mapping, class_names, "loss.teacher_class_mapping",
                        "the dataset")
    # matrix[s, t] = 1 where preset class s counts as the student's class t.
    matrix = np.zeros((len(preset.classes), len(class_names)), np.float32)
    for source, target in class_mapping.items():
        matrix[preset.classes.index(source), list(class_names).index(target)] = 1.0
    if num_classes == 1:
        matrix = matrix[:, 1:]  # the foreground's column: everything else is background
    model = from_preset(preset.name)
    model.trainable = False

    def targets(images):
        probabilities = tf.nn.softmax(tf.cast(model(images, training=False), tf.float32))
        mapped = tf.einsum("bhwc,ck->bhwk", probabilities, matrix)
        if num_classes == 1:
            return mapped
        # Preset classes mapped nowhere drop out: renormalise over the student's.
        return mapped / tf.maximum(tf.reduce_sum(mapped, -1, keepdims=True), 1e-6)

    return targets


def distillation_loss(soft_targets, y_pred, from_logits):
    """Mean per-pixel cross-entropy of the student's `y_pred` against
    `soft_targets` (same shape; one channel: binary cross-entropy)."""
    soft_targets = tf.cast(soft_targets, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    if y_pred.shape[-1] == 1:
        values = keras.losses.binary_crossentropy(soft_targets, y_pred,
                                                  from_logits=from_logits)
    else:
        values = keras.losses.categorical_crossentropy(soft_targets, y_pred,
                                                       from_logits=from_logits)
    return tf.reduce_mean(values)


@keras.saving.register_keras_serializable(package="kerasseg")
class DistilledModel(keras.Model):
    """A functional model whose loss adds a teacher's (see the module docstring).

    Built on the student's layers (`DistilledModel(model.inputs,
    model.outputs)`), then given `distillation(images, y_pred) -> loss` and
    `teacher_weight` by `distilled`; checkpoints save the student itself.
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        masks = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=training)
        weight = self.teacher_weight
        return weight * self.distillation(x, y_pred) + (1.0 - weight) * masks


def distilled(model, targets, teacher_weight, compiled=True):
    """`model`'s layers as a `DistilledModel` trained with the teacher `targets`
    (from `teacher_probabilities`); `compiled` False for a teacher that runs
    outside the graph (a runtime file), which XLA cannot compile."""
    from_logits = model_output_kind(model) == "logits"
    trainee = DistilledModel(model.inputs, model.outputs, name=model.name)
    # Plain attributes (a function and a float): nothing of the teacher is
    # tracked, so backups and checkpoints hold the student's variables only.
    trainee.distillation = lambda images, y_pred: distillation_loss(
        tf.stop_gradient(targets(images)), y_pred, from_logits)
    trainee.teacher_weight = float(teacher_weight)
    trainee.uses_runtime_teacher = not compiled
    return trainee
