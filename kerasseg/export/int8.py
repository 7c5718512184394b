"""The int8 accuracy guarantee the TFLite and ONNX exporters share.

An int8 export is checked against the Keras model on held-out images: the
share of pixels whose argmax label is unchanged ("agreement"). Under the
target (`min_agreement`, 0.98 by default), the layers whose quantisation
costs most are kept in float: ranked by the noise-to-signal ratio of their
int8 tensors against float ones, then by the agreement each reaches when it
alone stays float, and kept, a few more at each step, until the target
holds; if it still fails with nothing left to keep, the export raises
`Int8AgreementError` naming the agreement reached. What was kept in float,
and the agreement, go into the metadata sidecar.

Each exporter supplies three things: a `quantize(kept)` that builds the int8
artifact with the units in `kept` left in float, a `labels(artifact)` that
runs it on the held-out images, and the candidate units, most sensitive
first; `guarantee` does the rest.
"""

import dataclasses

import numpy as np

DEFAULT_MIN_AGREEMENT = 0.98
# Held out from the calibration images when no validation images are given:
# a quarter, at least MIN_HELD_OUT images, leaving at least as many to calibrate.
HELD_OUT_FRACTION = 0.25
MIN_HELD_OUT = 2
# Candidates `guarantee` tries one by one in float before keeping several.
MEASURED = 48


class Int8AgreementError(ValueError):
    """An int8 export stays under `min_agreement` even with every candidate
    layer kept in float."""

    def __init__(self, agreement, min_agreement, kept, held_out):
        self.agreement, self.min_agreement, self.kept = agreement, min_agreement, list(kept)
        super().__init__(
            f"The int8 export agrees with the Keras model on {100 * agreement:.2f}% of the "
            f"pixels of {held_out} held-out images, under min_agreement="
            f"{min_agreement} ({100 * min_agreement:.2f}%), even with all {len(self.kept)} "
            "candidate layers kept in float. Calibrate on more images like the ones the model "
            "will see, lower `min_agreement`, or export fp16 instead."
        )


@dataclasses.dataclass
class Outcome:
    """What `guarantee` settled on: the artifact, its agreement, the units kept
    in float (most sensitive first) and the (units kept, agreement) steps."""

    artifact: object
    agreement: float
    kept: list
    steps: list


def check_min_agreement(min_agreement):
    """Validates `min_agreement` (None or a number in (0, 1]); returns it."""
    if min_agreement is not None and (
        isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float))
        or not 0 < min_agreement <= 1
    ):
        raise ValueError(
            "`min_agreement` must be None (no check) or a number in (0, 1], e.g. 0.98. "
            f"Received: min_agreement={min_agreement!r}"
        )
    return min_agreement


def _image_batches(data):
    """Arrays from a tf.data pipeline, an array or an iterable of images,
    (image, label) pairs or {"image": ...} dicts."""
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset
        data = data.as_numpy_iterator()
    elif isinstance(data, np.ndarray):
        data = [data]
    for element in data:
        if isinstance(element, (tuple, list)):
            element = element[0]
        if isinstance(element, dict):
            element = element["image"] if "image" in element else next(iter(element.values()))
        yield element


def collect_images(data, image_size, channels, count, argument):
    """Up to `count` images from `data` as float32 (N, H, W, C) raw pixels,
    resized bilinearly to `image_size`.

    Raises:
        ValueError: an element is not an image or a batch of images with
            `channels` channels (the message names `argument`).
    """
    from kerasseg.runtime.image import resize_bilinear

    images = []
    for element in _image_batches(data):
        array = np.asarray(element, np.float32)
        array = array[None] if array.ndim == 3 else array
        if array.ndim != 4 or array.shape[-1] != channels:
            raise ValueError(
                f"`{argument}` must yield images (H, W, {channels}) or batches "
                f"(N, H, W, {channels}), optionally in (image, label) pairs. "
                f"Received an element of shape {np.shape(element)}."
            )
        images.extend(resize_bilinear(array, image_size)[:count - len(images)])
        if len(images) >= count:
            break
    return np.stack(images) if images else np.zeros((0, *image_size, channels), np.float32)


