"""The one exception type for user mistakes: the CLI prints it as one line and exits with status 2."""


class UserError(Exception):
    """Bad input from the user: say what was wrong, where, and what is accepted."""
