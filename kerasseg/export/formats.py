"""The export formats: one `ExportFormat` record each, in `EXPORT_FORMATS`.

A record says everything `kerasseg export` and `precision="auto"` need to
know about a format: its converter, the output file endings that choose it,
the precisions it takes (and its default), the ones `auto` tries, the shared
keywords its converter takes and its own command-line options. Adding an
exporter is its converter module plus one record here; the CLI builds its
`--format`, `--precision` and format options from this table.

This module imports no TensorFlow (`kerasseg export --help` stays quick): a
converter is named "module:function" and imported when it runs.
"""

import dataclasses
import importlib
import os

# Keywords the CLI fills for every converter that takes them (`ExportFormat.takes`).
SHARED = ("image_size", "output", "labels", "palette", "precision")
# ... and, for an int8 export, the guarantee's (`kerasseg.export.int8`).
INT8 = ("calibration_data", "validation_data", "calibration_steps", "min_agreement",
        "max_metric_loss")


class ExporterUnavailableError(RuntimeError):
    """The converter cannot run on this machine (a missing package or device);
    the message says what to run on the target instead."""


@dataclasses.dataclass(frozen=True)
class Option:
    """A command-line option of one or more formats: `flag` sets the
    converter's `keyword` (to the opposite of the flag's value if `negated`:
    `--low-res-logits` -> `resize_logits=False`).

    `parser` holds `argparse.add_argument`'s keywords: a "help" (which the
    CLI prefixes with the formats that take the option), type, default...
    """

    flag: str
    keyword: str
    parser: dict = dataclasses.field(default_factory=dict, compare=False)
    negated: bool = False

    @property
    def dest(self):
        """The attribute argparse stores the flag's value under."""
        return self.flag.lstrip("-").replace("-", "_")

    def value(self, args):
        """The converter keyword's value for parsed command-line `args`."""
        value = getattr(args, self.dest)
        return not value if self.negated else value


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: The `--format` value, e.g. "tflite".
        converter: "module:function" of `function(model, path, **keywords)`,
            which writes `path` and its metadata sidecar and returns the path.
        extensions: Lower-case output endings that choose this format
            (".tflite"). A format with `folder=True` takes every other path.
        precisions: The precisions the converter takes.
        default_precision: The precision without `--precision`.
        auto: The precisions `--precision auto` tries, in order; () if none.
        takes: The `SHARED` and `INT8` keywords the converter takes.
        options: Its own command-line options (`Option`).
        folder: It writes a folder (else one file).
    """

    name: str
    converter: str
    extensions: tuple = ()
    precisions: tuple = ("fp32",)
    default_precision: str = "fp32"
    auto: tuple = ()
    takes: tuple = ("image_size", "output", "labels", "palette")
    options: tuple = ()
    folder: bool = False

    def __post_init__(self):
        unknown = sorted(set(self.takes) - set(SHARED + INT8))
        if unknown:
            raise ValueError(f"ExportFormat {self.name!r}: `takes` names {unknown}, which the "
                             f"CLI does not fill; choose from {', '.join(SHARED + INT8)}")
        if self.default_precision not in self.precisions or not set(self.auto) <= set(
                self.precisions):
            raise ValueError(f"ExportFormat {self.name!r}: default_precision and auto must be "
                             f"among its precisions {self.precisions}")

    @property
    def accepted_precisions(self):
        """What `--precision` takes for this format ("auto" where it tries any)."""
        return self.precisions + (("auto",) if self.auto else ())

    def convert(self, model, path, **keywords):
        """Runs the converter (imported now) on `model`; returns what it returns."""
        module, function = self.converter.split(":")
        return getattr(importlib.import_module(module), function)(model, path, **keywords)


NCHW = Option("--nchw", "nchw", {"action": "store_true", "help": "NCHW layout"})
TFLITE_OPTIONS = (
    Option("--io-dtype", "io_dtype", {
        "default": "float32", "choices": ("float32", "uint8"),
        "help": "input type (and output type with int8)"}),
    Option("--per-tensor-weights", "per_channel", {
        "action": "store_true",
        "help": "int8: one scale per weight tensor instead of per channel (a smaller file; "
                "the agreement check still applies)"}, negated=True),
    Option("--low-res-logits", "resize_logits", {
        "action": "store_true",
        "help": "output the logits at the network's output stride and leave the resize to "
                "the image size to the runtime (faster)"}, negated=True),
    Option("--allow-flex-ops", "allow_flex_ops", {
        "action": "store_true",
        "help": "allow TensorFlow (Flex) ops where builtins do not suffice"}),
)
ONNX_OPTIONS = (
    NCHW,
    Option("--dynamic-shape", "static_shape", {
        "action": "store_true", "help": "dynamic batch/size"}, negated=True),
    Option("--opset", "opset", {"type": int, "default": 17, "help": "opset (default 17)"}),
)

EXPORT_FORMATS = {record.name: record for record in (
    ExportFormat("saved_model", "kerasseg.export.saved_model:to_saved_model", folder=True),
    ExportFormat("tflite", "kerasseg.export.tflite:to_tflite", (".tflite",),
                 precisions=("fp32", "fp16", "dynamic", "int8"),
                 auto=("fp32", "fp16", "dynamic", "int8"), takes=SHARED + INT8,
                 options=TFLITE_OPTIONS),
    ExportFormat("onnx", "kerasseg.export.onnx:to_onnx", (".onnx",),
                 precisions=("fp32", "fp16", "int8"), auto=("fp32", "fp16", "int8"),
                 takes=SHARED + INT8, options=ONNX_OPTIONS),
    # No `output` and no task metric: the engine keeps its ONNX file's.
    ExportFormat("tensorrt", "kerasseg.export.tensorrt:to_tensorrt", (".engine", ".plan"),
                 precisions=("fp32", "fp16", "int8"), default_precision="fp16",
                 takes=("image_size", "labels", "palette", "precision", "calibration_data",
                        "calibration_steps", "min_agreement"),
                 options=(NCHW,)),
)}


def format_of_path(path):
    """The format an output path's ending (in any case) chooses; another
    ending (or none) chooses the format that writes a folder."""
    extension = os.path.splitext(path)[1].lower()
    for record in EXPORT_FORMATS.values():
        if extension in record.extensions:
            return record.name
    return next(record.name for record in EXPORT_FORMATS.values() if record.folder)


def options():
    """Every format's command-line options, each once, with the formats that take it."""
    found = {}
    for record in EXPORT_FORMATS.values():
        for option in record.options:
            found.setdefault(option.flag, (option, []))[1].append(record.name)
    return list(found.values())
