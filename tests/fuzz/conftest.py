from tests.gateway.conftest import configure  # noqa: F401  (apply a configuration document)
