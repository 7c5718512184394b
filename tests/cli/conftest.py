"""The exporter tests' fixtures (tiny trained model, images, Keras outputs), for
`kerasseg export`'s tests."""

from tests.export.conftest import images, model, reference  # noqa: F401
