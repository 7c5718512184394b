"""`kerasseg train`: train from a YAML/JSON config (resumes killed runs).

    kerasseg train --config run.yaml --set training.epochs=5 --output-dir runs/a
    kerasseg train --config run.yaml --validate-data   # check every file first
    kerasseg train --config run.yaml --overwrite       # replace the run in output_dir

A run directory belongs to one run at a time; the same config resumes its
unfinished run, anything else there is refused unless `--overwrite`
(`kerasseg.train.rundir`).
"""

from kerasseg.cli.options import add_config_arguments, add_options, load_config

OPTIONS = (
    ("--output-dir", {"help": "run directory (overrides training.output_dir)"}),
    ("--epochs", {"type": int, "help": "overrides training.epochs"}),
    ("--overwrite", {"action": "store_true",
                     "help": "replace the run the output directory holds (its files are "
                             "deleted once the new run has passed its first batch)"}),
    ("--validate-data", {"action": "store_true",
                         "help": "decode every file of the train and val splits first and list "
                                 "every bad one (as `kerasseg validate`)"}),
)


def add_arguments(parser):
    add_config_arguments(parser, required=False)
    add_options(parser, OPTIONS)


def run(args):
    from kerasseg.cli.validate import validate_splits
    from kerasseg.train import train

    config = load_config(args)
    if args.validate_data:
        validate_splits(config, (config.data.train_split, config.data.val_split))
    result = train(config, overwrite=args.overwrite)
    print(f"Run directory: {result.run_dir}")
    return 0
