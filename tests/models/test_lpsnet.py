"""LPSNet: the shared model checks on its dict of outputs, its box outputs,
its losses' gradients, training through fit, TFLite + panoptic head."""

import numpy as np
import pytest

from kerasseg.models.lpsnet import lpsnet
from kerasseg.panoptic.targets import level_shapes
from tests.model_tester import ModelTester

THINGS = (4, 5, 6)
NUM_CLASSES = 7
TINY = {
    "backbone": "mobilenetv2",
    "backbone_kwargs": {"alpha": 0.35},
    "thing_classes": THINGS,
    "fpn_filters": 16,
    "semantic_filters": 8,
    "head_convs": 1,
}
SIZE_RANGES = ((0, 16), (16, 32), (32, 64), (64, 128), (128, np.inf))
OUTPUT_KEYS = {"semantic", "class_logits", "boxes", "borderness"}


def build(**overrides):
    return lpsnet(NUM_CLASSES, **{**TINY, **overrides})


def images(size, batch=1, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, *size, 3)).astype("float32")


# The shared overfitting check trains the semantic output only, so Keras
# warns that the box head gets no gradient there.
@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
class TestLPSNet(ModelTester):
    builder = staticmethod(lpsnet)
    config = TINY
    num_classes = NUM_CLASSES
    sizes = ((64, 96), (67, 45))
    semantic_output = "semantic"
    output_atol = 1e-4
    overfit_learning_rate = 5e-3

    def check_outputs(self, outputs, size, batch):
        # One row per box-head cell of P3..P7 in every box output; at training
        # sizes (multiples of 32), the cells of `kerasseg.panoptic.targets`.
        assert set(outputs) == OUTPUT_KEYS
        cells = outputs["class_logits"].shape[1]
        if size[0] % 32 == 0 and size[1] % 32 == 0:
            assert cells == sum(h * w for h, w in level_shapes(*size))
        assert outputs["class_logits"].shape == (batch, cells, len(THINGS))
        assert outputs["boxes"].shape == (batch, cells, 4)
        assert outputs["borderness"].shape == (batch, cells, 1)


@pytest.fixture(scope="module")
def model():
    return build()


def test_initial_class_scores_follow_the_focal_loss_prior(model):
    class_logits = model(images((64, 96), batch=2))["class_logits"].numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-class_logits.mean())), 0.01, rtol=0.2)


def test_gradient_reaches_every_weight_through_lpsnet_losses(model):
    import tensorflow as tf

    from kerasseg.data.synthetic import make_scene
    from kerasseg.panoptic import compose_panoptic, encode_targets, lpsnet_losses

    # Batch 2 at 128x128: batch norm after the PPM's 1x1 pooling needs two values.
    scenes = [make_scene(seed, 128, 128) for seed in (1, 2)]
    encoded = [encode_targets(compose_panoptic(s["semantic"], s["instances"], THINGS), THINGS,
                              size_ranges=SIZE_RANGES) for s in scenes]
    assert all((t["class"] > 0).any() for t in encoded)
    y = {"semantic": np.stack([t["semantic"] for t in encoded]),
         "class_logits": np.stack([t["class"] for t in encoded]),
         "boxes": np.stack([t["boxes"] for t in encoded]),
         "borderness": np.stack([t["borderness"][:, None] for t in encoded])}
    losses, weights = lpsnet_losses()
    with tf.GradientTape() as tape:
        out = model(np.stack([s["image"] for s in scenes]).astype("float32"), training=True)
        loss = sum(weights[k] * losses[k](y[k], out[k]) for k in losses)
    grads = tape.gradient(loss, model.trainable_weights)
    dead = [w.path for w, g in zip(model.trainable_weights, grads, strict=True)
            if g is None or not np.any(g.numpy())]
    assert not dead, dead


@pytest.fixture(scope="module")
def trained():
    """A 64x64 fixed-size LPSNet after a few fit steps on synthetic panoptic data."""
    import keras

    from kerasseg.data.synthetic import synthetic_dataset
    from kerasseg.panoptic import compile_lpsnet, panoptic_dataset

    keras.utils.set_random_seed(0)
    net = build(input_shape=(64, 64, 3))
    data = panoptic_dataset(synthetic_dataset("train", 2, (64, 64), panoptic=True), THINGS,
                            batch_size=2, size_ranges=SIZE_RANGES).cache()
    compile_lpsnet(net, optimizer=keras.optimizers.Adam(3e-3))
    # One step per epoch: the history holds the loss of every step.
    history = net.fit(data.repeat(), steps_per_epoch=1, epochs=30, verbose=0,
                      shuffle=False).history
    return net, history


def test_fit_with_panoptic_dataset_lowers_every_loss(trained):
    history = trained[1]
    for key in ("loss", "semantic_loss", "class_logits_loss", "boxes_loss", "borderness_loss"):
        first, last = np.mean(history[key][:3]), np.mean(history[key][-3:])
        assert last < first, (key, history[key])
    assert np.mean(history["loss"][-3:]) < 0.75 * np.mean(history["loss"][:3]), history["loss"]


def test_tflite_builtins_and_runtime_merge_equals_keras_merge(trained):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from kerasseg.data.synthetic import make_scene
    from kerasseg.panoptic import panoptic_merge, panoptic_merge_tf

    net = trained[0]
    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner()
    image = make_scene(123, 64, 64)["image"][None].astype("float32")
    lite = runner(image=image)
    keras_out = net(image)
    for key in OUTPUT_KEYS:
        assert lite[key].shape == tuple(keras_out[key].shape)
        np.testing.assert_allclose(lite[key], keras_out[key].numpy(), atol=1e-3, rtol=1e-4)
    options = {"score_threshold": 0.02, "min_thing_area": 2, "min_stuff_area": 4}
    # After 30 steps the semantic head predicts few thing pixels, so also read
    # the class channels as the stuff categories it does predict: the paste
    # path then runs on real network outputs.
    labels = np.argmax(lite["semantic"][0], -1)
    frequent = tuple(int(c) for c in np.argsort(-np.bincount(labels.ravel(), minlength=7))[:3])
    pasted = 0
    for things in (THINGS, frequent):
        runtime = panoptic_merge(lite["semantic"][0], lite["class_logits"][0], lite["boxes"][0],
                                 lite["borderness"][0], things, **options)
        keras_path = panoptic_merge_tf(keras_out["semantic"][0], keras_out["class_logits"][0],
                                       keras_out["boxes"][0], keras_out["borderness"][0], things,
                                       **options).numpy()
        np.testing.assert_array_equal(runtime, keras_path)
        pasted += int(np.count_nonzero(runtime % 1000 > 0))
    assert pasted > 0, "expected at least one pasted instance"
