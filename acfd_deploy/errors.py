"""Errors that mean "the input is wrong", as opposed to a bug.

Commands turn every :class:`AcfdError` into one line on stderr and exit code 2; any
other exception is a bug and keeps its traceback under ``--debug``.
"""


class AcfdError(ValueError):
    """Bad usage or bad input: the user can fix it."""


class ConfigError(AcfdError):
    """Unknown config name or a malformed stored config."""


class CheckpointError(AcfdError):
    """A weights file that is missing, unreadable, unsafe or of another architecture."""


class InputError(AcfdError):
    """An image tensor that breaks the input contract."""
