"""ONNX -> TensorRT engine, on a machine with TensorRT and an NVIDIA GPU.

TF-TRT left TensorFlow with 2.18, so the route is Keras -> ONNX -> TensorRT
builder. Engines are specific to the GPU and TensorRT version: build them on
the target (a Jetson: `export/jetson/build_engine.py`, or `trtexec`).
"""

import os

import numpy as np

from kerasseg.runtime.tensorrt import PRECISIONS
from kerasseg.utils import check_choice


class TensorRTUnavailableError(RuntimeError):
    """TensorRT or a GPU is missing here; the message says what to run on the target."""


def trtexec_command(onnx_path, engine_path, precision="fp16", workspace_gb=2.0):
    """The `trtexec` command that builds the same engine on the target device.

    INT8 with `trtexec` needs a calibration cache (written by `to_tensorrt`
    or `export/jetson/build_engine.py --int8`); without one trtexec would
    use random scales, so the command names the cache.
    """
    check_choice("precision", precision, PRECISIONS)
    flags = {"fp32": "", "fp16": " --fp16", "int8": " --int8 --fp16"}[precision]
    command = (
        f"trtexec --onnx={onnx_path} --saveEngine={engine_path}{flags} "
        f"--memPoolSize=workspace:{int(workspace_gb * 1024)}M"
    )
    if precision == "int8":
        command += f" --calib={os.path.splitext(os.fspath(engine_path))[0]}.calib"
    return command


def _unavailable_reason():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the `tensorrt` Python package is not installed"
    try:
        from kerasseg.runtime.tensorrt import _check_cuda, _cuda_runtime

        if not _check_cuda(_cuda_runtime().cudaGetDeviceCount()):
            return "no NVIDIA GPU is visible"
    except (ImportError, RuntimeError) as error:
        return f"CUDA is not usable ({error})"
    return None


def to_tensorrt(
    model,
    engine_path,
    precision="fp16",
    image_size=None,
    nchw=True,
    calibration_data=None,
    calibration_steps=100,
    workspace_gb=2.0,
    labels=None,
    palette=None,
):
    """Builds a TensorRT engine (FP32, FP16 or INT8 with entropy calibration).

    Args:
        model: A Keras model (exported to a static-shape ONNX next to the
            engine first) or the path of such an `.onnx` file.
        engine_path: Output `.engine` / `.plan` path.
        precision: "fp32", "fp16" or "int8".
        image_size: (height, width) for the ONNX export of a Keras model.
        nchw: NCHW input/output for the ONNX export (what jetson-inference
            and most TensorRT pipelines expect).
        calibration_data: For "int8": raw-pixel images (N, H, W, C) at the
            engine's input size.
        calibration_steps: At most this many calibration images.
        workspace_gb: Builder workspace limit in GiB.
        labels: Class names for the metadata sidecar.
        palette: (num_classes, 3) RGB colours for the metadata sidecar.

    Returns:
        `engine_path`.

    Raises:
        TensorRTUnavailableError: no TensorRT or GPU here; the message gives
            the exact `trtexec` command (and kit script) to run on the target.
    """
    check_choice("precision", precision, PRECISIONS)
    engine_path = os.fspath(engine_path)
    if isinstance(model, (str, os.PathLike)):
        onnx_path = os.fspath(model)
        if not os.path.isfile(onnx_path):
            raise FileNotFoundError(f"ONNX file not found: {onnx_path!r}")
    else:
        from kerasseg.export.onnx import to_onnx

        onnx_path = os.path.splitext(engine_path)[0] + ".onnx"
        to_onnx(model, onnx_path, image_size=image_size, static_shape=True, nchw=nchw,
                labels=labels, palette=palette)
    reason = _unavailable_reason()
    if reason:
        raise TensorRTUnavailableError(
            f"Cannot build a TensorRT engine here: {reason}. Engines are specific to the "
            f"GPU and TensorRT version, so build it on the target. The ONNX file is "
            f"{onnx_path!r}; copy it (and its .json sidecar) there and run:\n"
            f"  {trtexec_command(onnx_path, engine_path, precision, workspace_gb)}\n"
            f"or, with the Jetson kit (it also calibrates INT8):\n"
            f"  python3 export/jetson/build_engine.py {onnx_path} {engine_path} "
            f"--precision {precision}"
            + (" --calibration-images DIR" if precision == "int8" else "")
        )
    from kerasseg.runtime.metadata import read_metadata, write_metadata
    from kerasseg.runtime.tensorrt import build_engine

    images = None
    if precision == "int8" and calibration_data is not None:
        images = np.asarray(calibration_data, np.float32)[:calibration_steps]
        metadata = read_metadata(onnx_path) or {}
        if metadata.get("input", {}).get("layout") == "NCHW":
            images = images.transpose(0, 3, 1, 2)
    build_engine(onnx_path, engine_path, precision, images,
                 os.path.splitext(engine_path)[0] + ".calib", workspace_gb)
    metadata = read_metadata(onnx_path)
    if metadata:
        metadata["quantization"] = {"mode": precision}
        metadata.pop("format", None)
        metadata.pop("version", None)
        write_metadata(engine_path, metadata)
    return engine_path
