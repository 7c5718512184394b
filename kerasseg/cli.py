"""`kerasseg` command line. Each subcommand lives in its own module, imported
only when used, so `kerasseg --help` does not import TensorFlow.

A subcommand module provides `add_arguments(parser)` and `run(args) -> int`.
"""

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "quickstart": ("kerasseg.quickstart", "train, evaluate and export a small model in minutes"),
    "train": ("kerasseg.train.cli", "train from a YAML/JSON config (resumes killed runs)"),
    "evaluate": ("kerasseg.train.cli", "score a model: whole-image, sliding-window, multi-scale"),
    "predict": ("kerasseg.train.cli", "segment images; write label maps and overlays"),
    "summary": ("kerasseg.models.summary", "build every architecture and print a table"),
    "export": ("kerasseg.export.cli", "export a .keras model: SavedModel, TFLite, ONNX, TensorRT"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="kerasseg", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported, before parsing, so that
    # `kerasseg COMMAND --help` lists its arguments.
    chosen = next((word for word in argv if not word.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 2
    return module.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
