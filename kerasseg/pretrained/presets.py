"""Trained models by name: Google's published Apache-2.0 `.tflite` files.

Each `Preset` records where its file comes from (a public URL at a pinned
commit and the file's SHA-256), the builder and arguments of the kerasseg
model it loads into, its classes and palette, and the score measured here
(the numbers come from `benchmarks/pretrained.py`; the README's "Pretrained
models" table gives the commands).

A preset's file is looked up in `KERASSEG_HOME` (default
`~/.keras/kerasseg`), then downloaded from its URL into that folder, and used
only when its SHA-256 matches. Offline, the error names the URL and the
folder to put the file in. Nothing else in kerasseg downloads.
"""

import dataclasses
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request

import numpy as np

from kerasseg.data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, VOC_CLASSES, voc_palette
from kerasseg.utils import KerassegError

SOURCE_REPOSITORY = "google-coral/test_data"
SOURCE_COMMIT = "104342d2d3480b3e66203073dac24f4e2dbb4c41"
LICENSE = "Apache-2.0"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named trained model (or backbone) from a published `.tflite` file.

    Attributes:
        name: the preset's name, e.g. "deeplabv3_mobilenetv2_pascal_voc".
        file: the file's name in its repository and in `KERASSEG_HOME`.
        sha256: the file's SHA-256; any other content is refused.
        size: the file's size in bytes.
        builder: "deeplabv3" for a whole model, "backbone" for backbone weights.
        arguments: the builder's arguments that define the architecture.
        dataset: what it was trained on: "pascal_voc", "cityscapes", "imagenet".
        classes: class names of the model's output channels.
        palette: (num_classes, 3) uint8 colours, or None.
        scope: the file's backbone scope ("MobilenetV2", "MobilenetEdgeTPU").
        score: the zero-shot score measured here, in words.
    """

    name: str
    file: str
    sha256: str
    size: int
    builder: str
    arguments: dict
    dataset: str
    classes: tuple
    palette: object
    scope: str
    score: str = ""

    @property
    def url(self):
        return f"https://github.com/{SOURCE_REPOSITORY}/raw/{SOURCE_COMMIT}/{self.file}"

    @property
    def backbone(self):
        return self.arguments["backbone"]

    @property
    def alpha(self):
        return backbone_width(self.arguments.get("backbone_kwargs"))


def backbone_width(backbone_kwargs):
    """The width multiplier `alpha` a builder's `backbone_kwargs` ask for (1.0 by default)."""
    return (backbone_kwargs or {}).get("alpha", 1.0)


def _presets(*presets):
    return {preset.name: preset for preset in presets}


def _pascal_voc(name, file, sha256, size, score, backbone_kwargs=None):
    """A DeepLabv3 MobileNetV2 preset of Google's PASCAL VOC files."""
    arguments = {"backbone": "mobilenetv2", "num_classes": 21, "align_corners": True}
    if backbone_kwargs:
        arguments["backbone_kwargs"] = backbone_kwargs
    return Preset(name=name, file=file, sha256=sha256, size=size, builder="deeplabv3",
                  arguments=arguments, dataset="pascal_voc", classes=VOC_CLASSES,
                  palette=voc_palette(21), scope="MobilenetV2", score=score)


# Scores: `benchmarks/pretrained.py` (the imported Keras model; the file's own in brackets).
PRESETS = _presets(
    _pascal_voc(
        "deeplabv3_mobilenetv2_pascal_voc", "deeplabv3_mnv2_pascal_quant.tflite",
        "350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398", 2193224,
        "person IoU 0.836 on the 60 test portraits (file 0.835)",
    ),
    _pascal_voc(
        "deeplabv3_mobilenetv2_0.5_pascal_voc", "deeplabv3_mnv2_dm05_pascal_quant.tflite",
        "0470d2a782aa54eeeb99d32e7b6b3fb7722905c7c4f5d26bd957ec861366d48b", 760904,
        "person IoU 0.840 on the 60 test portraits (file 0.841)",
        backbone_kwargs={"alpha": 0.5, "divisible_by": 1},
    ),
    Preset(
        name="deeplabv3_mobilenet_edgetpu_cityscapes",
        file="deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite",
        sha256="322fe29945cb1693f426952f2a330ab67ea5678545ddee6f2548e0cfd0ca03e5",
        size=2157328,
        builder="deeplabv3",
        arguments={"backbone": "mobilenet_edgetpu", "num_classes": 19, "aspp_filters": 128,
                   "aspp_rates": (), "align_corners": True},
        dataset="cityscapes",
        classes=CITYSCAPES_CLASSES,
        palette=np.asarray(CITYSCAPES_PALETTE, np.uint8),
        scope="MobilenetEdgeTPU",
        score="CamVid test mIoU 50.6 on the first 40 frames, classes mapped (file 49.7)",
    ),
    Preset(
        name="mobilenetv2_imagenet_quant",
        file="mobilenet_v2_1.0_224_quant.tflite",
        sha256="7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
        size=3610798,
        builder="backbone",
        arguments={"backbone": "mobilenetv2"},
        dataset="imagenet",
        classes=(),
        palette=None,
        scope="MobilenetV2",
        score="ImageNet classifier (backbone weights only)",
    ),
)