def split_held_out(images, validation, min_agreement=DEFAULT_MIN_AGREEMENT):
    """(calibration images, held-out images): `validation` when given, else
    the last quarter of `images` (at least MIN_HELD_OUT); none held out when
    `min_agreement` is None (no check)."""
    if validation is not None or min_agreement is None:
        return images, validation if validation is not None else images[:0]
    held_out = max(MIN_HELD_OUT, int(round(HELD_OUT_FRACTION * len(images))))
    if len(images) < 2 * held_out:
        raise ValueError(
            f"The int8 agreement check needs held-out images: pass `validation_data`, or "
            f"at least {2 * MIN_HELD_OUT} calibration images to split them from. "
            f"Received {len(images)} calibration image(s)."
        )
    return images[:-held_out], images[-held_out:]


def to_labels(scores, threshold=0.0):
    """Labels from (N, H, W, C) scores: the argmax, or for one channel whether
    it exceeds `threshold` (0 for logits, 0.5 for probabilities)."""
    scores = np.asarray(scores)
    if scores.shape[-1] == 1:
        return (scores[..., 0] > threshold).astype(np.int32)
    return np.argmax(scores, axis=-1)


def reference_labels(model, images, threshold=0.0, batch_size=4):
    """The Keras model's labels on `images` (of its "semantic" output if it
    has several), (N, H, W)."""
    if not len(images):
        return np.zeros(images.shape[:3], np.int32)
    outputs = model.predict(images, batch_size=batch_size, verbose=0)
    if isinstance(outputs, dict):
        outputs = outputs["semantic"] if "semantic" in outputs else next(iter(outputs.values()))
    elif isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return to_labels(outputs, threshold)


def exported_labels(path, images, layout="NHWC", threshold=0.0):
    """Labels of an exported file (run by `kerasseg.runtime`) on `images` at
    its input size, from its "semantic" output if it has several; logits of
    a lower resolution are resized to the images' size as the runtime does."""
    from kerasseg.runtime import Segmenter
    from kerasseg.runtime.image import resize_bilinear

    segmenter = Segmenter.load(path, metadata={"input": {"layout": layout}})
    names = [info.name for info in segmenter.backend.outputs]
    info = segmenter.backend.outputs[names.index("semantic") if "semantic" in names else 0]
    labels = []
    for image in images:
        x = image[None].transpose(0, 3, 1, 2) if layout == "NCHW" else image[None]
        y = segmenter.run(segmenter.quantize_input(x))[info.name]
        if info.dtype.kind in "iu" and info.quantization is None:  # labels (argmax in the graph)
            labels.append(y)
            continue
        if info.quantization is not None:
            scale, zero_point = info.quantization
            y = (y.astype(np.float32) - zero_point) * scale
        y = np.moveaxis(y, 1, -1) if layout == "NCHW" and y.ndim == 4 else y
        labels.append(to_labels(resize_bilinear(y, image.shape[:2]), threshold))
    return np.concatenate(labels)


def agreement(reference, labels):
    """Share of pixels whose label equals the reference's."""
    return float(np.mean(np.asarray(reference) == np.asarray(labels)))


def noise_to_signal(reference, approximation):
    """Mean over channels (the last axis) of |approximation - reference|^2 /
    |reference|^2, each channel's ratio capped at 1.

    Per channel, because a tensor quantised per tensor can keep its loudest
    channel intact and flatten all the others: a whole-tensor ratio would not
    see it. Channels without signal are skipped.
    """
    reference = np.asarray(reference, np.float64)
    channels = reference.shape[-1] if reference.ndim else 1
    reference = reference.reshape(-1, channels)
    error = np.asarray(approximation, np.float64).reshape(reference.shape) - reference
    signal, noise = np.sum(reference**2, axis=0), np.sum(error**2, axis=0)
    live = signal > 1e-9 * max(float(signal.max(initial=0.0)), 1e-30)
    if not live.any():
        return 0.0
    return float(np.mean(np.minimum(noise[live] / signal[live], 1.0)))


