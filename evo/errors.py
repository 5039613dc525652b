"""Errors that reach the user as one clear line rather than a traceback."""


class UserError(ValueError):
    """A mistake in the user's input (bad flag, missing file, unknown model, corrupt
    checkpoint): the CLI prints its message and exits with status 2."""
