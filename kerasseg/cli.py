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
    parser = argparse.ArgumentParser(prog="kerasseg", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text)
        subparser.set_defaults(_module=module_name)
    args, _ = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    module.add_arguments(subparsers.choices[args.command])
    args = parser.parse_args(argv)
    return module.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
