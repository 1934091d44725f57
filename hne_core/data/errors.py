"""The data stage's error type, in a module of its own so that code the workflow runs while it parses (the
source registry, ``hne_core.data.sources``) can raise it without importing pandas."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file, the row or the config key."""


class ConfigError(DataError):
    """A data source's config section says something impossible; ``key`` is the dotted config key
    (``folder.classes``), which the workflow puts first in its message."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
