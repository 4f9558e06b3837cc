"""Dataset config tests reuse the config tier's writable conf/ copy."""

from tests.unit.config.conftest import conf_copy

__all__ = ["conf_copy"]
