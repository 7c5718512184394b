"""Training and evaluation on Keras `fit`: `train(config)` and `evaluate(model, dataset)`.

`train` does everything a run needs, driven by a `Config`:

- picks the strategy (`kerasseg.train.strategy`): MirroredStrategy over local
  GPUs, MultiWorkerMirroredStrategy from `TF_CONFIG`, the default on CPU; sync
  BN when replicas > 1; `mixed_float16` on a GPU;
- SGD with momentum or AdamW, decoupled weight decay (not on biases and BN),
  poly learning rate after a linear warmup (`PolyDecay`);
- writes into `training.output_dir`: `config.yaml` (resolved config),
  `backup/` (resume state every `checkpoint_every` steps), `logs/`
  (TensorBoard), `metrics.csv` and `metrics.json` (one row per epoch),
  `best.keras` (best validation mean IoU, when validating every epoch) and
  `model.keras` (final model);
- resumes a killed run from its last backup, inside the epoch it was in.

Panoptic models (`Config.task == "panoptic"`, LPSNet) go through the same
loop: their split datasets hold panoptic id maps, augmented like masks (void
-1 as the pad value) and turned into LPSNet's targets per example
(`kerasseg.panoptic.panoptic_targets_fn`); the loss is LPSNet's multi-task
loss, the training metrics score the semantic output, and validation runs
the panoptic head on the validation split each epoch (`PanopticValidation`:
`val_pq`, `val_sq`, `val_rq`, `val_pq_things`, `val_pq_stuff`,
`val_mean_iou`); `best.keras` keeps the best `val_pq`.

Example:
    >>> from kerasseg.train import Config, train
    >>> config = Config.from_dict({"training": {"epochs": 2, "output_dir": "runs/demo"}})
    >>> result = train(config)
    >>> result.history["val_mean_iou"][-1]
"""

import dataclasses
import importlib
import importlib.util
import inspect
import os
import shutil
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerasseg.train.callbacks import JSONLogger, LearningRateLogger, StepBackup
from kerasseg.train.config import Config
from kerasseg.train.schedules import PolyDecay, StepDecay
from kerasseg.train.strategy import choose_strategy, is_chief, set_precision, worker_index

