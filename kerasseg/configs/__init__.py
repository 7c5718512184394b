"""Training recipes shipped as YAML files: `kerasseg train --config <path>`.

Each recipe is a complete `kerasseg.train.Config` file that reads its data
from `data.root`; point it at your copy with `--set data.root=...`:

    kerasseg train --config $(python -c "import kerasseg.configs as c; \
print(c.recipe_path('camvid_segnet'))") --set data.root=/data/CamVid

This module imports nothing from kerasseg: listing recipes is cheap.

Example:
    >>> from kerasseg import configs
    >>> configs.list_recipes()
    ['camvid_deeplabv3plus_mobilenetv2', 'camvid_segnet']
    >>> path = configs.recipe_path("camvid_segnet")
"""

import os

_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
_SUFFIX = ".yaml"


def list_recipes():
    """Names of the shipped recipes, sorted (file names without `.yaml`)."""
    return sorted(name[: -len(_SUFFIX)] for name in os.listdir(_DIRECTORY)
                  if name.endswith(_SUFFIX))


def recipe_path(name):
    """The path of recipe `name` (as listed by `list_recipes`, `.yaml` optional).

    Args:
        name: A recipe name, e.g. "camvid_segnet".

    Returns:
        The absolute path of its YAML file.

    Raises:
        ValueError: No recipe has that name; the message lists the recipes.
    """
    stem = name[: -len(_SUFFIX)] if isinstance(name, str) and name.endswith(_SUFFIX) else name
    recipes = list_recipes()
    if stem not in recipes:
        raise ValueError(f"`name` must be one of {', '.join(map(repr, recipes))}. "
                         f"Received: name={name!r}")
    return os.path.join(_DIRECTORY, stem + _SUFFIX)