def guarantee(quantize, labels, reference, ranked, min_agreement, measured=MEASURED):
    """Quantises with nothing kept in float; under `min_agreement`, keeps units
    of `ranked` in float until the agreement with `reference` reaches it.

    The cheap per-layer ranking only orders the search: the first `measured`
    candidates are each tried alone in float (done as soon as one reaches the
    target) and re-ordered by the agreement they reach, which on the
    quickstart model found one unit enough where the noise-to-signal order
    needed 19. Then the best are kept together, 1, 2, 3, 4, 6, 9, ... (half
    as many more per step) until the target holds.

    Args:
        quantize: kept units (list) -> artifact.
        labels: artifact -> (N, H, W) labels on the held-out images.
        reference: the Keras labels on those images.
        ranked: () -> candidate units, most sensitive first; called only if
            the fully quantised artifact misses the target.
        min_agreement: target share of pixels; None skips the check.
        measured: how many candidates to try one by one.

    Returns:
        An `Outcome`.

    Raises:
        Int8AgreementError: the target is missed with every candidate kept.
    """
    def evaluate(kept):
        artifact = quantize(kept)
        return artifact, None if min_agreement is None else agreement(
            reference, labels(artifact))

    artifact, reached = evaluate([])
    steps = [(0, reached)] if reached is not None else []
    if reached is None or reached >= min_agreement:
        return Outcome(artifact, reached, [], steps)
    candidates, alone = ranked(), {}
    for unit in candidates[:measured]:
        artifact, alone[unit] = evaluate([unit])
        if alone[unit] >= min_agreement:
            return Outcome(artifact, alone[unit], [unit], [*steps, (1, alone[unit])])
    candidates = sorted(alone, key=lambda unit: -alone[unit]) + candidates[measured:]
    kept = []
    while reached < min_agreement:
        if len(kept) >= len(candidates):
            raise Int8AgreementError(reached, min_agreement, kept, len(reference))
        kept = candidates[:len(kept) + max(1, len(kept) // 2)]
        artifact, reached = evaluate(kept)
        steps.append((len(kept), reached))
    return Outcome(artifact, reached, kept, steps)


def metadata_record(outcome, min_agreement, calibration, held_out, float_layers, settings):
    """The "quantization" entry of the sidecar for an int8 export."""
    record = {"mode": "int8", "calibration_images": int(calibration)}
    if min_agreement is not None:
        record.update(
            min_agreement=min_agreement,
            agreement=round(outcome.agreement, 5),
            held_out_images=int(held_out),
            # (units kept in float, agreement) after each step of `guarantee`
            steps=[[count, round(value, 5)] for count, value in outcome.steps],
        )
    return {**record, "float_layers": list(float_layers), **settings}


def layer_names(node_names, model):
    """The Keras layers a converter's node names come from, in model order.

    Converters name nodes after the TensorFlow ops they lower
    (`model_1/decoder_conv1_1/convolution`, fused ones joined by ";"): every
    path component that is a layer name, possibly with Keras's "_1" call
    suffix, counts. Names that match no layer are kept as they are.
    """
    known = {layer.name for layer in model.layers}
    found, unknown = set(), []
    for node in node_names:
        hits = {_strip_call_suffix(part, known) for piece in node.split(";")
                for part in piece.split("/")} & known
        found |= hits
        if not hits:
            unknown.append(node)
    return [layer.name for layer in model.layers if layer.name in found] + unknown


def _strip_call_suffix(name, known):
    if name in known:
        return name
    base, _, suffix = name.rpartition("_")
    return base if suffix.isdigit() and base in known else name


def describe(record):
    """One line for the CLI: the agreement reached and what stayed in float."""
    if "agreement" not in record:
        return "int8: agreement with Keras not checked (min_agreement=None)"
    layers = record["float_layers"]
    kept = f"kept in float: {', '.join(layers)}" if layers else "nothing kept in float"
    return (f"int8: labels agree with Keras on {100 * record['agreement']:.2f}% of the pixels "
            f"of {record['held_out_images']} held-out images (target "
            f"{100 * record['min_agreement']:.2f}%); {kept}")
