"""`kerasseg pretrained`: the presets, where their files come from, and the
scores measured here (`benchmarks/pretrained.py`).

    kerasseg pretrained
    KERASSEG_HOME=/data/pretrained kerasseg pretrained   # where files are looked up
"""

import os


def add_arguments(parser):
    parser.add_argument("--fetch", nargs="*", metavar="PRESET", default=None,
                        help="download these presets' files now (all without names) and check "
                             "their SHA-256")


def _architecture(preset):
    arguments = preset.arguments
    alpha = preset.alpha
    width = "" if alpha == 1.0 else f" x{alpha}"
    if preset.builder == "backbone":
        return f"{arguments['backbone']}{width} backbone"
    return f"{preset.builder} {arguments['backbone']}{width}"


def run(args):
    from kerasseg.pretrained import PRESETS, home, preset_file

    if args.fetch is not None:
        for name in args.fetch or PRESETS:
            print(f"{name}: {preset_file(name)}")
        return 0
    folder = home()
    rows = [("preset", "architecture", "classes", "source file", "licence", "MB", "here",
             "score (measured here)")]
    for preset in PRESETS.values():
        present = os.path.isfile(os.path.join(folder, preset.file))
        rows.append((preset.name, _architecture(preset), str(len(preset.classes) or "-"),
                     preset.file, "Apache-2.0", f"{preset.size / 1e6:.2f}",
                     "yes" if present else "no", preset.score))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    print(f"\nFiles: {folder} (KERASSEG_HOME); a missing one is downloaded on first use from "
          "its pinned URL and checked against its SHA-256.")
    return 0
