"""Parameters, FLOPs and CPU forward latency at 512x512 for every builder.

    python benchmarks/models.py [--size 512] [--models fcn8s unet ...]
"""

import argparse

from kerasseg.models.summary import add_arguments, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(size=512)
    raise SystemExit(run(parser.parse_args()))
