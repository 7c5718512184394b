"""Embedded synthetic street scenes with semantic and instance masks.

Every scene is drawn from a seed with numpy and OpenCV: textured "stuff"
regions (sky, grass, road, wall) and "thing" objects (people, cars, balls)
standing on the ground, farther objects drawn first so nearer ones occlude
them. Colours are jittered per scene and per object, and noise is added, so a
per-pixel colour lookup does not solve the task: texture and shape matter.
Used by the quickstart, the demos and the tests; nothing is downloaded.

TensorFlow is imported only inside `synthetic_dataset`.
"""

import os

import cv2
import numpy as np

from kerasseg.utils import check_choice, check_positive_int

CLASS_NAMES = ("sky", "grass", "road", "wall", "person", "car", "ball")
THING_CLASSES = (4, 5, 6)
NUM_CLASSES = len(CLASS_NAMES)
PALETTE = np.array(
    [
        [70, 130, 180],  # sky
        [107, 142, 35],  # grass
        [128, 64, 128],  # road
        [102, 102, 156],  # wall
        [220, 20, 60],  # person
        [0, 0, 142],  # car
        [250, 170, 30],  # ball
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

SKY, GRASS, ROAD, WALL, PERSON, CAR, BALL = range(NUM_CLASSES)
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZES = {"train": 512, "val": 64, "test": 64}
# Scene seeds of one split live in [offset, offset + _SPLIT_STRIDE): splits never overlap.
_SPLIT_STRIDE = 1_000_000


def _noise(rng, height, width, scale, amplitude):
    """Smooth random field: low-resolution noise upsampled to (height, width)."""
    small = rng.normal(0.0, 1.0, (max(2, height // scale), max(2, width // scale), 1))
    field = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return amplitude * field.reshape(height, width, 1)


def _jitter(rng, rgb, amount):
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _sky_texture(rng, h, w):
    top, bottom = _jitter(rng, (60, 110, 200), 25), _jitter(rng, (170, 200, 235), 25)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    image = top * (1 - t) + bottom * t + np.zeros((1, w, 1), np.float32)
    # Soft clouds: smooth, bright, low-frequency blobs.
    clouds = np.clip(_noise(rng, h, w, 16, 1.0), 0, None)
    return image + 60.0 * clouds


def _grass_texture(rng, h, w):
    base = _jitter(rng, (70, 130, 45), 25)
    blades = rng.normal(0.0, 28.0, (h, w, 1)).astype(np.float32)
    blades = cv2.blur(blades, (1, 5)).reshape(h, w, 1)  # vertical streaks
    return base + blades * np.array([0.6, 1.0, 0.4], np.float32) + _noise(rng, h, w, 8, 12)


def _road_texture(rng, h, w):
    grey = rng.uniform(70, 130)
    base = _jitter(rng, (grey, grey, grey + 5), 10)
    speckle = rng.normal(0.0, 16.0, (h, w, 1)).astype(np.float32)
    return base + speckle + _noise(rng, h, w, 12, 6)


def _wall_texture(rng, h, w):
    brick = _jitter(rng, (150, 80, 60), 35)
    mortar = _jitter(rng, (200, 195, 185), 20)
    bh = max(3, int(rng.integers(4, 8) * h / 128))
    bw = 2 * bh + int(rng.integers(0, 4))
    ys, xs = np.mgrid[0:h, 0:w]
    row = ys // bh
    is_mortar = (ys % bh == 0) | ((xs + (row % 2) * (bw // 2)) % bw == 0)
    image = np.where(is_mortar[..., None], mortar, brick).astype(np.float32)
    return image + rng.normal(0.0, 8.0, (h, w, 1)).astype(np.float32)


def _paint(image, mask, texture):
    image[mask] = texture[mask]


def _draw_person(rng, canvas, x, y_foot, size):
    """Head, torso and legs; returns nothing, draws 1 into `canvas`, colours into parts."""
    s = size
    head_r = max(2, int(0.12 * s))
    torso_w, torso_h = max(2, int(0.32 * s)), max(3, int(0.38 * s))
    leg_h = max(2, int(0.42 * s))
    hip = y_foot - leg_h
    shoulder = hip - torso_h
    parts = {"head": np.zeros_like(canvas), "torso": np.zeros_like(canvas),
             "legs": np.zeros_like(canvas)}
    cv2.circle(parts["head"], (x, shoulder - head_r), head_r, 1, -1)
    cv2.ellipse(parts["torso"], (x, (shoulder + hip) // 2), (torso_w // 2, torso_h // 2),
                0, 0, 360, 1, -1)
    leg = max(1, int(0.09 * s))
    spread = int(rng.uniform(0.03, 0.12) * s)
    cv2.line(parts["legs"], (x - leg // 2, hip), (x - spread, y_foot), 1, leg)
    cv2.line(parts["legs"], (x + leg // 2, hip), (x + spread, y_foot), 1, leg)
    arm = max(1, int(0.06 * s))
    swing = int(rng.uniform(-0.15, 0.15) * s)
    for side in (-1, 1):
        cv2.line(parts["torso"], (x + side * torso_w // 2, shoulder + arm),
                 (x + side * (torso_w // 2 + abs(swing)), hip + swing // 3), 1, arm)
    colours = {
        "head": _jitter(rng, (225, 180, 150), 30),
        "torso": rng.uniform(20, 235, 3),
        "legs": rng.uniform(20, 120, 3),
    }
    return parts, colours


def _draw_car(rng, canvas, x, y_ground, size):
    s = size
    length, body_h = int(s * rng.uniform(1.6, 2.2)), max(3, int(0.35 * s))
    x0, x1 = x - length // 2, x + length // 2
    wheel_r = max(2, int(0.16 * s))
    body_bottom = y_ground - wheel_r
    body_top = body_bottom - body_h
    parts = {"body": np.zeros_like(canvas), "window": np.zeros_like(canvas),
             "wheels": np.zeros_like(canvas)}
    radius = max(1, body_h // 3)
    cv2.rectangle(parts["body"], (x0 + radius, body_top), (x1 - radius, body_bottom), 1, -1)
    cv2.rectangle(parts["body"], (x0, body_top + radius), (x1, body_bottom - radius), 1, -1)
    for cx in (x0 + radius, x1 - radius):
        for cy in (body_top + radius, body_bottom - radius):
            cv2.circle(parts["body"], (cx, cy), radius, 1, -1)
    cabin_h = max(2, int(0.3 * s))
    cabin = np.array([[x0 + length // 5, body_top], [x0 + length // 3, body_top - cabin_h],
                      [x1 - length // 4, body_top - cabin_h], [x1 - length // 8, body_top]])
    cv2.fillPoly(parts["body"], [cabin.astype(np.int32)], 1)
    inset = max(1, cabin_h // 4)
    window = cabin + np.array([[inset, 0], [inset, inset], [-inset, inset], [-inset, 0]])
    cv2.fillPoly(parts["window"], [window.astype(np.int32)], 1)
    for cx in (x0 + length // 5, x1 - length // 5):
        cv2.circle(parts["wheels"], (cx, y_ground - wheel_r), wheel_r, 1, -1)
    colours = {
        "body": rng.uniform(20, 235, 3),
        "window": _jitter(rng, (40, 60, 80), 20),
        "wheels": _jitter(rng, (25, 25, 25), 10),
    }
    return parts, colours


def _draw_ball(rng, canvas, x, y_ground, size):
    r = max(2, int(0.25 * size * rng.uniform(0.7, 1.3)))
    ball = np.zeros_like(canvas)
    cv2.circle(ball, (x, y_ground - r), r, 1, -1)
    return {"ball": ball}, {"ball": rng.uniform(60, 255, 3)}, (x, y_ground - r, r)


def _scene_layout(rng, h, w, semantic):
    """Fill `semantic` with stuff: sky/wall above a wavy horizon, grass and a road below."""
    horizon = int(h * rng.uniform(0.3, 0.55))
    xs = np.arange(w)
    wave = horizon + (h * 0.04 * np.sin(xs / w * rng.uniform(2, 8) + rng.uniform(0, 6))).astype(
        int
    )
    ys = np.arange(h)[:, None]
    semantic[:] = np.where(ys < wave[None, :], SKY, GRASS)
    # Buildings: wall rectangles standing on the horizon.
    for _ in range(int(rng.integers(0, 4))):
        bx = int(rng.uniform(-0.1, 0.9) * w)
        bw = int(rng.uniform(0.15, 0.45) * w)
        top = int(horizon - rng.uniform(0.1, 0.35) * h)
        cv2.rectangle(semantic, (bx, top), (bx + bw, horizon + 1), WALL, -1)
    # Road: a trapezoid from the horizon to the bottom edge, in perspective.
    if rng.random() < 0.85:
        vanish = rng.uniform(0.2, 0.8) * w
        half_top = rng.uniform(0.02, 0.1) * w
        half_bottom = rng.uniform(0.25, 0.6) * w
        centre_bottom = vanish + rng.uniform(-0.3, 0.3) * w
        road = np.array([[vanish - half_top, horizon], [vanish + half_top, horizon],
                         [centre_bottom + half_bottom, h], [centre_bottom - half_bottom, h]])
        cv2.fillPoly(semantic, [road.astype(np.int32)], ROAD)
    return horizon


def _stuff_image(rng, semantic, horizon):
    """The stuff textures under `semantic`, with lane markings on the road."""
    h, w = semantic.shape
    image = np.zeros((h, w, 3), np.float32)
    for label, texture in ((SKY, _sky_texture), (GRASS, _grass_texture),
                           (ROAD, _road_texture), (WALL, _wall_texture)):
        _paint(image, semantic == label, texture(rng, h, w))
    # Lane markings: bright dashes on the road, still labelled road.
    road = semantic == ROAD
    if road.any():
        ys, xs = np.nonzero(road)
        mark = np.zeros((h, w), np.uint8)
        cx = int(np.median(xs))
        for y in range(horizon + 2, h, max(4, h // 12)):
            cv2.line(mark, (cx, y), (cx + int(0.05 * (y - horizon)), y + max(2, h // 30)), 1,
                     max(1, (y - horizon) * w // (30 * h)))
        _paint(image, (mark == 1) & road, np.full((h, w, 3), rng.uniform(200, 250), np.float32))
    return image


def _place_things(rng, h, w, horizon):
    """(y_ground, category, x, size) of 1-6 things, farthest (highest) first."""
    things = []
    for _ in range(int(rng.integers(1, 7))):
        category = int(rng.choice(THING_CLASSES, p=(0.4, 0.35, 0.25)))
        y_ground = int(rng.uniform(horizon + 0.08 * h, h * 1.05))
        depth = (y_ground - horizon) / max(1, h - horizon)
        size = max(8, int(h * (0.15 + 0.55 * depth) * rng.uniform(0.8, 1.2)))
        things.append((y_ground, category, int(rng.uniform(0.05, 0.95) * w), size))
    things.sort(key=lambda thing: thing[0])
    return things


def _draw_things(rng, image, semantic, horizon):
    """Paints the things into `image` and `semantic`, nearer ones over farther
    ones; returns the instance map (ids in drawing order) and their categories."""
    h, w = semantic.shape
    instances = np.zeros((h, w), np.int32)
    things = _place_things(rng, h, w, horizon)
    canvas = np.zeros((h, w), np.uint8)
    grain = 1.0 + rng.normal(0.0, 0.04, (h, w, 1)).astype(np.float32)
    drawn = []
    for y_ground, category, x, size in things:
        if category == PERSON:
            parts, colours = _draw_person(rng, canvas, x, y_ground, size)
        elif category == CAR:
            parts, colours = _draw_car(rng, canvas, x, y_ground, int(0.75 * size))
        else:
            parts, colours, (bx, by, br) = _draw_ball(rng, canvas, x, y_ground, size)
        mask = np.zeros((h, w), bool)
        for part, part_mask in parts.items():
            part_mask = part_mask.astype(bool)
            colour = colours[part].astype(np.float32)
            shade = grain
            if category == BALL:
                # Shaded sphere: brighter towards an upper-left highlight.
                yy, xx = np.mgrid[0:h, 0:w]
                dist = np.hypot(xx - (bx - br / 3), yy - (by - br / 3)) / (1.5 * br)
                shade = shade * np.clip(1.3 - dist, 0.35, 1.3)[..., None]
            _paint(image, part_mask, np.clip(colour * shade, 0, 255))
            mask |= part_mask
        semantic[mask] = category
        drawn.append(category)
        instances[mask] = len(drawn)
    return instances, drawn


def _visible_segments(semantic, instances, drawn):
    """Segments of the stuff present and of the visible instances, those
    renumbered 1..K in drawing order; returns (instance map, segments)."""
    segments = []
    for stuff in range(NUM_CLASSES):
        if stuff in THING_CLASSES:
            continue
        area = int(np.count_nonzero(semantic == stuff))
        if area:
            segments.append({"id": 1000 + stuff, "category_id": stuff, "isthing": False,
                             "area": area})
    relabelled = np.zeros_like(instances)
    next_id = 1
    for old_id, category in enumerate(drawn, start=1):
        mask = instances == old_id
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        relabelled[mask] = next_id
        segments.append({"id": next_id, "category_id": category, "isthing": True, "area": area})
        next_id += 1
    return relabelled, segments


def _camera(rng, image):
    """Scene-wide photometric jitter, blur and sensor noise; uint8."""
    gain = rng.uniform(0.75, 1.25)
    tint = rng.uniform(-20, 20, 3).astype(np.float32)
    image = image * gain + tint
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    image = image + rng.normal(0.0, rng.uniform(3, 9), image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def make_scene(seed, height=128, width=128):
    """Draw one synthetic scene, the same for the same seed.

    Args:
        seed: Non-negative integer; equal seeds give equal scenes.
        height: Image height in pixels (>= 32).
        width: Image width in pixels (>= 32).

    Returns:
        A dict with "image" (uint8 RGB, (height, width, 3)), "semantic" (uint8
        class ids, (height, width)), "instances" (int32, 0 = no instance, 1..K
        instance ids, numbered in drawing order, only visible ones kept) and
        "segments" (one dict per stuff class present and per instance, with
        "id", "category_id", "isthing" and "area"; stuff segments have id
        1000 + category_id so they never clash with instance ids).

    Example:
        >>> scene = make_scene(3, 64, 64)
        >>> scene["image"].shape, scene["semantic"].dtype
        ((64, 64, 3), dtype('uint8'))
    """
    check_positive_int("height", height, 32)
    check_positive_int("width", width, 32)
    check_positive_int("seed", seed, 0)
    h, w = int(height), int(width)
    rng = np.random.default_rng(int(seed))
    semantic = np.zeros((h, w), np.uint8)
    horizon = _scene_layout(rng, h, w, semantic)
    image = _stuff_image(rng, semantic, horizon)
    # Things stand on the ground; nearer (lower) ones are bigger and drawn later.
    instances, drawn = _draw_things(rng, image, semantic, horizon)
    instances, segments = _visible_segments(semantic, instances, drawn)
    return {
        "image": _camera(rng, image),
        "semantic": semantic,
        "instances": instances,
        "segments": segments,
    }


def _split_seeds(split, num_images, seed):
    check_choice("split", split, tuple(SPLITS))
    if num_images is None:
        num_images = DEFAULT_SIZES[split]
    if check_positive_int("num_images", num_images) > _SPLIT_STRIDE:
        raise ValueError(f"`num_images` must be an integer in [1, {_SPLIT_STRIDE}]. "
                         f"Received: num_images={num_images!r}")
    check_positive_int("seed", seed, 0)
    offset = (seed * len(SPLITS) + SPLITS[split]) * _SPLIT_STRIDE
    return [offset + index for index in range(num_images)]


def _check_image_size(image_size):
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(v, int) and v >= 32 for v in image_size)
    ):
        raise ValueError(
            "`image_size` must be (height, width) with integers >= 32. "
            f"Received: image_size={image_size!r}"
        )
    return tuple(image_size)


def synthetic_dataset(split="train", num_images=None, image_size=(128, 128), seed=0,
                      panoptic=False):
    """A `tf.data.Dataset` of synthetic scenes, drawn on the fly.

    Splits use disjoint scene seeds, so "train", "val" and "test" never share a
    scene. Default sizes: train 512, val 64, test 64.

    Args:
        split: One of "train", "val", "test".
        num_images: Number of scenes; `None` uses the split's default size.
        image_size: (height, width) of every scene.
        seed: Dataset seed; a different seed gives different scenes in every split.
        panoptic: If True, targets are {"semantic", "instances"} instead of a mask.

    Returns:
        A dataset of (image float32 (H, W, 3) in [0, 255], mask int32 (H, W)),
        or (image, {"semantic": int32 (H, W), "instances": int32 (H, W)}).

    Example:
        >>> ds = synthetic_dataset("val", num_images=4, image_size=(64, 64))
        >>> image, mask = next(iter(ds))
    """
    import tensorflow as tf

    seeds = _split_seeds(split, num_images, seed)
    height, width = _check_image_size(image_size)

    def generate():
        for scene_seed in seeds:
            scene = make_scene(scene_seed, height, width)
            image = scene["image"].astype(np.float32)
            semantic = scene["semantic"].astype(np.int32)
            if panoptic:
                yield image, {"semantic": semantic, "instances": scene["instances"]}
            else:
                yield image, semantic

    mask_spec = tf.TensorSpec((height, width), tf.int32)
    target_spec = {"semantic": mask_spec, "instances": mask_spec} if panoptic else mask_spec
    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=(tf.TensorSpec((height, width, 3), tf.float32), target_spec)
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(len(seeds)))


def write_synthetic_folder(root, split="train", num_images=None, image_size=(128, 128), seed=0):
    """Write synthetic scenes as a generic folder: root/images/*.png, root/masks/*.png.

    Masks are single-channel PNGs of class ids, with the same file stem as their
    image (`{split}_00000.png`), the layout `kerasseg.data.folder_dataset` reads.

    Args:
        root: Destination folder (created if missing).
        split: One of "train", "val", "test".
        num_images: Number of scenes; `None` uses the split's default size.
        image_size: (height, width) of every scene.
        seed: Dataset seed, as in `synthetic_dataset`.

    Returns:
        `root`, as a string.
    """
    seeds = _split_seeds(split, num_images, seed)
    height, width = _check_image_size(image_size)
    root = os.fspath(root)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "masks"), exist_ok=True)
    for index, scene_seed in enumerate(seeds):
        scene = make_scene(scene_seed, height, width)
        name = f"{split}_{index:05d}.png"
        cv2.imwrite(os.path.join(root, "images", name), scene["image"][..., ::-1])
        cv2.imwrite(os.path.join(root, "masks", name), scene["semantic"])
    return root


# === Portrait scenes: one person framed as in a selfie ===


def make_portrait_scene(seed, height=256, width=256, zoom=True):
    """One synthetic (image, person mask) pair, the same for the same seed.

    With `zoom` the scene is drawn at twice the size and cropped around its
    largest person, so the person fills the frame as in a selfie; scenes
    without a person stay whole (negatives). Without `zoom` it is the plain
    synthetic scene.

    Args:
        seed: Non-negative integer scene seed.
        height: Output height (>= 32).
        width: Output width (>= 32).
        zoom: Crop around the largest person.

    Returns:
        (image uint8 (height, width, 3) RGB, mask uint8 (height, width), 1 =
        person).
    """
    person = CLASS_NAMES.index("person")
    scale = 2 if zoom else 1
    scene = make_scene(seed, height * scale, width * scale)
    image, mask = scene["image"], (scene["semantic"] == person).astype(np.uint8)
    people = [s for s in scene["segments"] if s["isthing"] and s["category_id"] == person]
    if zoom and people:
        biggest = max(people, key=lambda s: s["area"])
        ys, xs = np.nonzero(scene["instances"] == biggest["id"])
        # A crop of the output's aspect ratio, the person about 80% of its height.
        crop_h = int(np.clip((ys.max() - ys.min() + 1) / 0.8, 16, height * scale))
        crop_w = min(width * scale, crop_h * width // height)
        crop_h = crop_w * height // width
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        top = int(np.clip(cy - crop_h // 2, 0, height * scale - crop_h))
        left = int(np.clip(cx - crop_w // 2, 0, width * scale - crop_w))
        image = image[top : top + crop_h, left : left + crop_w]
        mask = mask[top : top + crop_h, left : left + crop_w]
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, mask


def person_mask_dataset(split="train", num_images=None, image_size=(256, 256), seed=0,
                        zoom=True):
    """A `tf.data.Dataset` of synthetic (image, person mask) pairs.

    Scenes are those of `kerasseg.data.synthetic_dataset` for the same split
    and seed (splits never share a scene), labelled person vs. rest.

    Args:
        split: One of "train", "val", "test".
        num_images: Number of images; None uses the split's default size.
        image_size: (height, width).
        seed: Dataset seed.
        zoom: Crop each scene around its largest person (`make_portrait_scene`).

    Returns:
        A dataset of (image float32 (H, W, 3) in [0, 255], mask float32
        (H, W, 1) in {0, 1}), ready for a sigmoid model and binary
        cross-entropy.

    Example:
        >>> ds = person_mask_dataset("val", num_images=8, image_size=(144, 256))
    """
    import tensorflow as tf

    # The split's scene seeds and the argument checks of synthetic_dataset.
    seeds = _split_seeds(split, num_images, seed)
    height, width = _check_image_size(image_size)

    def generate():
        for scene_seed in seeds:
            image, mask = make_portrait_scene(scene_seed, height, width, zoom=zoom)
            yield image.astype(np.float32), mask[..., None].astype(np.float32)

    dataset = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((height, width, 3), tf.float32),
            tf.TensorSpec((height, width, 1), tf.float32),
        ),
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(len(seeds)))