__all__ = [
    "Config", "PolyDecay", "StepDecay", "TrainResult", "batch_norm_layers", "build_model",
    "evaluate", "recompute_batch_norm", "resolve_num_classes", "split_dataset", "train",
]


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: The trained functional model (the one saved as `model.keras`).
        history: Dict of per-epoch lists, as `keras.callbacks.History`, over
            the epochs run by this call.
        run_dir: The run directory.
        initial_step: Optimizer step the run started from (> 0 when resumed).
        steps_per_epoch: Steps in one epoch.
        strategy: The `tf.distribute.Strategy` it trained under.
    """

    model: keras.Model
    history: dict
    run_dir: str
    initial_step: int
    steps_per_epoch: int
    strategy: tf.distribute.Strategy


def train(config, callbacks=()):
    """Trains the model described by `config`; resumes if the run dir has a backup.

    Args:
        config: A `Config`, a dict of sections, or the path of a YAML/JSON file.
        callbacks: Extra Keras callbacks.

    Returns:
        A `TrainResult`.
    """
    config = _as_config(config)
    keras.utils.set_random_seed(config.training.seed)
    strategy = choose_strategy(config.training.strategy)
    previous_policy = keras.config.dtype_policy()
    set_precision(config.training.precision)
    try:
        return _train(config, strategy, callbacks)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(config, strategy, callbacks):
    training = config.training
    chief = is_chief(strategy)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    run_dir = training.output_dir
    # Every worker saves (saving reads distributed variables: a collective op),
    # but only the chief into the run directory; the others into a scratch folder.
    save_dir = run_dir if chief else os.path.join(run_dir, f".worker{worker_index(strategy)}")

    data = config.data
    panoptic = config.task == "panoptic"
    thing_classes = None
    if panoptic:
        train_images, num_classes, thing_classes = _panoptic_split(config, data.train_split)
    else:
        num_classes = resolve_num_classes(config)
        train_images = split_dataset(config, data.train_split)
    replicas = strategy.num_replicas_in_sync
    if data.batch_size % replicas:
        raise ValueError(
            f"`data.batch_size` must be a multiple of the number of replicas ({replicas}). "
            f"Received: data.batch_size={data.batch_size}"
        )
    count = int(train_images.cardinality())
    if count == 0 or (count < 0 and training.steps_per_epoch is None):
        raise ValueError(
            f"The {data.dataset!r} split {data.train_split!r} has "
            f"{'no examples' if count == 0 else 'an unknown size'}; "
            + ("check data.root." if count == 0 else "set training.steps_per_epoch.")
        )
    steps_per_epoch = training.steps_per_epoch or max(1, count // data.batch_size)
    total_steps = steps_per_epoch * training.epochs
    val_dataset = None
    if training.validate and not panoptic:
        val_dataset = split_dataset(config, data.val_split)
        if val_dataset.element_spec[0].shape.is_fully_defined():
            val_dataset = val_dataset.batch(data.batch_size)
        else:  # images of different sizes: pad to the batch's largest, masks with ignore
            from kerasseg.data import pipeline

            val_dataset = pipeline(val_dataset, training=False, batch_size=data.batch_size,
                                   ignore_label=data.ignore_label)

    with strategy.scope():
        model = build_model(config, num_classes, synchronized_bn=replicas > 1,
                            thing_classes=thing_classes)
    trainee = model
    if multi_worker:
        # Built outside the scope on the same layers: see `_PerWorkerLogs`.
        outputs = model.output if panoptic else model.outputs  # a dict keeps its names
        trainee = _PerWorkerLogs(model.inputs, outputs, name=model.name)
    with strategy.scope():
        loss, loss_weights = _loss(config)
        metrics = _metrics(num_classes, data.ignore_label)
        trainee.compile(
            optimizer=_optimizer(config.optimizer, total_steps),
            loss=loss,
            loss_weights=loss_weights,
            metrics={"semantic": metrics} if panoptic else metrics,
        )
        if multi_worker:
            trainee.distribute_reduction_method = "first"
        backup = StepBackup(os.path.join(save_dir, "backup"), training.checkpoint_every)
        initial_step = backup.restore(trainee)
        if initial_step >= total_steps:
            raise ValueError(
                f"{backup.path} is at step {initial_step}, past the {total_steps} steps this "
                "config trains for. Remove it, or raise training.epochs."
            )
        if chief:
            if initial_step == 0:
                for name in ("metrics.csv", "metrics.json", "logs"):
                    _remove(os.path.join(run_dir, name))
            config.save(run_dir)
        run_callbacks = [backup, LearningRateLogger(), *callbacks]
        if training.validate and panoptic:
            from kerasseg.panoptic.data import PanopticValidation

            run_callbacks.append(PanopticValidation(
                _panoptic_split(config, data.val_split)[0], num_classes, thing_classes))
        if training.validate:
            run_callbacks.append(keras.callbacks.ModelCheckpoint(
                os.path.join(save_dir, "best.keras"),
                monitor="val_pq" if panoptic else "val_mean_iou",
                mode="max",
                save_best_only=True,
            ))
        if chief:
            run_callbacks += [
                keras.callbacks.CSVLogger(os.path.join(run_dir, "metrics.csv"), append=True),
                JSONLogger(os.path.join(run_dir, "metrics.json")),
            ]
            if importlib.util.find_spec("tensorboard") is not None:
                run_callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
            else:
                warnings.warn("TensorBoard is not installed: no TensorBoard logs. "
                              "pip install 'tensorboard>=2.20,<3'", stacklevel=2)
        history = {}
        # A run killed mid-epoch first finishes the remaining steps of that epoch.
        epoch, done = divmod(initial_step, steps_per_epoch)
        plan = [(epoch, epoch + 1, steps_per_epoch - done)] if done else []
        epoch += bool(done)
        if epoch < training.epochs:
            plan.append((epoch, training.epochs, steps_per_epoch))
        step = initial_step
        for first_epoch, end_epoch, steps in plan:
            # The data stream restarts with each fit: a new seed, so no repeats.
            fit = trainee.fit(
                _training_stream(train_images, config, training.seed + step, total_steps - step,
                                 thing_classes),
                epochs=end_epoch,
                initial_epoch=first_epoch,
                steps_per_epoch=steps,
                validation_data=val_dataset,
                callbacks=run_callbacks,
                verbose=training.verbose if chief else 0,
                shuffle=False,  # the dataset is shuffled (with a seed) already
            )
            step += steps * (end_epoch - first_epoch)
            for key, values in fit.history.items():
                history.setdefault(key, []).extend(values)
            if trainee.stop_training:  # a callback ended the run early
                break
        model.save(os.path.join(save_dir, "model.keras"))
    backup.clear()
    if not chief:
        shutil.rmtree(save_dir, ignore_errors=True)
    return TrainResult(model, history, run_dir, initial_step, steps_per_epoch, strategy)


def build_model(config, num_classes, synchronized_bn=False, thing_classes=None):
    """Builds the model of `config.model`: `name(num_classes, **args)`.

    `name` is a kerasseg builder ("deeplabv3plus") or, for your own builder, a
    "package.module:function" path. `synchronized_bn` is passed on to builders
    that take it; `bn_momentum`, if set, replaces every BatchNormalization
    layer's momentum. A panoptic builder gets the dataset's `thing_classes`
    unless `model.args` sets them, in which case they must be the same.
    """
    config = _as_config(config)
    name = config.model.name
    try:
        if ":" in name:
            module_name, _, attribute = name.partition(":")
            builder = getattr(importlib.import_module(module_name), attribute)
        else:
            builder = getattr(importlib.import_module("kerasseg"), name)
    except (AttributeError, ImportError) as error:
        raise ValueError(
            "`model.name` must be a kerasseg builder or 'package.module:function'. "
            f"Received: model.name={name!r} ({error})"
        ) from None
    args = dict(config.model.args)
    if synchronized_bn and "synchronized_bn" in inspect.signature(builder).parameters:
        args["synchronized_bn"] = True
    if thing_classes is not None:
        given = args.setdefault("thing_classes", tuple(thing_classes))
        if tuple(given) != tuple(thing_classes):
            raise ValueError(
                f"`model.args.thing_classes` must be the dataset's thing classes "
                f"{tuple(thing_classes)} (or be left out). Received: {tuple(given)}"
            )
    model = builder(num_classes, input_shape=(None, None, 3), **args)
    if config.model.bn_momentum is not None:
        # Read when the training step is traced, and saved by get_config.
        for layer in batch_norm_layers(model):
            layer.momentum = config.model.bn_momentum
    return model


def batch_norm_layers(model):
    """Every BatchNormalization layer of `model`, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batch_norm_layers(layer))
    return found


