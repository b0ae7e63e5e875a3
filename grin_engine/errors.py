"""Exceptions raised by the engine; callers (CLI, worker) map them to exit codes or job states."""


class EngineError(Exception):
    """A user-facing failure: bad input, bad path, incompatible artifacts. The message is one line."""


class DataError(EngineError):
    """A malformed record file; the message names the file and the 1-based line number."""


class MaskMismatch(EngineError):
    """A mask that was computed for another model (names, shapes or base hash differ)."""


class Cancelled(Exception):
    """Raised between steps when the caller's should_stop() returns true.

    Not an EngineError on purpose: a cancelled job is not a failed one.
    """
