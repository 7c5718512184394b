"""Every architecture built and measured: parameters, FLOPs, output shape and
CPU forward time (the table of `kerasseg summary`)."""

import time

import numpy as np

# name -> (builder name, small keyword arguments that still show the design)
SUMMARY_CONFIGS = {
    "fcn32s": ("fcn32s", {"num_classes": 21}),
    "fcn16s": ("fcn16s", {"num_classes": 21}),
    "fcn8s": ("fcn8s", {"num_classes": 21}),
    "segnet": ("segnet", {"num_classes": 12}),
    "unet": ("unet", {"num_classes": 2}),
    "pspnet_resnet50": ("pspnet", {"num_classes": 21}),
    "deeplabv3_resnet101": ("deeplabv3", {"num_classes": 21}),
    "deeplabv3plus_xception65": ("deeplabv3plus", {"num_classes": 21}),
    "deeplabv3plus_mobilenetv2": ("deeplabv3plus", {"num_classes": 21, "backbone": "mobilenetv2"}),
    "lraspp_mobilenetv3large": ("lraspp", {"num_classes": 21}),
    "lpsnet_resnet50": ("lpsnet", {"num_classes": 21, "thing_classes": None}),
}


def count_flops(model, input_size):
    """Floating-point operations of one forward pass at `input_size` (h, w),
    counted by TensorFlow's graph profiler (one multiply-add = 2 FLOPs)."""
    import tensorflow as tf

    spec = tf.TensorSpec((1, *input_size, model.input_shape[-1]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def forward_seconds(model, input_size, repeats=3):
    """Median wall time of one forward pass of a batch of one image."""
    x = np.random.default_rng(0).uniform(0, 255, (1, *input_size, model.input_shape[-1]))
    x = x.astype("float32")
    model.predict_on_batch(x)  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def summarize(configs, input_size=(512, 512), flops=True, repeats=3):
    """Yields one row dict per configuration."""
    from kerasseg.models import MODELS

    for label, (builder_name, kwargs) in configs.items():
        model = MODELS[builder_name](**kwargs)
        row = {
            "model": label,
            "params": model.count_params(),
            "output": str(tuple(model.output_shape)),
            "flops": count_flops(model, input_size) if flops else None,
            "forward_ms": 1000 * forward_seconds(model, input_size, repeats),
        }
        yield row


def format_row(row):
    gflops = "-" if row["flops"] is None else f"{row['flops'] / 1e9:.1f}"
    return (
        f"{row['model']:<22} {row['params'] / 1e6:>9.2f}M {gflops:>9} "
        f"{row['forward_ms']:>10.0f} {row['output']}"
    )


def print_table(rows, input_size):
    print(
        f"{'model':<22} {'params':>10} {'GFLOPs':>9} {'forward ms':>10} output  (at {input_size})"
    )
    for row in rows:
        print(format_row(row), flush=True)
