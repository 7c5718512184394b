"""The model of a run: built from `config.model`, and its batch normalisation.

`build_model` resolves the builder by name (kerasseg's own, or one registered
with `register_builder`: a config cannot import code) and passes the task's and
the strategy's arguments, the batch-norm settings among them;
`recompute_batch_norm` gives a briefly trained model exact batch-norm
statistics ("precise BN").
"""

import dataclasses
import inspect

import keras

from kerasseg.data.readers import SOURCES
from kerasseg.layers import batch_norm_settings
from kerasseg.models import MODELS
from kerasseg.utils import KerassegError

# Builders users registered with `register_builder`: a config file names a
# builder, it cannot import code. (The one mutable registry: like Keras'
# `register_keras_serializable`, it is filled explicitly from Python.)
_REGISTERED_BUILDERS = {}


def register_builder(name, builder):
    """Makes `builder` available to configs as `model: {name: <name>}`.

    A config is data that people share: it can only name builders, never
    import a module. Register your own in Python before training:

        >>> import kerasseg
        >>> kerasseg.register_builder("my_net", my_net)
        >>> kerasseg.train.train({"model": {"name": "my_net"}, ...})

    Args:
        name: The name configs use; not one of kerasseg's builders
            (`kerasseg.models.MODELS`).
        builder: Callable `builder(num_classes, input_shape=..., **args)`
            returning a Keras model.

    Returns:
        `builder`, so that it can be used as a decorator's result.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    if name in MODELS:
        raise ValueError(f"`name` must not be a kerasseg builder's name. Received: name={name!r}")
    if not callable(builder):
        raise ValueError(f"`builder` must be callable. Received: builder={builder!r}")
    _REGISTERED_BUILDERS[name] = builder
    return builder


def resolve_builder(name):
    """The builder function `name`: a key of `kerasseg.models.MODELS` or a
    name given to `register_builder`.

    Raises:
        KerassegError: `name` names no builder.
    """
    builder = isinstance(name, str) and (MODELS.get(name) or _REGISTERED_BUILDERS.get(name))
    if not builder:
        registered = f"; registered: {', '.join(sorted(_REGISTERED_BUILDERS))}" if (
            _REGISTERED_BUILDERS) else ""
        raise KerassegError(
            f"`model.name` must be a kerasseg builder ({', '.join(sorted(MODELS))}{registered}) "
            "or a name given to kerasseg.register_builder(name, function) in Python. "
            f"Received: model.name={name!r}"
        )
    return builder


def build_model(config, num_classes, synchronized_bn=False, **task_args):
    """Builds the model of `config.model` (a `Config`): `name(num_classes, **args)`.

    Batch normalisation is set at build time, in the builder's `norm`
    (`kerasseg.layers.BatchNormSettings`, maybe given in `model.args.norm`):
    `synchronized_bn` and `model.bn_momentum` (if set) go into it. A builder
    of your own without `norm` gets `synchronized_bn` if it takes that.
    `task_args` are what the task requires of the builder (a panoptic model
    the dataset's `thing_classes`, a binary one `activation="sigmoid"`):
    `model.args` may leave them out or repeat them, but not set them otherwise.
    """
    builder = resolve_builder(config.model.name)
    args = dict(config.model.args)
    args.update(_norm_args(builder, args, synchronized_bn, config.model.bn_momentum))
    for key, required in task_args.items():
        given = args.setdefault(key, required)
        if _comparable(given) != _comparable(required):
            raise ValueError(
                f"`model.args.{key}` must be {_comparable(required)!r} for this task (or be "
                f"left out). Received: {_comparable(given)!r}"
            )
    model = builder(num_classes, input_shape=(None, None, 3), **args)
    if config.model.freeze_batch_norm:
        for layer in batch_norm_layers(model):
            layer.trainable = False  # Keras runs a frozen BatchNormalization in inference mode
    if config.model.class_mapping:
        _map_classes(config, model, args)
    return model


def _map_classes(config, model, args):
    """Initialises the classifier from the preset's by `model.class_mapping`."""
    from kerasseg.pretrained import backbone_width, find_preset, map_classifier

    preset = find_preset(config.model.name, args["weights"], args.get("backbone"),
                         backbone_width(args.get("backbone_kwargs")))
    if preset is None:
        raise ValueError("`model.class_mapping` needs `model.args.weights` to name a preset "
                         f"of {config.model.name!r}. Received: {args['weights']!r}")
    source = SOURCES.get(config.data.dataset)
    if source is None or not source.classes:
        raise ValueError("`model.class_mapping` needs a dataset with class names. Received: "
                         f"data.dataset={config.data.dataset!r}")
    map_classifier(model, preset, config.model.class_mapping, source.classes)


def _norm_args(builder, args, synchronized_bn, momentum):
    """The builder arguments that carry the run's batch-norm settings."""
    parameters = inspect.signature(builder).parameters
    if "norm" not in parameters:
        if momentum is not None:
            raise ValueError("`model.bn_momentum` needs a builder with a `norm` argument "
                             f"(kerasseg.layers.BatchNormSettings). Received: model.name="
                             f"{getattr(builder, '__name__', builder)!r}")
        return {"synchronized_bn": True} if (
            synchronized_bn and "synchronized_bn" in parameters) else {}
    changes = {"synchronized": True} if synchronized_bn else {}
    if momentum is not None:
        changes["momentum"] = momentum
    try:
        norm = batch_norm_settings(args.get("norm"))
    except ValueError as error:
        raise ValueError(f"`model.args.norm`: {error}") from None
    return {"norm": dataclasses.replace(norm, **changes)}


def _comparable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


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

    A short training run leaves the moving averages far from the data, so
    the inference-mode model would be much worse than the training loss
    says. Running the model in training mode with momentum 1 - 1/k on the
    k-th batch averages the batches exactly; no weight changes.

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
