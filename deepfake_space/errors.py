"""Typed errors: every failure reaches the user as a clear message, never as a default verdict."""

from __future__ import annotations


class DeepfakeSpaceError(Exception):
    """Base of every error the library raises on purpose; ``str(e)`` is meant for the user."""

    status = "error"


class MediaError(DeepfakeSpaceError):
    """The file cannot be analysed (unreadable, empty, corrupt, unsupported, too large, too long)."""


class UnsupportedMediaError(MediaError):
    pass


class CorruptMediaError(MediaError):
    pass


class EmptyMediaError(MediaError):
    pass


class MediaTooLargeError(MediaError):
    pass


class MediaTooLongError(MediaError):
    pass


class ModelLoadError(DeepfakeSpaceError):
    """A model folder or Hub repo is missing or does not hold a loadable detector."""


class FaceDetectorError(DeepfakeSpaceError):
    """A requested face detector is unknown, not installed, or failed to start or run."""
