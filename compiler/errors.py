"""The one exception type for mistakes a user can make (bad files, options, shapes)."""


class SPSError(Exception):
    """A user error: the CLI prints its one-line message and exits with status 2."""
