"""LPSNet on synthetic panoptic scenes: PQ after a short CPU training, and
inference time against a semantic model plus a separate detector.

Trains a small LPSNet (MobileNetV2 alpha 0.35, FPN 64 channels, from scratch:
nothing is downloaded) on `kerasseg.data.synthetic` scenes for a bounded
wall-clock time (AdamW, its rate decayed over the time budget; the paper's
SGD recipe needs far longer), picks the merge's score threshold on the
synthetic val split, evaluates PQ/SQ/RQ (Kirillov et al.) on the test split
with the numpy panoptic head, then times, in the same run:

- LPSNet: one network (backbone + FPN + both heads) + panoptic merge;
- the two-network baseline: the same backbone + FPN with only the semantic
  head, plus a second copy with only the box head (a one-stage detector),
  + the same merge.

Training scenes are drawn once (2048 by default, about 30 s, not counted in
the training time): with 256 the model overfits them within minutes (person
IoU 0.57 on train scenes, 0.38 on val), and thin or small things suffer most.

Run:
    python benchmarks/lpsnet.py --minutes 8 --output lpsnet_benchmark.json
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SIZE_RANGES = ((0, 32), (32, 64), (64, 128), (128, 256), (256, float("inf")))
MERGE_OPTIONS = {"min_thing_area": 8, "min_stuff_area": 32, "score_threshold": 0.3}
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)


def build(num_classes, thing_classes, args):
    from kerasseg.models.lpsnet import lpsnet

    return lpsnet(
        num_classes, backbone=args.backbone, thing_classes=thing_classes,
        fpn_filters=args.fpn_filters, semantic_filters=args.fpn_filters // 2,
        head_convs=args.head_convs, ppm=args.ppm, backbone_kwargs={"alpha": args.alpha},
    )


def scenes(split, count, size, seed=0):
    from kerasseg.data.synthetic import _split_seeds, make_scene

    return [make_scene(s, size, size) for s in _split_seeds(split, count, seed)]


def training_data(thing_classes, args):
    """Scenes and their LPSNet targets, drawn and encoded once, in memory."""
    from kerasseg.panoptic import compose_panoptic, encode_targets

    images, targets = [], {"semantic": [], "class_logits": [], "boxes": [], "borderness": []}
    for scene in scenes("train", args.train_images, args.size):
        panoptic = compose_panoptic(scene["semantic"], scene["instances"], thing_classes)
        encoded = encode_targets(panoptic, thing_classes, size_ranges=SIZE_RANGES)
        images.append(scene["image"])
        targets["semantic"].append(encoded["semantic"].astype("uint8"))
        targets["class_logits"].append(encoded["class"])
        targets["boxes"].append(encoded["boxes"])
        targets["borderness"].append(encoded["borderness"][:, None])
    return np.stack(images), {k: np.stack(v) for k, v in targets.items()}


def train(model, thing_classes, args):
    import keras
    import tensorflow as tf

    from kerasseg.panoptic import compile_lpsnet

    start = time.time()
    images, targets = training_data(thing_classes, args)
    data_seconds = time.time() - start

    def augment(image, target):
        # Photometric only: geometric flips would need the box targets flipped
        # (fresh scenes serve better than flipped ones anyway).
        image = tf.cast(image, tf.float32) * tf.random.uniform((), 0.8, 1.2)
        target = {**target, "semantic": tf.cast(target["semantic"], tf.int32)}
        return tf.clip_by_value(image, 0, 255), target

    data = tf.data.Dataset.from_tensor_slices((images, targets))
    data = data.shuffle(len(images), seed=0).repeat().map(augment).batch(args.batch)
    compile_lpsnet(model, optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=1e-4),
                   preset="cityscapes")

    class Budget(keras.callbacks.Callback):
        """Poly decay of the learning rate over the budget (wall-clock time, or
        `--steps`), then stop: a run bounded in time still ends at a low rate."""

        def on_train_begin(self, logs=None):
            self.start = time.time()
            self.steps = 0

        def progress(self):
            if args.steps:
                return self.steps / args.steps
            return (time.time() - self.start) / (args.minutes * 60)

        def on_train_batch_begin(self, batch, logs=None):
            if args.lr_decay:
                rate = args.learning_rate * max(1 - self.progress(), 0.01) ** 0.9
                self.model.optimizer.learning_rate.assign(rate)

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.progress() >= 1:
                self.model.stop_training = True

    start = time.time()
    budget = Budget()
    history = model.fit(data, steps_per_epoch=25, epochs=100000, verbose=2, callbacks=[budget],
                        shuffle=False)
    return data_seconds, time.time() - start, budget.steps, history.history["loss"][-1]


def evaluate(model, thing_classes, num_classes, split, count, size, score_threshold):
    from kerasseg.panoptic import compose_panoptic, panoptic_merge, panoptic_statistics, summarize

    stats = np.zeros((num_classes, 4))
    for scene in scenes(split, count, size):
        outputs = model.predict_on_batch(scene["image"][None].astype("float32"))
        outputs = {k: np.asarray(v)[0] for k, v in outputs.items()}
        prediction = panoptic_merge(outputs["semantic"], outputs["class_logits"], outputs["boxes"],
                                    outputs["borderness"], thing_classes,
                                    **{**MERGE_OPTIONS, "score_threshold": score_threshold})
        truth = compose_panoptic(scene["semantic"], scene["instances"], thing_classes)
        stats += panoptic_statistics(truth, prediction, num_classes, thing_classes)
    return summarize(stats, thing_classes)


def choose_threshold(model, thing_classes, num_classes, args):
    """The merge's score threshold with the best PQ on the synthetic *val*
    split (disjoint from test, where PQ is then reported)."""
    scores = {t: evaluate(model, thing_classes, num_classes, "val", args.tune_images, args.size,
                          t)["pq"] for t in THRESHOLDS}
    return max(scores, key=scores.get), scores


def timing(trained, thing_classes, num_classes, args, size, repeats):
    """Median ms of LPSNet vs semantic model + detector, measured alternately.

    All three networks carry the trained weights, so both paths feed the merge
    the same outputs and the merge does the same work.
    """
    import keras
    import tensorflow as tf

    from kerasseg.panoptic import panoptic_merge

    full, second = (build(num_classes, thing_classes, args) for _ in range(2))
    full.set_weights(trained.get_weights())
    second.set_weights(trained.get_weights())
    semantic_only = keras.Model(full.input, full.output["semantic"])
    detector = keras.Model(
        second.input, {k: second.output[k] for k in ("class_logits", "boxes", "borderness")}
    )
    image = scenes("test", 1, size)[0]["image"][None].astype("float32")
    lpsnet_fn, semantic_fn, detector_fn = (tf.function(m, jit_compile=False)
                                           for m in (full, semantic_only, detector))

    def merged(outputs):
        o = {k: np.asarray(v)[0] for k, v in outputs.items()}
        return panoptic_merge(o["semantic"], o["class_logits"], o["boxes"], o["borderness"],
                              thing_classes, **MERGE_OPTIONS)

    steps = {
        "lpsnet": lambda: merged(lpsnet_fn(image)),
        "semantic+detector": lambda: merged({"semantic": semantic_fn(image),
                                             **detector_fn(image)}),
    }
    same = bool(np.array_equal(steps["lpsnet"](), steps["semantic+detector"]()))
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    results = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    results["same_panoptic_output"] = same
    results["params_lpsnet"] = full.count_params()
    results["params_two_networks"] = semantic_only.count_params() + detector.count_params()
    return results


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    parser.add_argument("--steps", type=int, default=None,
                        help="train this many steps instead of --minutes")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--train-images", type=int, default=2048)
    parser.add_argument("--test-images", type=int, default=64)
    parser.add_argument("--tune-images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--lr-decay", action=argparse.BooleanOptionalAction, default=True,
                        help="poly decay of the learning rate over the budget")
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--fpn-filters", type=int, default=64)
    parser.add_argument("--head-convs", type=int, default=2)
    parser.add_argument("--ppm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--timing-sizes", type=int, nargs="*", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default=None)
    parser.add_argument("--save-model", default=None, help="save the trained model (.keras)")
    return parser.parse_args()


def print_quality(quality, threshold, tuning, steps, seconds, args):
    from kerasseg.data.synthetic import CLASS_NAMES

    print(f"\nScore threshold {threshold} (best PQ on {args.tune_images} val-split scenes: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in tuning.items()) + ")")
    print(f"Panoptic quality on {args.test_images} synthetic test scenes "
          f"({args.size}x{args.size}), after {steps} steps / {seconds:.0f} s:")
    print(f"{'':8s}{'PQ':>8s}{'SQ':>8s}{'RQ':>8s}")
    for suffix, label in (("", "all"), ("_things", "things"), ("_stuff", "stuff")):
        print(f"{label:8s}" + "".join(f"{quality[k + suffix]:8.3f}" for k in ("pq", "sq", "rq")))
    for index, name in enumerate(CLASS_NAMES):
        print(f"{name:8s}" + "".join(f"{quality['per_class_' + k][index]:8.3f}"
                                     for k in ("pq", "sq", "rq")))


def timing_table(model, thing_classes, num_classes, args):
    """Prints and returns `timing` at each of `--timing-sizes`."""
    print("\nInference, batch 1, Keras (tf.function) + numpy panoptic merge, median ms "
          "(ratio > 1: LPSNet faster):")
    print(f"{'size':>6s}{'LPSNet':>10s}{'sem+det':>10s}{'ratio':>8s}")
    table = {}
    for size in args.timing_sizes:
        result = timing(model, thing_classes, num_classes, args, size, repeats=args.repeats)
        ratio = result["semantic+detector"] / result["lpsnet"]
        table[size] = {**result, "speedup": round(ratio, 3)}
        print(f"{size:6d}{result['lpsnet']:10.1f}{result['semantic+detector']:10.1f}"
              f"{ratio:8.2f}x")
    return table


def write_report(report, path):
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=2)


def main():
    args = parse_args()

    import keras

    from kerasseg.data.synthetic import NUM_CLASSES, THING_CLASSES

    keras.utils.set_random_seed(0)
    model = build(NUM_CLASSES, THING_CLASSES, args)
    # MobileNet's batch norms use momentum 0.999 (as keras.applications): after
    # a few hundred steps from scratch their moving statistics are still far
    # from the data's, so inference would see other features than training.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, 0.9)
    data_seconds, seconds, steps, last_loss = train(model, THING_CLASSES, args)
    threshold, tuning = choose_threshold(model, THING_CLASSES, NUM_CLASSES, args)
    MERGE_OPTIONS["score_threshold"] = threshold
    quality = evaluate(model, THING_CLASSES, NUM_CLASSES, "test", args.test_images, args.size,
                       threshold)
    if args.save_model:
        model.save(args.save_model)
    report = {
        "config": vars(args),
        "data_seconds": round(data_seconds, 1),
        "train_seconds": round(seconds, 1),
        "train_steps": steps,
        "final_loss": round(float(last_loss), 4),
        "score_threshold": threshold,
        "val_split_pq_by_threshold": {str(k): round(v, 4) for k, v in tuning.items()},
        **{k: round(v, 4) for k, v in quality.items() if not k.startswith("per_class")},
        **{key: [None if np.isnan(v) else round(float(v), 4) for v in quality[key]]
           for key in ("per_class_pq", "per_class_sq", "per_class_rq")},
    }
    print_quality(quality, threshold, tuning, steps, seconds, args)
    write_report(report, args.output)
    report["timing"] = timing_table(model, THING_CLASSES, NUM_CLASSES, args)
    write_report(report, args.output)


if __name__ == "__main__":
    main()
