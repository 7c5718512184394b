"""`Segmenter`: one exported model plus the pre- and post-processing of the
Keras path, in NumPy."""

import os

import numpy as np

from kerasseg.runtime import image as image_ops
from kerasseg.runtime import inference
from kerasseg.runtime.backends import BACKENDS
from kerasseg.runtime.metadata import read_metadata
from kerasseg.runtime.tensors import ModelLoadError


class Segmenter:
    """Runs an exported segmentation model without TensorFlow.

    Images go in as raw pixels in [0, 255] (uint8 or float, (H, W, C) or
    (N, H, W, C)), exactly what the Keras model takes: normalisation happens
    inside the exported graph. An image whose size differs from the model's
    fixed input size is resized bilinearly to it, and the logits are resized
    back, as `kerasseg.export.to_saved_model`'s signature does.

    Example:
        >>> segmenter = Segmenter.load("model.tflite", num_threads=2)
        >>> labels = segmenter.predict(image)          # (H, W) int32
        >>> probabilities = segmenter.predict_proba(image)  # (H, W, C)
    """

    def __init__(self, backend, metadata=None):
        self.backend = backend
        self.metadata = metadata or {}
        if len(backend.inputs) != 1:
            raise ModelLoadError(
                f"Expected a model with one image input; this one has inputs "
                f"{[t.name for t in backend.inputs]}."
            )
        self.input = backend.inputs[0]
        self.layout = self.metadata.get("input", {}).get("layout") or self._guess_layout()
        kinds = {o["name"]: o["kind"] for o in self.metadata.get("outputs", [])}
        self.output_kinds = {
            o.name: kinds.get(o.name) or ("labels" if o.dtype.kind in "iu" and o.quantization
                                          is None else "logits")
            for o in backend.outputs
        }

    @classmethod
    def load(cls, path, num_threads=None, metadata=None, **backend_options):
        """Loads a `.tflite`, `.onnx` or TensorRT `.engine`/`.plan` file.

        Args:
            path: The model file. Its sidecar `<path>.json`, written by the
                exporters, supplies labels, palette, layouts and output kinds.
            num_threads: CPU threads for LiteRT / ONNX Runtime; None lets the
                engine choose.
            metadata: A metadata dict that replaces the sidecar.
            **backend_options: Passed to the backend (e.g. ONNX `providers`).

        Returns:
            A `Segmenter`.

        Raises:
            FileNotFoundError: `path` does not exist.
            ValueError: unknown file type, or a corrupt or truncated file
                (`ModelLoadError`, a ValueError).
        """
        path = os.fspath(path)
        extension = os.path.splitext(path)[1].lower()
        if extension not in BACKENDS:
            raise ValueError(
                f"`path` must end with one of {', '.join(BACKENDS)}. Received: path={path!r}"
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Model file not found: {path!r}")
        if os.path.getsize(path) == 0:
            raise ModelLoadError(f"Model file {path!r} is empty.")
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
        ):
            raise ValueError(
                "`num_threads` must be None or an integer >= 1. "
                f"Received: num_threads={num_threads!r}"
            )
        backend = BACKENDS[extension](path, num_threads=num_threads, **backend_options)
        return cls(backend, metadata if metadata is not None else read_metadata(path))

    # --- Properties read from the model and its metadata ---

    def _guess_layout(self):
        shape = self.input.shape
        return "NCHW" if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] not in (
            1, 3, 4) else "NHWC"

    @property
    def input_size(self):
        """(height, width) the model takes; entries are None when dynamic."""
        shape = self.input.shape
        return tuple(shape[2:4]) if self.layout == "NCHW" else tuple(shape[1:3])

    @property
    def channels(self):
        return self.input.shape[1] if self.layout == "NCHW" else self.input.shape[3]

    @property
    def output_channels(self):
        """Channels of the single output: classes, or 1 for a foreground score
        (whose `predict_proba` has two columns, background and foreground)."""
        output = self._single_output()[0]
        return output.shape[1] if self.layout == "NCHW" else output.shape[-1]

    @property
    def labels(self):
        return self.metadata.get("labels")

    @property
    def palette(self):
        palette = self.metadata.get("palette")
        return None if palette is None else np.asarray(palette, np.uint8)

    @property
    def num_classes(self):
        return self.metadata.get("num_classes")

    # --- Raw execution ---

    def run(self, inputs):
        """Runs the model on exactly the tensor it takes.

        Args:
            inputs: An array of the model input's shape and dtype (see
                `self.input`), or a dict {input name: array}.

        Returns:
            {output name: array}, raw (still quantised for integer models).

        Raises:
            ValueError: wrong shape or dtype, naming the expected ones.
        """
        if isinstance(inputs, dict):
            inputs = inputs.get(self.input.name)
        array = np.asarray(inputs)
        expected = self.input.shape
        shape_ok = len(array.shape) == len(expected) and all(
            e is None or e == a for e, a in zip(expected, array.shape)
        )
        if not shape_ok or array.dtype != self.input.dtype:
            raise ValueError(
                f"Input {self.input.name!r} must have shape {expected} and dtype "
                f"{self.input.dtype} (None = any size). Received: shape {array.shape}, "
                f"dtype {array.dtype}. `predict` resizes and converts images for you."
            )
        return self.backend.run({self.input.name: array})

    # --- Images in, segmentation out ---

    def _check_images(self, images):
        images = np.asarray(images)
        if images.dtype.kind not in "uif":
            raise ValueError(
                "`images` must hold real pixel values in [0, 255] (uint8 or float). "
                f"Received dtype {images.dtype}."
            )
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != self.channels or 0 in images.shape:
            raise ValueError(
                f"`images` must have shape (H, W, {self.channels}) or (N, H, W, "
                f"{self.channels}). Received shape {np.asarray(images).shape}."
            )
        return images

    def _single_output(self):
        if len(self.backend.outputs) != 1:
            raise ValueError(
                f"This model has several outputs ({list(self.output_kinds)}); use `run` "
                "(LPSNet: then kerasseg.panoptic for the merge)."
            )
        output = self.backend.outputs[0]
        return output, self.output_kinds[output.name]

    def _forward(self, images):
        """Runs images of any size; returns the output at each image's size
        and its kind (logits / probabilities / labels), as (N, H, W[, C])."""
        images = self._check_images(images)
        kind = self._single_output()[1]
        size = tuple(images.shape[1:3])
        y = self._run_images(image_ops.resize_bilinear(images.astype(np.float32),
                                                       self._model_size(size)))
        if kind == "labels":
            if y.ndim == 4:  # NCHW labels keep a channel axis of 1
                y = y[:, 0] if self.layout == "NCHW" else y[..., 0]
            return image_ops.resize_nearest(y, size), kind
        return image_ops.resize_bilinear(y.astype(np.float32), size), kind

    def _model_size(self, size):
        """The size the model runs an image of `size` at: its own, where fixed."""
        return tuple(s or d for s, d in zip(self.input_size, size))

    def _run_images(self, x):
        """The single output (dequantized; NHWC unless labels) for float32 NHWC
        images `x` at the model's size, run a model batch at a time."""
        output = self._single_output()[0]
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        batch = self.input.shape[0] or len(x)
        results = []
        for start in range(0, len(x), batch):
            chunk = x[start:start + batch]
            count = len(chunk)
            if count < batch:  # a fixed-batch model: pad the last chunk
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - count, 0)])
            raw = self.run(self.quantize_input(chunk))[output.name]
            results.append(self._dequantize(output, raw)[:count])
        y = np.concatenate(results)
        if self.layout == "NCHW" and self.output_kinds[output.name] != "labels":
            y = y.transpose(0, 2, 3, 1)
        return y

    def _whole_view(self, view, size, batch_size):
        """`whole_view` of `kerasseg.runtime.inference.predict_labels`: the model
        runs on the view resized to its size, read a row at a time; the
        probabilities of the rows asked for are resized from its output."""
        kind = self._single_output()[1]
        if kind == "labels":
            self._probabilities(None)  # raises: no probabilities
        model_size = self._model_size(size)
        x = image_ops.resized_rows(view, size, model_size, np.arange(model_size[0]))
        y = np.concatenate([self._run_images(x[start:start + batch_size])
                            for start in range(0, len(x), batch_size)])

        def rows(indices):
            output = image_ops.resized_rows(lambda i: y[:, i], y.shape[1:3], size, indices)
            return image_ops.to_probabilities(output, from_logits=kind == "logits")

        return rows

    def quantize_input(self, x):
        """Float raw pixels -> the model input dtype (quantised with the input's
        scale and zero point for integer models)."""
        info = self.input
        if info.quantization is not None:
            scale, zero_point = info.quantization
            limits = np.iinfo(info.dtype)
            x = np.clip(np.round(x / scale + zero_point), limits.min, limits.max)
        elif info.dtype.kind in "iu":
            x = np.clip(np.round(x), 0, 255)
        return x.astype(info.dtype)

    @staticmethod
    def _dequantize(info, y):
        if info.quantization is not None:
            scale, zero_point = info.quantization
            return (y.astype(np.float32) - zero_point) * scale
        return y

    def predict_logits(self, images):
        """Logits at each image's size, (N, H, W, C) or (H, W, C) for one image."""
        y, kind = self._forward(images)
        if kind != "logits":
            raise ValueError(
                f"This model outputs {kind}, not logits; export it with output=\"logits\"."
            )
        return y if np.ndim(images) == 4 else y[0]

    def _probabilities(self, images):
        """Class probabilities at each image's size: the forward callable of
        `kerasseg.runtime.inference.predict`."""
        if self._single_output()[1] == "labels":
            raise ValueError(
                "This model outputs labels only (argmax in the graph); export it with "
                "output=\"logits\" or \"probabilities\" for probabilities."
            )
        y, kind = self._forward(images)
        return image_ops.to_probabilities(y, from_logits=kind == "logits")

    def predict_proba(self, images, **options):
        """Class probabilities, (N, H, W, C) or (H, W, C) for one image.

        Args:
            images: Raw pixels, (H, W, C) or (N, H, W, C).
            **options: `tile_size`, `overlap`, `weighting`, `scales`, `flip`,
                `batch_size`: sliding-window, multi-scale and flip inference,
                as `kerasseg.runtime.inference.predict` (the Keras path's too).
        """
        self._check_images(images)
        return inference.predict(self._probabilities, images, **options)

    def predict(self, images, **options):
        """Label maps (int32), (N, H, W) or (H, W) for one image; `options` as
        in `predict_proba` (not for a model that outputs labels).

        The labels are assembled a band of rows at a time
        (`kerasseg.runtime.inference.predict_labels`): a 48 MP photo needs
        about the memory of its pixels and labels, not every class's
        probabilities at full resolution as `predict_proba` returns them.
        """
        if self._single_output()[1] != "labels":
            self._check_images(images)
            return inference.predict_labels(self._probabilities, images,
                                            whole_view=self._whole_view, **options)
        if options:
            raise ValueError(
                f"Tiling, scales and flips average probabilities; this model outputs labels "
                f"only. Export it with output=\"logits\" to use {sorted(options)}."
            )
        labels = self._forward(images)[0].astype(np.int32)
        return labels if np.ndim(images) == 4 else labels[0]

    def colorize(self, labels):
        """Label map -> RGB image with the metadata palette."""
        if self.palette is None:
            raise ValueError("This model's metadata has no palette; pass colours yourself.")
        return image_ops.colorize(labels, self.palette)

