"""Time for a small DeepLabv3+ to reach mean IoU >= 0.85 on the synthetic val split.

Trains the quickstart model (DeepLabv3+, MobileNetV2 alpha 0.35, 128x128) with
`kerasseg.train.train`, stopping at the first epoch whose validation mean IoU
reaches the target, then evaluates the model with `kerasseg.train.evaluate`
(whole image, and multi-scale + flip). Then it times the same number of
training steps with plain `model.fit` on the same model, data and loss (no
callbacks, no validation) for two epochs' steps as the peer: the per-step
ratio is the trainer's overhead (validation, metrics, checkpoints, logs).

    python benchmarks/train_synthetic.py --threads 2 --max-epochs 40

Prints a table; times are wall-clock seconds on this machine, compare only
within one run.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class StopAtTarget:
    """Keras callback factory: stop once `val_mean_iou` >= target; records when."""

    def __new__(cls, target):
        import keras

        class _Stop(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.reached = None
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                if self.reached is None and logs.get("val_mean_iou", 0) >= target:
                    self.reached = (epoch + 1, time.perf_counter() - self.start)
                    self.model.stop_training = True

        return _Stop()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width")
    parser.add_argument("--output-stride", type=int, default=None,
                        help="backbone output stride (default: the quickstart's)")
    parser.add_argument("--scale-range", type=float, nargs=2, default=(0.5, 2.0),
                        help="random scale augmentation range")
    return parser.parse_args()


def benchmark_config(args, output_dir):
    """The quickstart's training config with this run's model and data options."""
    from kerasseg.cli.quickstart import quickstart_config

    config = quickstart_config(output_dir, epochs=args.max_epochs)
    args_model = dict(config.model.args, backbone_kwargs={"alpha": args.alpha})
    if args.output_stride:
        args_model["output_stride"] = args.output_stride
    return config.replace(model={"args": args_model},
                          data={"scale_range": list(args.scale_range)})


def plain_fit_seconds(config, peer_steps):
    """Seconds of plain Keras fit on the same model, data stream and loss as
    `train()`, for `peer_steps` steps (tracing included, as in `train()`)."""
    import keras

    from kerasseg.train import TASKS, build_model, load_split
    from kerasseg.train.datasets import training_stream

    task = TASKS[config.task]
    data = load_split(config, config.data.train_split)
    keras.utils.set_random_seed(0)
    model = build_model(config, data.num_classes, **task.builder_args(data))
    loss, _ = task.loss(config)
    model.compile(keras.optimizers.AdamW(config.optimizer.learning_rate), loss)
    stream = training_stream(data.dataset, config, 0, peer_steps, task.pad_label(config),
                             task.targets(config, data))
    start = time.perf_counter()
    model.fit(stream, epochs=1, steps_per_epoch=peer_steps, verbose=0, shuffle=False)
    return time.perf_counter() - start


def print_rows(rows):
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main():
    args = parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from kerasseg.data.synthetic import CLASS_NAMES
    from kerasseg.metrics import scores_table
    from kerasseg.train import evaluate, split_dataset, train

    output_dir = args.output_dir or tempfile.mkdtemp(prefix="kerasseg_bench_")
    config = benchmark_config(args, output_dir)
    stop = StopAtTarget(args.target)
    start = time.perf_counter()
    result = train(config, callbacks=[stop])
    train_seconds = time.perf_counter() - start
    epochs_run = len(result.history["loss"])
    steps = epochs_run * result.steps_per_epoch

    val = split_dataset(config, "val")
    whole = evaluate(result.model, val, len(CLASS_NAMES), class_names=CLASS_NAMES)
    start = time.perf_counter()
    multi = evaluate(result.model, val, len(CLASS_NAMES), class_names=CLASS_NAMES,
                     scales=(0.75, 1.0, 1.25), flip=True)
    multi_seconds = time.perf_counter() - start

    # Peer: plain Keras fit for two epochs' steps; compared per step.
    peer_steps = min(steps, 2 * result.steps_per_epoch)
    plain_seconds = plain_fit_seconds(config, peer_steps)

    print(scores_table(whole))
    reached = stop.reached
    print_rows([
        ("target val mean IoU", f"{args.target:.2f}"),
        ("reached at epoch", f"{reached[0]}" if reached else f"not in {epochs_run} epochs"),
        ("time to target (s)", f"{reached[1]:.1f}" if reached else "-"),
        ("train() total (s), incl. tracing", f"{train_seconds:.1f}"),
        ("steps / images seen", f"{steps} / {steps * config.data.batch_size}"),
        ("val mean IoU, whole image", f"{whole['mean_iou']:.4f}"),
        ("val pixel acc / mean acc / fwIoU",
         f"{whole['pixel_accuracy']:.4f} / {whole['mean_accuracy']:.4f} / "
         f"{whole['frequency_weighted_iou']:.4f}"),
        ("val mean IoU, scales .75/1/1.25 + flip", f"{multi['mean_iou']:.4f}"),
        ("multi-scale+flip eval of 64 images (s)", f"{multi_seconds:.1f}"),
        ("train() seconds per step", f"{train_seconds / steps:.3f}"),
        (f"plain keras fit, {peer_steps} steps: seconds per step",
         f"{plain_seconds / peer_steps:.3f}"),
        ("train() / plain fit, per step",
         f"{(train_seconds / steps) / (plain_seconds / peer_steps):.2f}"),
        ("threads", f"{args.threads}"),
    ])
    print(f"\nRun directory: {output_dir}")


if __name__ == "__main__":
    main()
