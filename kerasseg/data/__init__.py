"""Datasets, augmentation and the synthetic scene generator.

`kerasseg.data` resolves names on first use, so `kerasseg.data.synthetic`
(numpy and OpenCV only) and `kerasseg.data.labels` (the ignore label and the
class tables) load without TensorFlow.

Example:
    >>> from kerasseg import data
    >>> train = data.pipeline(data.synthetic_dataset("train"), training=True,
    ...                       crop_size=(96, 96), batch_size=16)
    >>> val = data.pipeline(data.load_dataset("voc", "/data/VOC2012", "val"),
    ...                     training=False, batch_size=1)
"""

from kerasseg.utils import lazy_attributes

# Public name -> module that defines it.
_LAZY_ATTRIBUTES = {
    **dict.fromkeys(
        (
            "load_dataset", "validate", "SOURCES", "Source", "Listing", "DATASETS", "voc_dataset",
            "cityscapes_dataset", "ade20k_dataset", "coco_panoptic_dataset",
            "coco_panoptic_categories", "folder_dataset", "decode_image_file",
            "decode_index_png", "camvid_dataset", "binary_mask_dataset", "people_dataset",
            "PEOPLE_SPLITS",
        ),
        "kerasseg.data.readers",
    ),
    **dict.fromkeys(
        (
            "IGNORE_LABEL", "voc_palette", "VOC_CLASSES", "CITYSCAPES_CLASSES",
            "CITYSCAPES_LABEL_TO_TRAIN_ID", "CITYSCAPES_THING_CLASSES", "CITYSCAPES_PALETTE",
            "ADE20K_CLASSES", "CAMVID_CLASSES", "CAMVID_PALETTE", "PERSON_CLASSES",
            "PERSON_PALETTE",
        ),
        "kerasseg.data.labels",
    ),
    **dict.fromkeys(
        (
            "pipeline", "augment", "Augmentation", "random_scale", "random_crop", "random_flip",
            "photometric_jitter", "pad_to_size", "IMAGENET_MEAN", "copy_paste",
            "copy_paste_dataset", "random_blur", "gaussian_blur",
        ),
        "kerasseg.data.augment",
    ),
    **dict.fromkeys(
        ("class_pixel_counts", "median_frequency_weights", "dataset_class_weights"),
        "kerasseg.data.class_weights",
    ),
    **dict.fromkeys(
        ("synthetic_dataset", "make_scene", "write_synthetic_folder"),
        "kerasseg.data.synthetic",
    ),
}
_SUBMODULES = ("augment", "class_weights", "labels", "readers", "synthetic")


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_ATTRIBUTES, _SUBMODULES)
