"""What `kerasseg evaluate` and `kerasseg quickstart` write and print: the
metrics file, the confusion-matrix picture, overlay pictures, the panoptic
table, and the model's place against a majority-class baseline."""

import json
import os

import numpy as np

from kerasseg import metrics, visualize
from kerasseg.data.labels import PERSON_CLASSES, PERSON_PALETTE, voc_palette
from kerasseg.data.readers import SOURCES
from kerasseg.data.synthetic import CLASS_NAMES, PALETTE
from kerasseg.panoptic import LABEL_DIVISOR, panoptic_merge
from kerasseg.train.evaluate import probabilities


def names_and_palette(config, num_classes):
    """Class names (None when unknown) and colours of the `num_classes` classes
    a run's masks hold."""
    if config.task == "binary":
        return list(PERSON_CLASSES), PERSON_PALETTE
    if config.data.dataset == "synthetic":
        return list(CLASS_NAMES), PALETTE
    source = SOURCES[config.data.dataset]
    names = source.classes
    palette = voc_palette(num_classes) if source.palette is None else source.palette
    if not names or len(names) != num_classes or len(palette) < num_classes:
        return None, voc_palette(num_classes)
    return list(names), palette


def save_evaluation(result, output_dir):
    """Writes the scores of `kerasseg.train.evaluate` as `metrics.json` (NaN as null)
    and the confusion matrix as `confusion.png` into `output_dir`."""
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, "metrics.json"), result)
    class_names = list(result["per_class_iou"])
    visualize.save_image(os.path.join(output_dir, "confusion.png"),
                         visualize.confusion_matrix_image(result["confusion"], class_names))


def write_json(path, result):
    """`result` as JSON: arrays as lists, NaN as null."""
    with open(path, "w") as file:
        json.dump(_jsonable(result), file, indent=1)


def baseline_verdict(result):
    """One line comparing `result` with always predicting the majority class,
    or None when the model beats it on both pixel accuracy and mean IoU."""
    baseline = metrics.segmentation_scores(metrics.majority_baseline(result["confusion"]))
    worse = [key for key in ("pixel_accuracy", "mean_iou")
             if not result[key] > baseline[key]]
    if not worse:
        return None
    shown = ", ".join(f"{key} {result[key]:.4f} vs {baseline[key]:.4f}" for key in worse)
    return (f"Warning: this model does no better than predicting the majority class "
            f"everywhere ({shown}): it has not learned this data.")


def save_overlays(model, dataset, output_dir, count, palette=None, alpha=0.5, **options):
    """Saves `count` pictures image | ground truth | prediction overlay; returns their paths."""
    paths = []
    batched = len(dataset.element_spec[1].shape) == 3
    for image, mask in (dataset.unbatch() if batched else dataset).take(count):
        image, mask = np.asarray(image), np.asarray(mask)
        labels = probabilities(model, image, options).argmax(-1)
        picture = visualize.side_by_side(
            image.astype(np.uint8),
            visualize.overlay(image, mask, palette, alpha),
            visualize.overlay(image, labels, palette, alpha),
        )
        path = os.path.join(output_dir, "overlays", f"{len(paths):03d}.png")
        paths.append(visualize.save_image(path, picture))
    return paths


def panoptic_table(result, thing_classes, class_names=None):
    """A plain-text table of `kerasseg.panoptic.evaluate_panoptic` output."""
    lines = [f"{'panoptic':<24}{'PQ':>8}{'SQ':>8}{'RQ':>8}"]
    for suffix, label in (("", "all"), ("_things", "things"), ("_stuff", "stuff")):
        lines.append(f"{label:<24}" + "".join(f"{result[k + suffix]:>8.4f}"
                                              for k in ("pq", "sq", "rq")))
    lines.append(f"{'class':<24}{'PQ':>8}{'SQ':>8}{'RQ':>8}{'kind':>8}")
    for index in range(len(result["per_class_pq"])):
        name = class_names[index] if class_names else str(index)
        kind = "thing" if index in thing_classes else "stuff"
        lines.append(f"{name:<24}" + "".join(
            f"{result['per_class_' + k][index]:>8.4f}" for k in ("pq", "sq", "rq")) + f"{kind:>8}")
    return "\n".join(lines)


def save_panoptic_overlays(model, dataset, output_dir, count, thing_classes, palette=None,
                           alpha=0.5, **merge_options):
    """Saves `count` pictures image | ground truth | panoptic prediction; returns their paths."""
    paths = []
    for image, truth in dataset.take(count).as_numpy_iterator():
        outputs = {k: np.asarray(v)[0] for k, v in model(image[None], training=False).items()}
        prediction = panoptic_merge(outputs["semantic"], outputs["class_logits"],
                                    outputs["boxes"], outputs["borderness"], thing_classes,
                                    **merge_options)
        picture = visualize.side_by_side(
            image.astype(np.uint8),
            *(_panoptic_overlay(image, ids, palette, alpha) for ids in (truth, prediction)),
        )
        path = os.path.join(output_dir, "overlays", f"{len(paths):03d}.png")
        paths.append(visualize.save_image(path, picture))
    return paths


def _panoptic_overlay(image, panoptic, palette, alpha):
    """Category colours over `image`, each thing instance in its own shade; void uncoloured."""
    panoptic = np.asarray(panoptic)
    categories = np.where(panoptic < 0, 255, panoptic // LABEL_DIVISOR)
    colours = visualize.colorize(categories, palette).astype(np.float32)
    # Instances 1, 2, 3, ... alternate between four brightness levels.
    instance = np.where(panoptic < 0, 0, panoptic % LABEL_DIVISOR)
    shade = np.where(instance > 0, 1.0 - 0.2 * ((instance - 1) % 4), 1.0)[..., None]
    blend = np.where((panoptic < 0)[..., None], 0.0, alpha)
    image = np.clip(np.asarray(image, np.float32), 0, 255)
    return np.rint(image * (1 - blend) + colours * shade * blend).astype(np.uint8)


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(item) for item in np.asarray(value).tolist()]
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value

