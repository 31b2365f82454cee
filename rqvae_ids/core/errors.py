"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or configuration: a clear message, no traceback, nothing written."""

    exit_code = 2
