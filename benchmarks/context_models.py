"""PSPNet / DeepLabv3 / DeepLabv3+ on CPU: parameters, multiply-adds, and
Keras and TFLite latency at 512x512 with 1 and 2 threads, beside keras-hub's
DeepLabV3Plus (ResNet-50) built from its classes with random weights (no
download), all in the same run. Latencies are also given as ratios to the
keras-hub model's, since absolute times drift between runs and machines.

Usage:
    python benchmarks/context_models.py                # every configuration
    python benchmarks/context_models.py --size 256 --repeats 2 --configs \
        deeplabv3plus_mobilenetv2 keras_hub_deeplabv3plus_resnet50

Each thread count runs in its own process (TensorFlow fixes its thread pools
at start-up). Models are converted to builtin-only TFLite once, in the parent.
Requires keras-hub (`pip install "keras-hub>=0.32,<0.33"`) for the peer.
"""

import argparse
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

PEER = "keras_hub_deeplabv3plus_resnet50"


def _kerasseg(builder, **kwargs):
    def build(shape):
        import kerasseg

        return getattr(kerasseg, builder)(input_shape=shape, **kwargs)

    return build


def _keras_hub_deeplabv3plus(shape):
    """keras-hub's DeepLabV3Plus as its `deeplab_v3_plus_resnet50_pascalvoc`
    preset configures it, from the classes (random weights, no download)."""
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="bottleneck_block",
        image_shape=shape,
    )
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P5",
        upsampling_size=8,
        dilation_rates=[6, 12, 18],
        low_level_feature_key="P2",
        image_shape=shape,
    )
    return keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=21)


CONFIGS = {
    "pspnet_resnet50": _kerasseg("pspnet", num_classes=21),
    "deeplabv3_resnet101": _kerasseg("deeplabv3"),
    "deeplabv3_resnet50": _kerasseg("deeplabv3", backbone="resnet50"),
    "deeplabv3_mobilenetv2": _kerasseg("deeplabv3", backbone="mobilenetv2"),
    "deeplabv3plus_xception65": _kerasseg("deeplabv3plus"),
    "deeplabv3plus_resnet50": _kerasseg("deeplabv3plus", backbone="resnet50"),
    "deeplabv3plus_mobilenetv2": _kerasseg("deeplabv3plus", backbone="mobilenetv2"),
    "deeplabv3plus_mobilenetv3small": _kerasseg("deeplabv3plus", backbone="mobilenetv3small"),
    PEER: _keras_hub_deeplabv3plus,
}


def _layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def count_macs(model):
    """Multiply-adds of the convolutions and dense layers of a fixed-size
    model (the "MAdds" of the MobileNet papers; FLOPs are about twice this)."""
    import keras

    macs = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, height, width, channels = layer.output.shape
            macs += height * width * channels * math.prod(layer.kernel_size)
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            fan_in = layer.kernel.shape[2] * math.prod(layer.kernel_size)
            macs += height * width * filters * fan_in
        elif isinstance(layer, keras.layers.Dense):
            macs += math.prod(layer.output.shape[1:]) * layer.kernel.shape[0]
    return macs


def convert(model, path):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter lists every tensor
        flatbuffer = converter.convert()
    with open(path, "wb") as file:
        file.write(flatbuffer)


def _median_seconds(function, repeats):
    function()  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def worker(args):
    """Times every configuration at one thread count; prints JSON lines."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from ai_edge_litert.interpreter import Interpreter

    image = np.random.default_rng(0).uniform(0, 255, (1, args.size, args.size, 3)).astype("float32")
    for name in args.configs:
        model = CONFIGS[name]((args.size, args.size, 3))
        infer = tf.function(lambda x, model=model: model(x, training=False))
        keras_s = _median_seconds(lambda infer=infer: infer(image).numpy(), args.repeats)

        interpreter = Interpreter(
            model_path=os.path.join(args.tflite_dir, f"{name}.tflite"), num_threads=args.threads
        )
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]

        def run_tflite(interpreter=interpreter, index=index):
            interpreter.set_tensor(index, image)
            interpreter.invoke()

        tflite_s = _median_seconds(run_tflite, args.repeats)
        row = {"name": name, "threads": args.threads, "keras": keras_s, "tflite": tflite_s}
        print(json.dumps(row), flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--tflite-dir",
        help="keep the .tflite files in this folder, and reuse those already there",
    )
    return parser.parse_args()


def static_figures(args, tflite_dir):
    """Parameters, GMACs and TFLite size of each configuration, converting
    those not already in `tflite_dir`."""
    import keras

    static = {}
    for name in args.configs:
        model = CONFIGS[name]((args.size, args.size, 3))
        path = os.path.join(tflite_dir, f"{name}.tflite")
        if not os.path.exists(path):
            convert(model, path)
        static[name] = {
            "params": model.count_params(),
            "gmacs": count_macs(model) / 1e9,
            "mb": os.path.getsize(path) / 1e6,
        }
        print(f"# built and converted {name}", file=sys.stderr, flush=True)
        del model
        keras.backend.clear_session()
    return static


def latencies(args, tflite_dir):
    """{(name, threads): row} timed by one worker process per thread count."""
    timings = {}
    for threads in args.threads:
        command = [
            sys.executable, __file__, "--worker", "--threads", str(threads),
            "--size", str(args.size), "--repeats", str(args.repeats),
            "--tflite-dir", tflite_dir, "--configs", *args.configs,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        for line in output.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                timings[row["name"], row["threads"]] = row
    return timings


def print_table(args, static, timings):
    print(f"\nCPU latency at {args.size}x{args.size}, batch 1, median of {args.repeats} "
          f"(ms; in brackets: ratio to {PEER} in this run, lower is faster)\n")
    header = "| configuration | params (M) | GMACs | TFLite MB |"
    for threads in args.threads:
        header += f" Keras {threads}T | TFLite {threads}T |"
    print(header)
    print("|" + "---|" * (4 + 2 * len(args.threads)))
    for name in args.configs:
        s = static[name]
        row = f"| {name} | {s['params'] / 1e6:.2f} | {s['gmacs']:.1f} | {s['mb']:.1f} |"
        for threads in args.threads:
            for runtime in ("keras", "tflite"):
                ms = 1000 * timings[name, threads][runtime]
                peer = timings.get((PEER, threads))
                ratio = f" ({ms / (1000 * peer[runtime]):.2f}x)" if peer else ""
                row += f" {ms:.0f}{ratio} |"
        print(row)


def main():
    args = parse_args()
    if args.worker:
        args.threads = args.threads[0]
        return worker(args)
    with contextlib.ExitStack() as stack:
        tflite_dir = args.tflite_dir or stack.enter_context(tempfile.TemporaryDirectory())
        os.makedirs(tflite_dir, exist_ok=True)
        static = static_figures(args, tflite_dir)
        timings = latencies(args, tflite_dir)
    print_table(args, static, timings)


if __name__ == "__main__":
    main()
