"""Errors a user can act on. The CLI prints them as one paragraph and exits non-zero."""


class DistneError(Exception):
    """Base class of errors that are reported to the user without a traceback."""


class InputError(DistneError):
    """The input edge list or labels are missing, malformed or empty."""


class OutputError(DistneError):
    """The output path holds something this project must not overwrite."""