def resolve_preset(name):
    """The `Preset` called `name`: a preset's name, or a dataset name
    ("pascal_voc", "cityscapes") for that dataset's first model preset."""
    if name in PRESETS:
        return PRESETS[name]
    for preset in PRESETS.values():
        if preset.builder != "backbone" and preset.dataset == name:
            return preset
    raise ValueError(
        f"Unknown preset {name!r}; the presets are {', '.join(PRESETS)} "
        "(or a dataset: pascal_voc, cityscapes)"
    )


def is_preset(name):
    """Whether `name` is a model preset's name or dataset (for `--model` arguments)."""
    try:
        return isinstance(name, str) and resolve_preset(name).builder != "backbone"
    except ValueError:
        return False


def find_preset(builder, weights, backbone, alpha=1.0):
    """The preset that `builder(backbone=..., weights=...)` names, or None.

    `weights` is a preset's name or its dataset ("pascal_voc", "cityscapes");
    a dataset picks the preset of that builder, backbone and width.
    """
    if not isinstance(weights, str):
        return None
    if weights in PRESETS:
        return PRESETS[weights]
    for preset in PRESETS.values():
        if (preset.builder, preset.dataset, preset.backbone) == (builder, weights, backbone) \
                and preset.alpha == alpha:
            return preset
    known = [p for p in PRESETS.values() if (p.builder, p.dataset) == (builder, weights)]
    if known:
        choices = ", ".join(f"backbone={p.backbone!r} alpha={p.alpha}" for p in known)
        raise ValueError(
            f"No {weights!r} preset for {builder}(backbone={backbone!r}, alpha={alpha}); "
            f"there is one for {choices}"
        )
    return None


def preset_defaults(builder, arguments, defaults):
    """A builder's arguments with its preset's architecture filled in.

    When `arguments["weights"]` names a preset of `builder`, every argument
    the caller left at its default (`defaults`) takes the preset's value and
    `backbone_kwargs` are merged, so that `deeplabv3(backbone="mobilenet_edgetpu",
    weights="cityscapes")` builds the file's architecture. Returns None when
    `weights` names no preset or nothing changes.
    """
    preset = find_preset(builder, arguments.get("weights"), arguments.get("backbone"),
                         backbone_width(arguments.get("backbone_kwargs")))
    if preset is None:
        return None
    updated = {**arguments, "weights": preset.name}
    for key, value in preset.arguments.items():
        if key == "backbone_kwargs":
            updated[key] = {**value, **(arguments.get(key) or {})}
        elif arguments[key] == defaults[key]:
            updated[key] = value
    return None if updated == arguments else updated


def home():
    """The folder presets are looked up in and downloaded to."""
    return os.environ.get("KERASSEG_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras", "kerasseg"
    )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(preset, path):
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with urllib.request.urlopen(preset.url, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PresetFileError(
            f"Preset {preset.name!r}: {preset.file} is not in {folder} and could not be "
            f"downloaded from {preset.url} ({reason}); put the file in that folder "
            "(or point KERASSEG_HOME at a folder that has it)"
        ) from None
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


class PresetFileError(KerassegError):
    """A preset's file is missing and cannot be downloaded, or has the wrong hash."""


def preset_file(name):
    """The checked local path of preset `name`'s file, downloading it once if needed.

    Raises:
        PresetFileError: offline without the file (naming the URL and the
            folder), or a file whose SHA-256 is not the preset's (not used).
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; the presets are {sorted(PRESETS)}")
    preset = PRESETS[name]
    path = os.path.join(home(), preset.file)
    if not os.path.isfile(path):
        _download(preset, path)
    digest = _sha256(path)
    if digest != preset.sha256:
        raise PresetFileError(
            f"Preset {name!r}: {path} has SHA-256 {digest}, not {preset.sha256}; refusing "
            f"to use it. Delete it, or replace it with the file from {preset.url}"
        )
    return path


# === Names: the files' scopes -> kerasseg layer names ===

_DEEPLAB_HEAD = {
    "aspp0": "aspp_conv_0",
    "image_pooling": "aspp_pool_conv",
    "concat_projection": "aspp_projection",
    "logits/semantic": "classifier",
}


def _mobilenetv2_layer(parts):
    """keras.applications.MobileNetV2's name for "Conv", "expanded_conv_3/expand", ..."""
    if parts == ["Conv"]:
        return "Conv1"
    if parts == ["Conv_1"]:
        return "Conv_1"
    match = re.fullmatch(r"expanded_conv(?:_(\d+))?", parts[0])
    if match is None or len(parts) != 2:
        return None
    block = int(match.group(1) or 0)
    return f"expanded_conv_{parts[1]}" if block == 0 else f"block_{block}_{parts[1]}"


def layer_name(scope, file_scope):
    """kerasseg's layer name for a file scope; None for the ImageNet logits.

    Raises ValueError for a scope kerasseg has no layer for.
    """
    if scope in _DEEPLAB_HEAD:
        return _DEEPLAB_HEAD[scope]
    parts = scope.split("/")
    if parts[0] == file_scope and parts[1:2] == ["Logits"]:
        return None
    name = None
    if parts[0] == "MobilenetV2":
        name = _mobilenetv2_layer(parts[1:])
    elif parts[0] == "MobilenetEdgeTPU":
        name = "_".join(parts[1:])
    if name is None:
        raise ValueError(f"The file's layer {scope!r} has no kerasseg counterpart")
    return name