def recompute_batch_norm(model, images, batch_size=16):
    """Sets every BatchNormalization's moving mean and variance to the average
    of its batch statistics over `images` ("precise BN").

    A short training run leaves the moving averages far from the data (the
    MobileNet layers use momentum 0.999), so the inference-mode model would
    be much worse than the training loss says. Running the model in training
    mode with momentum 1 - 1/k on the k-th batch averages the batches exactly;
    no weight changes.

    Args:
        model: a Keras model.
        images: (N, H, W, C) raw-pixel images.
        batch_size: images per training-mode pass.
    """
    layers = batch_norm_layers(model)
    momenta = [layer.momentum for layer in layers]
    for k, start in enumerate(range(0, len(images), batch_size), start=1):
        for layer in layers:
            layer.momentum = 1.0 - 1.0 / k
        model(images[start:start + batch_size], training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def evaluate(model, dataset, num_classes, ignore_label=255, class_names=None,
             **inference_options):
    """Confusion matrix and scores of `model` on `dataset` of (image, mask).

    Args:
        model: A segmentation model returning logits.
        dataset: `tf.data.Dataset` (batched or not) or iterable of (image, mask).
        num_classes: Number of classes.
        ignore_label: Mask value left out of the scores.
        class_names: Names for the per-class scores.
        **inference_options: Passed to `kerasseg.inference.predict` (tile_size,
            overlap, weighting, scales, flip).

    Returns:
        The dict of `kerasseg.metrics.segmentation_scores` plus "confusion"
        (int64 (C, C), rows ground truth).
    """
    from kerasseg import inference, metrics

    confusion = np.zeros((num_classes, num_classes), np.int64)
    for images, masks in dataset:
        labels = inference.predict(model, np.asarray(images), **inference_options).argmax(-1)
        confusion += metrics.confusion_matrix(masks, labels, num_classes, ignore_label)
    return {**metrics.segmentation_scores(confusion, class_names), "confusion": confusion}


@keras.saving.register_keras_serializable(package="kerasseg")
class _PerWorkerLogs(keras.Model):
    """A functional model whose train/test steps return logs of shape (1,).

    Keras 3.15 `fit` under MultiWorkerMirroredStrategy reduces the scalar logs
    with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars, and
    its symbolic build reduces the (x, y) tuple, which MWMS cannot. Giving the
    logs a leading axis fixes the first; building this wrapper outside the
    strategy scope (the layers and variables are the original model's,
    created inside it) skips the second.
    """

    def train_step(self, data):
        return {key: ops.expand_dims(value, 0) for key, value in super().train_step(data).items()}

    def test_step(self, data):
        return {key: ops.expand_dims(value, 0) for key, value in super().test_step(data).items()}


def _as_config(config):
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config.from_dict(config)
    return Config.load(config)


def resolve_num_classes(config):
    """`data.num_classes`, or the dataset's own class count."""
    data = config.data
    if data.num_classes:
        return data.num_classes
    if data.dataset == "synthetic":
        from kerasseg.data.synthetic import NUM_CLASSES

        return NUM_CLASSES
    from kerasseg.data import readers

    if data.dataset in readers.DATASET_CLASSES:
        return len(readers.DATASET_CLASSES[data.dataset])
    raise ValueError(
        f"`data.num_classes` is required for data.dataset={data.dataset!r}. "
        "Received: data.num_classes=None"
    )


def split_dataset(config, split):
    """Unbatched dataset of (image float32 [0, 255], mask int32) for `split`;
    for a panoptic config, the mask is the panoptic id map (see
    `kerasseg.panoptic.load_panoptic_split`)."""
    if config.task == "panoptic":
        return _panoptic_split(config, split)[0]
    data = config.data
    if data.dataset == "synthetic":
        from kerasseg.data.synthetic import synthetic_dataset

        count = data.num_train_images if split == data.train_split else data.num_val_images
        dataset = synthetic_dataset(split, count, data.image_size, seed=data.seed)
        # Scenes are drawn in Python: draw once, keep them (as uint8) in memory.
        dataset = dataset.map(lambda image, mask: (tf.cast(image, tf.uint8), mask)).cache()
        return dataset.map(lambda image, mask: (tf.cast(image, tf.float32), mask))
    from kerasseg.data import load_dataset

    options = {}
    if data.dataset == "folder":
        options = {"num_classes": resolve_num_classes(config), "ignore_label": data.ignore_label}
    return load_dataset(data.dataset, data.root, split, **options)


def _panoptic_split(config, split):
    """(pairs, num_classes, thing_classes) of a panoptic config's `split`."""
    from kerasseg.panoptic.data import load_panoptic_split

    data = config.data
    count = data.num_train_images if split == data.train_split else data.num_val_images
    pairs, num_classes, thing_classes = load_panoptic_split(
        data.dataset, data.root, split, count, data.image_size, data.seed)
    return pairs, data.num_classes or num_classes, thing_classes


def _training_stream(images, config, seed, steps, thing_classes=None):
    """Shuffled, augmented batches for `steps` steps.

    Each pass over the data is shuffled with its own fixed seed, and example i
    of the stream is augmented with seed (seed, i): a `reshuffle_each_iteration`
    shuffle draws another order once the dataset is distributed, so one device
    and several would not see the same data. With `thing_classes` (panoptic),
    the masks are panoptic id maps, padded with void, and become LPSNet's
    targets after augmentation.
    """
    data = config.data
    count = int(images.cardinality())
    buffer = min(count, 1024) if count > 0 else 1024
    stream = images.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
    # Unknown size: repeat one shuffled order rather than guess the passes needed.
    passes = -(-steps * data.batch_size // count) + 1 if count > 0 else 1
    if count < 0:
        stream = stream.repeat()
    for index in range(1, passes):
        stream = stream.concatenate(
            images.shuffle(buffer, seed=seed + index, reshuffle_each_iteration=False)
        )
    if data.augment:
        from kerasseg.data import pipeline
        from kerasseg.panoptic.targets import VOID

        stream = pipeline(
            stream, training=True, crop_size=data.image_size, seed=seed, shuffle_buffer=0,
            min_scale=data.scale_range[0], max_scale=data.scale_range[1],
            ignore_label=data.ignore_label if thing_classes is None else VOID,
            reseed_each_epoch=False, prefetch=False,
        )
    if thing_classes is not None:
        from kerasseg.panoptic.data import panoptic_targets_fn

        size_ranges = config.loss.args.get("size_ranges")
        stream = stream.map(
            panoptic_targets_fn(thing_classes, **({"size_ranges": tuple(map(tuple, size_ranges))}
                                                  if size_ranges else {})),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    options = tf.data.Options()
    # Shard batches, not files: the datasets are not file-based throughout.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return stream.batch(data.batch_size, drop_remainder=True).prefetch(2).with_options(options)


def _optimizer(options, total_steps):
    warmup_steps = min(options.warmup_steps, total_steps - 1)
    if options.schedule == "step":
        schedule = StepDecay(
            options.learning_rate,
            boundaries=[max(1, int(f * total_steps)) for f in options.decay_at],
            decay_rate=options.decay_rate,
            warmup_steps=warmup_steps,
        )
    else:
        schedule = PolyDecay(
            options.learning_rate,
            decay_steps=total_steps,
            power=options.power,
            end_learning_rate=options.end_learning_rate,
            warmup_steps=warmup_steps,
        )
    common = {"weight_decay": options.weight_decay or None, "clipnorm": options.clipnorm}
    if options.name == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=options.momentum, **common)
    else:
        optimizer = keras.optimizers.AdamW(schedule, **common)
    if options.weight_decay:
        # Decay kernels only: biases and BN parameters are not decayed.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _loss(config):
    """(loss, loss_weights) for `compile`; the weights are None for one output."""
    from kerasseg.losses import LOSSES
    from kerasseg.utils import check_choice

    if config.task == "panoptic":
        from kerasseg.panoptic.losses import lpsnet_losses

        args = {k: v for k, v in config.loss.args.items() if k != "size_ranges"}
        # The paper's weights: Cityscapes' on Cityscapes, COCO's elsewhere.
        args.setdefault("preset", "cityscapes" if config.data.dataset == "cityscapes" else "coco")
        try:
            return lpsnet_losses(**args)
        except TypeError as error:
            raise ValueError(f"`loss.args`: {error}") from None
    check_choice("loss.name", config.loss.name, tuple(LOSSES))
    args = dict(config.loss.args)
    if args.get("class_weights") == "median_frequency":  # SegNet's balancing, from the train split
        from kerasseg.data.class_weights import dataset_class_weights

        args["class_weights"] = dataset_class_weights(
            split_dataset(config, config.data.train_split), resolve_num_classes(config),
            ignore_label=config.data.ignore_label)
    return LOSSES[config.loss.name](ignore_label=config.data.ignore_label, **args), None


def _metrics(num_classes, ignore_label):
    from kerasseg.metrics import segmentation_metrics

    return segmentation_metrics(num_classes, ignore_label)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
