"""The one base of every error genre_cnn reports to its users.

    from genre_cnn.errors import GenreCnnError

Each subclass carries a one-line message meant for the user (a file, an option, what to do) and the exit code
the command line returns for it; anything that is not a GenreCnnError is a bug and keeps its traceback.
"""

from __future__ import annotations


class GenreCnnError(Exception):
    """A problem the user can fix (a bad file, setting, checkpoint or dataset); the message is one line."""

    exit_code = 1
