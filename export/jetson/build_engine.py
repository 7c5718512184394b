"""Build a TensorRT engine from a kerasseg ONNX file, on the Jetson itself.

Engines are specific to the GPU and TensorRT version, so build them on the
device that runs them. The engine is strongly typed: its precision (fp32,
fp16, or int8 through Q/DQ nodes) is the ONNX file's, chosen at export with
`kerasseg export ... --precision`. Needs TensorRT 10 (JetPack 6) or 11 with
its Python bindings and numpy; not TensorFlow.

    python3 export/jetson/build_engine.py model_fp16.onnx model_fp16.engine
    python3 export/jetson/build_engine.py model_int8.onnx model_int8.engine --precision int8
"""

import argparse
import sys
from pathlib import Path

# Run from a checkout without installing kerasseg (its runtime needs no TensorFlow).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kerasseg.runtime.metadata import PRECISIONS, file_precision, read_metadata, write_metadata  # noqa: E402  # noqa: E402
from kerasseg.runtime.tensorrt import build_engine  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", help="a .onnx file from `kerasseg export` (static shape)")
    parser.add_argument("engine", help="the .engine/.plan file to write")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="check that the ONNX file was exported at this precision")
    parser.add_argument("--workspace-gb", type=float, default=2.0)
    args = parser.parse_args(argv)

    metadata = read_metadata(args.onnx)
    precision = file_precision(metadata) if metadata else None
    if args.precision and precision and args.precision != precision:
        sys.exit(f"{args.onnx} was exported as {precision}, not {args.precision}: re-export "
                 f"it with `kerasseg export ... --precision {args.precision}`")
    build_engine(args.onnx, args.engine, args.workspace_gb)
    if metadata:  # the engine gets the ONNX sidecar, so run_engine.py finds labels and layout
        write_metadata(args.engine, metadata)
    print(f"wrote {args.engine} ({precision or 'precision unknown: no sidecar'})")


if __name__ == "__main__":
    main()
