"""The errors genre_cnn reports to its users, and the one place a command turns them into a line and an exit code.

    from genre_cnn.errors import GenreCnnError, SettingsError, UsageError, run_command
    sys.exit(run_command(lambda: main(argv)))      # how `genre-cnn` and `python train.py` run

Each GenreCnnError carries a one-line message meant for the user (a file, an option, what to do) and the exit code
the command line returns for it; anything that is not a GenreCnnError is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class GenreCnnError(Exception):
    """A problem the user can fix (a bad file, setting, checkpoint or dataset); the message is one line."""

    exit_code = 1


class SettingsError(GenreCnnError):
    """A setting out of its sane range; the message names the option as the command line spells it
    (e.g. "--data.batch_size must be >= 1, got 0")."""

    exit_code = 2


class UsageError(GenreCnnError):
    """Options that do not go together (the command line's own parser checks each one alone)."""

    exit_code = 2


INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
CLOSED_PIPE = 141  # 128 + SIGPIPE: the reader of the output went away (`genre-cnn predict ... | head -1`)


def run_command(command: Callable[[], int | None]) -> int:
    """Runs a command-line entry point and returns its exit code (None counts as 0).

    A GenreCnnError is one line `error: ...` on stderr and its `exit_code`; Ctrl-C is one line and 130; a
    closed output pipe ends quietly with 141. Anything else is a bug: it propagates with its traceback.
    """
    try:
        code = command() or 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except GenreCnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # what is still buffered for stdout would fail again at exit: send it nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE
