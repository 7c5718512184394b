"""The JSON sidecar written next to every exported model and read by the runtime.

Plain JSON, no TensorFlow: the Android app, the Jetson scripts and
`kerasseg.runtime` all read the same file, `<model file>.json`
(`model.tflite` -> `model.tflite.json`).
"""

import json
import os

FORMAT = "kerasseg-metadata"
VERSION = 1
OUTPUT_KINDS = ("logits", "probabilities", "labels")
# Precisions of a kerasseg ONNX file, and so of the engine built from it.
PRECISIONS = ("fp32", "fp16", "int8")


def file_precision(metadata):
    """The precision a kerasseg ONNX/engine metadata records; its quantization
    mode "none" (not quantized, as for TFLite) reads as "fp32"."""
    mode = (metadata or {}).get("quantization", {}).get("mode")
    return "fp32" if mode in (None, "none") else mode


def sidecar_path(model_path):
    """Where the metadata of `model_path` lives: `<model_path>.json`."""
    return os.fspath(model_path) + ".json"


def write_metadata(model_path, metadata):
    """Writes `metadata` (a dict) as the sidecar of `model_path`; returns its path."""
    path = sidecar_path(model_path)
    with open(path, "w") as f:
        json.dump({"format": FORMAT, "version": VERSION, **metadata}, f, indent=2)
    return path


def read_metadata(model_path):
    """Reads the sidecar of `model_path`; returns None when there is none.

    Raises:
        ValueError: the sidecar exists but is not kerasseg metadata.
    """
    path = sidecar_path(model_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            metadata = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Metadata file {path!r} is not valid JSON: {error}") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(
            f"Metadata file {path!r} is not a kerasseg metadata file "
            f"(expected \"format\": \"{FORMAT}\")."
        )
    if metadata.get("version", 0) > VERSION:
        raise ValueError(
            f"Metadata file {path!r} has version {metadata['version']}; this kerasseg "
            f"reads versions <= {VERSION}. Upgrade kerasseg."
        )
    return metadata
