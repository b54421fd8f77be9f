"""The exception tree of resd_envs.

Every error a user can trigger derives from :class:`ResdEnvError`, so callers can catch one class.
Model output never raises: a bad submission becomes a scored attempt with an ``error_type``.
"""

from __future__ import annotations


class ResdEnvError(Exception):
    """Base class for every error raised by resd_envs."""


class UnknownEnvError(ResdEnvError, KeyError):
    """An environment id that is not registered by resd_envs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownTaskError(ResdEnvError, KeyError):
    """A task id or index that does not exist in the requested split."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(ResdEnvError, FileNotFoundError):
    """A data file the environment needs is missing; the message says where to get it."""


class AssetNotFoundError(ResdEnvError, FileNotFoundError):
    """A shipped asset (grammar, physics preset, task set) could not be located."""


class ChecksumMismatchError(ResdEnvError):
    """A shipped task set does not hash to the checksum in its manifest."""


class ConfigError(ResdEnvError, ValueError):
    """An invalid constructor argument or option."""


class MissingDependencyError(ResdEnvError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""
