"""The exceptions that decide a command's exit code.

* :class:`AcfdError`: the input is wrong (the user can fix it): one line, exit 2.
* :class:`CheckFailed`: a check failed: one line, exit 1.
* :class:`Terminated` (SIGTERM) and KeyboardInterrupt (SIGINT): cleanup, then 143 / 130.
* Anything else is a bug: one "internal error" line, exit 3, the traceback under ``--debug``.
"""


class AcfdError(ValueError):
    """Bad usage or bad input: the user can fix it."""


class ConfigError(AcfdError):
    """Unknown config name or a malformed stored config."""


class CheckpointError(AcfdError):
    """A weights file that is missing, unreadable, unsafe or of another architecture."""


class InputError(AcfdError):
    """An image tensor that breaks the input contract."""


class CheckFailed(Exception):
    """A check the user asked for did not pass (parity, budget, regression, an artifact
    that is not what it claims to be): exit code 1, one line, no traceback."""


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every cleanup on the way out runs
    (CI cancelling a job sends it); commands exit with 143 after it."""


def one_line(exc: BaseException, limit: int | None = None, ellipsis: bool = False) -> str:
    """``exc``'s message on one line (whitespace runs collapsed), cut at ``limit``
    characters (ending in "..." with ``ellipsis``); its type name when the message is
    empty. The one place an exception becomes the text of a one-line error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..." if ellipsis else text[:limit]
