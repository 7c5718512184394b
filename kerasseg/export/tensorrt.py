"""ONNX -> TensorRT engine, on a machine with TensorRT and an NVIDIA GPU.

TF-TRT left TensorFlow with 2.18, so the route is Keras -> ONNX -> TensorRT
builder. The engine is strongly typed: its precision is the ONNX file's
(fp32, fp16 tensors or int8 Q/DQ nodes, from `to_onnx(..., precision=...)`),
the only mode TensorRT 11 has and one TensorRT 10 (JetPack 6) supports.
Engines are specific to the GPU and TensorRT version: build them on the target
(a Jetson: `export/jetson/build_engine.py`, or `trtexec`).
"""

import json
import os

from kerasseg.export.formats import ExporterUnavailableError
from kerasseg.export.int8 import DEFAULT_MIN_AGREEMENT
from kerasseg.runtime.metadata import PRECISIONS, file_precision
from kerasseg.runtime.tensorrt import build_engine, visible_gpu_count
from kerasseg.utils import check_choice


class TensorRTUnavailableError(ExporterUnavailableError):
    """TensorRT or a GPU is missing here; the message says what to run on the target."""


def trtexec_command(onnx_path, engine_path, workspace_gb=2.0):
    """The `trtexec` command that builds the same engine on the target device.

    `--stronglyTyped` takes every tensor's type from the ONNX file, so the
    command is the same for fp32, fp16 and int8 files (TensorRT 10 and 11).
    """
    return (
        f"trtexec --onnx={onnx_path} --saveEngine={engine_path} --stronglyTyped "
        f"--memPoolSize=workspace:{int(workspace_gb * 1024)}M"
    )


def _unavailable_reason():
    """Why no engine can be built here, or None when TensorRT and a GPU are present."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the `tensorrt` Python package is not installed"
    try:
        if not visible_gpu_count():
            return "no NVIDIA GPU is visible"
    except (ImportError, RuntimeError) as error:
        return f"CUDA is not usable ({error})"
    return None


def _onnx_metadata(onnx_path):
    """The kerasseg metadata of an ONNX file: its sidecar, else the in-file copy."""
    from kerasseg.runtime.metadata import read_metadata

    metadata = read_metadata(onnx_path)
    if metadata is None:
        import onnx

        props = {p.key: p.value for p in onnx.load(onnx_path, load_external_data=False)
                 .metadata_props}
        if "kerasseg_metadata" in props:
            metadata = json.loads(props["kerasseg_metadata"])
    return metadata


def to_tensorrt(
    model,
    engine_path,
    precision="fp16",
    image_size=None,
    *,
    nchw=True,
    calibration_data=None,
    calibration_steps=100,
    workspace_gb=2.0,
    labels=None,
    palette=None,
    min_agreement=DEFAULT_MIN_AGREEMENT,
):
    """Builds a strongly typed TensorRT engine (FP32, FP16 or INT8).

    A Keras model is first exported with `to_onnx(..., precision=precision)`
    next to the engine (`<engine>.onnx`): fp16 tensors, or int8 Q/DQ nodes
    calibrated on `calibration_data`. An `.onnx` path is taken as it is, and
    `precision` must be the one it was exported with.

    Args:
        model: A Keras model, or the path of an `.onnx` file from `to_onnx`
            (static shape).
        engine_path: Output `.engine` / `.plan` path.
        precision: "fp32", "fp16" or "int8".
        image_size: (height, width) for the ONNX export of a Keras model.
        nchw: NCHW input/output for the ONNX export (what jetson-inference
            and most TensorRT pipelines expect).
        calibration_data: For "int8" with a Keras model: raw-pixel images
            (N, H, W, C) at the export size (see `to_onnx`).
        calibration_steps: At most this many calibration images.
        workspace_gb: Builder workspace limit in GiB.
        labels: Class names for the metadata sidecar.
        palette: (num_classes, 3) RGB colours for the metadata sidecar.
        min_agreement: For "int8" with a Keras model: the agreement the ONNX
            export is held to (see `to_onnx`).

    Returns:
        `engine_path`.

    Raises:
        TensorRTUnavailableError: no TensorRT or GPU here; the message names
            the exported ONNX file and the exact command to run on the target.

    Example:
        >>> to_tensorrt(model, "model_int8.engine", "int8", image_size=(512, 512),
        ...             calibration_data=images)
    """
    check_choice("precision", precision, PRECISIONS)
    engine_path = os.fspath(engine_path)
    if isinstance(model, (str, os.PathLike)):
        onnx_path = os.fspath(model)
        if not os.path.isfile(onnx_path):
            raise FileNotFoundError(f"ONNX file not found: {onnx_path!r}")
        if calibration_data is not None:
            raise ValueError(
                "`calibration_data` applies when exporting a Keras model; an ONNX file "
                f"already carries its precision ({onnx_path!r}). Export the Keras model with "
                "to_onnx(..., precision='int8', calibration_data=...) instead."
            )
        metadata = _onnx_metadata(onnx_path)
        if metadata is not None and file_precision(metadata) != precision:
            raise ValueError(
                f"`precision` must match the ONNX file, which was exported as "
                f"{file_precision(metadata)!r} ({onnx_path!r}); the engine takes its "
                f"precision from the file. Re-export with to_onnx(..., precision={precision!r}). "
                f"Received: precision={precision!r}"
            )
    else:
        from kerasseg.export.onnx import to_onnx

        onnx_path = os.path.splitext(engine_path)[0] + ".onnx"
        to_onnx(model, onnx_path, image_size=image_size, static_shape=True, nchw=nchw,
                labels=labels, palette=palette, precision=precision,
                calibration_data=calibration_data, calibration_steps=calibration_steps,
                min_agreement=min_agreement)
        metadata = _onnx_metadata(onnx_path)
    reason = _unavailable_reason()
    if reason:
        raise TensorRTUnavailableError(
            f"Cannot build a TensorRT engine here: {reason}. Engines are specific to the "
            f"GPU and TensorRT version, so build it on the target. The ONNX file "
            f"{onnx_path!r} carries the {precision} precision; copy it (and its .json "
            f"sidecar) there and run (TensorRT 10 or 11):\n"
            f"  {trtexec_command(onnx_path, engine_path, workspace_gb)}\n"
            f"or, with the Jetson kit (it also writes the engine's .json sidecar):\n"
            f"  python3 export/jetson/build_engine.py {onnx_path} {engine_path}"
        )
    from kerasseg.runtime.metadata import write_metadata

    build_engine(onnx_path, engine_path, workspace_gb)
    if metadata:  # the ONNX file's, precision included
        write_metadata(engine_path, metadata)
    return engine_path
