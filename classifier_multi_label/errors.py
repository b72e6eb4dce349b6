"""The project's user-error type. An error of this type is about the user's data, options, files or
server, and says how to fix it: the command-line entry points print its message and exit with
status 2, without a traceback. Any other exception is a bug and shows its traceback."""


class UserError(ValueError):
    """Bad input, options or files (a ValueError, so `except ValueError` callers keep working)."""


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training after a step, with a checkpoint that `--resume` continues from (the
    command-line entry points print the message and exit with status 130)."""
