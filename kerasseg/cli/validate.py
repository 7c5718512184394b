"""`kerasseg validate`: decode every file of a config's splits and list every bad one.

    kerasseg validate --config run.yaml                 # the train and val splits
    kerasseg validate --config run.yaml --split test

Training finds a bad file only when a batch holds it (and then names it);
this finds all of them first, in one report.
"""

from kerasseg.cli.options import add_config_arguments, load_config


def add_arguments(parser):
    add_config_arguments(parser, required=True)
    parser.add_argument("--split", nargs="+", help="splits to check (default: train and val)")
    parser.add_argument("--max-errors", type=int, default=50,
                        help="stop a split after this many bad files")


def validate_splits(config, splits, max_errors=50):
    """Checks each split of `config`'s dataset; prints a line per split.

    Raises:
        ValueError: listing every bad file found (up to `max_errors` a split).
    """
    from kerasseg.data.readers import validate
    from kerasseg.train.datasets import reader_options

    data = config.data
    if data.dataset == "synthetic":
        print("data.dataset is 'synthetic': scenes are drawn, there are no files to check.")
        return
    if config.task != "semantic":
        raise ValueError(f"`kerasseg validate` checks semantic datasets; this config trains a "
                         f"{config.task} model.")
    for split in splits:
        count = validate(data.dataset, data.root, split, max_errors=max_errors,
                         **reader_options(config))
        print(f"{data.dataset} {split!r}: {count} examples, all valid")


def run(args):
    config = load_config(args)
    splits = args.split or (config.data.train_split, config.data.val_split)
    validate_splits(config, splits, args.max_errors)
    return 0
