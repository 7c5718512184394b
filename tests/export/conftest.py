"""Fixtures of the exporter tests: the tiny trained model, images and its outputs."""

import pytest

from tests.export import tiny


@pytest.fixture(scope="module")
def model():
    return tiny.trained()


@pytest.fixture(scope="module")
def images():
    return tiny.images(batch=2)


@pytest.fixture(scope="module")
def reference(model, images):
    return model.predict(images.astype("float32"), verbose=0)
