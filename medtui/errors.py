"""Errors that carry a one-line message meant for the user.

The CLI turns :class:`UsageError` (and its subclasses) into a one-line message
on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations


class MedtuiError(Exception):
    """Base class of all errors medtui raises on purpose."""


class UsageError(MedtuiError):
    """Bad input from the user: unknown names, malformed files, invalid values (exit 2)."""


class ConfigError(UsageError):
    """An experiment configuration (flags or TOML) is invalid."""


class UnknownTaskError(UsageError):
    """A task name is not in the registry."""


class DataError(UsageError):
    """A dataset file is missing, unreadable or does not have the expected layout."""


class ModelError(UsageError):
    """A model architecture or its weights cannot be found or loaded."""


class StoreError(UsageError):
    """The run store was asked for something it does not hold (unknown run id, ...)."""


class RunCancelled(MedtuiError):
    """Raised inside the engine when a cancellation was requested."""
