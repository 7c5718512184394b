"""Shared checks that every architecture's test file reuses.

A test file subclasses `ModelTester`, sets `builder` and a tiny `config`, and
inherits: output shape at several sizes (odd ones included), softmax output,
deterministic layer names, config round trip, `.keras` save/load with
`safe_mode=True`, gradient flow to every trainable weight, and overfitting one
tiny batch (loss falls 10x).

A model with a dict of outputs (LPSNet) sets `semantic_output` to the key of
its per-pixel logits (the output of its "logits" layer); the shape, softmax
and overfitting checks then read that output, the others every output, and
`check_outputs` can check the rest.
"""

import numpy as np
import pytest

from tests.layer_checks import OUTPUT_ATOL, assert_outputs_close


def tiny_batch(size=(64, 64), channels=3, num_classes=3, batch=2, seed=0):
    """Images whose classes are visible shapes: a bright disc on a dark
    stripe pattern, so a network can learn them from one batch."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[:height, :width]
    images = np.zeros((batch, height, width, channels), "float32")
    masks = np.zeros((batch, height, width), "int32")
    for i in range(batch):
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        radius = min(height, width) * rng.uniform(0.15, 0.3)
        stripes = ((xx // 8) % 2 == 0) & (num_classes > 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        masks[i][stripes] = 2 % num_classes
        masks[i][disc] = 1
        images[i] = 40.0 + 20.0 * rng.standard_normal((height, width, channels))
        images[i][stripes] += 60.0
        images[i][disc] = 220.0 + 10.0 * rng.standard_normal((disc.sum(), channels))
    return np.clip(images, 0, 255), masks


class ModelTester:
    """Base for architecture tests. Subclasses set the attributes below."""

    builder = None  # e.g. staticmethod(kerasseg.fcn8s)
    config = {}  # small keyword arguments for fast tests
    num_classes = 3
    channels = 3
    sizes = ((64, 64), (67, 45))  # odd sizes must work unless the model says not
    overfit_steps = 60
    overfit_learning_rate = 1e-3
    overfit_size = (64, 64)
    semantic_output = None  # the per-pixel logits' key, for a dict of outputs
    output_atol = OUTPUT_ATOL  # reloaded or cloned model against the original

    def build(self, **overrides):
        arguments = {
            "num_classes": self.num_classes,
            "input_shape": (None, None, self.channels),
            **self.config,
            **overrides,
        }
        return type(self).builder(**arguments)

    @pytest.fixture(scope="class")
    def model(self):
        return self.build()

    def inputs(self, size, batch=1, seed=0):
        rng = np.random.default_rng(seed)
        return rng.uniform(0, 255, (batch, *size, self.channels)).astype("float32")

    def semantic(self, outputs):
        """The per-pixel logits among a model's `outputs`."""
        return outputs[self.semantic_output] if self.semantic_output else outputs

    def check_outputs(self, outputs, size, batch):
        """Checks of a dict model's other outputs; a subclass overrides it."""

    def test_is_functional_model_with_logits_layer(self, model):
        import keras

        assert isinstance(model, keras.Model)
        if self.semantic_output:
            assert model.get_layer("logits").output is model.output[self.semantic_output]
        else:
            assert model.layers[-1].name == "logits"

    def test_output_shape_any_size(self, model):
        for size in self.sizes:
            out = model.predict(self.inputs(size, batch=2), verbose=0)
            assert self.semantic(out).shape == (2, *size, self.num_classes), size
            for value in out.values() if isinstance(out, dict) else [out]:
                assert np.isfinite(value).all()
            self.check_outputs(out, size, batch=2)

    def test_softmax_activation(self):
        model = self.build(activation="softmax")
        out = self.semantic(model.predict(self.inputs(self.sizes[0]), verbose=0))
        np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-4)

    def test_layer_names_deterministic(self, model):
        again = self.build()
        assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]

    def test_config_round_trip(self, model):
        import keras

        clone = keras.Model.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        x = self.inputs(self.sizes[0])
        assert_outputs_close(clone.predict(x, verbose=0), model.predict(x, verbose=0),
                             self.output_atol)

    def test_save_load_safe_mode(self, model, tmp_path):
        import keras

        path = tmp_path / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        x = self.inputs(self.sizes[0])
        assert_outputs_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                             self.output_atol)

    def test_gradient_reaches_every_trainable_weight(self, model):
        import tensorflow as tf

        x = tf.constant(self.inputs(self.sizes[0], batch=2))
        with tf.GradientTape() as tape:
            outputs = tf.nest.flatten(model(x, training=True))
            loss = tf.add_n([tf.reduce_mean(tf.square(output)) for output in outputs])
        grads = tape.gradient(loss, model.trainable_weights)
        dead = [w.path for w, g in zip(model.trainable_weights, grads) if g is None]
        assert not dead, f"no gradient for {dead}"
        zero = [w.path for w, g in zip(model.trainable_weights, grads) if not np.any(g.numpy())]
        assert not zero, f"zero gradient for {zero}"

    def test_overfits_one_batch(self):
        import keras

        model = self.build()
        images, masks = tiny_batch(self.overfit_size, self.channels, self.num_classes)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if self.semantic_output:
            # Only the per-pixel logits are trained here.
            loss, masks = {self.semantic_output: loss}, {self.semantic_output: masks}
        model.compile(optimizer=keras.optimizers.Adam(self.overfit_learning_rate), loss=loss)
        # Training-mode losses: batch-norm moving statistics lag behind after
        # so few steps, which is not what this test is about.
        history = model.fit(
            images, masks, batch_size=len(images), epochs=self.overfit_steps, verbose=0
        )
        first, last = history.history["loss"][0], min(history.history["loss"][-5:])
        assert last < first / 10, (first, last)

    def test_rejects_bad_num_classes(self):
        with pytest.raises(ValueError, match="num_classes"):
            self.build(num_classes=0)
