"""`kerasseg` command line. Each subcommand lives in its own module,
`kerasseg.cli.<command>`, imported only when used, so `kerasseg --help` does
not import TensorFlow. A command module provides `add_arguments(parser)` and
`run(args) -> int`.

Known failures (bad data, bad config, a missing file, an unsupported op, a
missing optional package) end in one or two lines on stderr that name the
file or key and what was expected, and exit code 2; `--debug` shows the
traceback instead, and TensorFlow's C++ log lines, which the CLI otherwise
filters out of stderr. Any other exception is a bug: its traceback, then a
line asking to report it, and exit code 1.
"""

import argparse
import atexit
import importlib
import linecache
import os
import re
import sys
import threading
import traceback

from kerasseg.utils import KerassegError

# command -> one-line help
COMMANDS = {
    "quickstart": "train, evaluate and export a small model in minutes",
    "train": "train from a YAML/JSON config (resumes killed runs)",
    "evaluate": "score a model: whole-image, sliding-window, multi-scale",
    "predict": "segment images; write label maps and overlays",
    "validate": "check every file of a config's splits before training",
    "export": "export a .keras model: SavedModel, TFLite, ONNX, TensorRT",
    "summary": "build every architecture and print a table",
    "pretrained": "list the pretrained presets (Google's published files)",
}
# Lines of TensorFlow's C++ logging ("I0000 00:00:1795912566.004987  22700
# port.cc:153] ..." for INFO, WARNING and ERROR, the banner printed before absl
# is initialised, the CPU-feature note's second line), which TF 2.21 prints
# whatever TF_CPP_MIN_LOG_LEVEL says. Its ERROR lines are noise too ("failed
# call to cuInit" on every machine without a GPU): real failures raise. Fatal
# (F) lines still show. LiteRT announces its CPU delegate on every load.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |\s*\[\[\{\{node "
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|To enable the following instructions: |INFO: Created TensorFlow Lite XNNPACK delegate)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [word for word in argv if word != "--debug"]
    parser = argparse.ArgumentParser(
        prog="kerasseg", description=__doc__.splitlines()[0],
        epilog="--debug (any command): show tracebacks and TensorFlow's log lines")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported, before parsing, so that
    # `kerasseg COMMAND --help` lists its arguments.
    chosen = next((word for word in argv if not word.startswith("-")), None)
    module = None
    for name, help_text in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"kerasseg.cli.{name}")
            module.add_arguments(subparser)
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 2
    try:
        return module.run(args) or 0
    except Exception as error:  # noqa: BLE001 - reported below, or re-raised
        if debug:
            raise
        message = user_error(error)
        if message is None:
            traceback.print_exc()
            print(f"kerasseg {args.command}: this is a bug, please report it with the "
                  "traceback above.", file=sys.stderr)
            return 1
        print(f"kerasseg {args.command}: error: {message}", file=sys.stderr)
        return 2


def user_error(error):
    """The message a person can act on for a failure kerasseg raised on purpose,
    or None for a bug.

    On purpose: a `KerassegError`; a ValueError, OSError or ImportError that a
    `raise` statement in kerasseg's own code raised (its checks raise
    ValueError, as Keras' do); an OSError about a file (missing, not
    readable); a missing optional package (the message says what to install);
    TensorFlow's op errors while reading data (a bad file: the message names
    it). A ValueError from inside NumPy or Keras, a TypeError, a KeyError...
    are bugs.
    """
    if isinstance(error, KerassegError):
        return str(error) or type(error).__name__
    if isinstance(error, (ValueError, OSError, ImportError)):
        message = _raised_by_kerasseg(error)
        if message is not None:
            return message
    if (isinstance(error, OSError) and error.filename) or isinstance(error, ModuleNotFoundError):
        return str(error)
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None and isinstance(error, tensorflow.errors.OpError):
        from kerasseg.data.readers import error_summary

        summary = error_summary(error.message)
        if isinstance(error, tensorflow.errors.ResourceExhaustedError):
            summary += " (out of memory: lower data.batch_size or data.image_size)"
        elif isinstance(error, tensorflow.errors.InvalidArgumentError):
            summary += "\n(`kerasseg validate --config ...` lists every bad file of a split)"
        return summary
    return None


def _raised_by_kerasseg(error):
    """The message of `error` if a `raise` statement in the kerasseg package
    raised it (not a call into NumPy, Keras or Python that failed there), else
    None. TensorFlow's autograph re-raises what a function it converts
    (a `tf.data` map) raised, with the stack in the message: the original
    frame and message are in its `ag_error_metadata`."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is not None:
        filename = frame.tb_frame.f_code.co_filename
        if _is_raise_in_kerasseg(filename, linecache.getline(filename, frame.tb_lineno)):
            return str(error) or type(error).__name__
    metadata = getattr(error, "ag_error_metadata", None)
    stack = getattr(metadata, "translated_stack", None)
    if stack and _is_raise_in_kerasseg(stack[0].filename, stack[0].code):  # innermost first
        cause = str(getattr(metadata, "cause_message", error))
        return cause.removeprefix(f"{type(error).__name__}: ")
    return None


def _is_raise_in_kerasseg(filename, line):
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (os.path.abspath(filename).startswith(package + os.sep)
            and line.lstrip().startswith("raise"))


def quiet_tensorflow():
    """Silences TensorFlow's logging for this process: Python-side through
    TF_CPP_MIN_LOG_LEVEL, C++ lines by filtering them out of file descriptor 2
    (the rest of stderr passes through unchanged)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    terminal = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not NATIVE_LOG_LINE.match(line):
                    os.write(terminal, line)

    thread = threading.Thread(target=forward, name="kerasseg-stderr-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(terminal, 2)  # the pipe's last write end closes: the thread drains it
        thread.join(timeout=2)

    atexit.register(restore)


def console_main():
    """The `kerasseg` program: `main` with TensorFlow's log lines filtered out
    of stderr, unless `--debug` asks for them."""
    if "--debug" not in sys.argv[1:]:
        quiet_tensorflow()
    sys.exit(main())


if __name__ == "__main__":
    console_main()
