"""`kerasseg summary`: build every architecture and print a table of
parameters, FLOPs, output shape and CPU forward time."""


def add_arguments(parser):
    parser.add_argument("--size", type=int, default=256, help="square input size (default 256)")
    parser.add_argument("--models", nargs="*", default=None, help="subset of model names")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")


def run(args):
    from kerasseg.models.summary import SUMMARY_CONFIGS, print_table, summarize

    unknown = set(args.models or ()) - set(SUMMARY_CONFIGS)
    if unknown:
        raise ValueError(
            f"--models: unknown {sorted(unknown)}; choose from {sorted(SUMMARY_CONFIGS)}"
        )
    configs = {k: v for k, v in SUMMARY_CONFIGS.items() if not args.models or k in args.models}
    size = (args.size, args.size)
    print_table(summarize(configs, size, flops=not args.no_flops), size)
    return 0
