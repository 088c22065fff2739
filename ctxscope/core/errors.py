"""Exceptions that carry a message fit to show a user as-is (CLI exit code 2)."""

from __future__ import annotations


class CtxscopeError(Exception):
    """Base class for errors caused by user input; ``str(err)`` is one clear line.
    ``exit_code`` is the CLI's exit status for it."""

    exit_code = 2


class BadInputError(CtxscopeError):
    """A wrong source, path, option value, length list, device, mode, id or file."""


class ModelLoadError(CtxscopeError):
    """The model could not be loaded (missing files, offline without cache, bad config)."""


class RunFileError(CtxscopeError):
    """A run file is unreadable, malformed or of an unknown schema."""


class WireError(CtxscopeError):
    """A line that is not a valid ctxscope message (one line saying why)."""


class DeviceError(CtxscopeError):
    """The device failed under us (a CUDA context poisoned by a device-side assert):
    not the user's input, but nothing ctxscope can retry either (CLI exit code 3)."""

    exit_code = 3


#: What a user reads when the CUDA context is gone.
CONTEXT_LOST = "the CUDA context is no longer usable; restart ctxscope (the points measured so far are kept)"
