"""How a command fails: a message for people and an exit code for pipelines.

Every expected failure (a refusal by the API server, a bad flag value, a change
that ends badly, a timeout) becomes a CommandError, which `main` prints to
stderr without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the process returns; pipelines branch on these."""

    OK = 0
    ERROR = 1  # the API server refused, or could not be reached
    USAGE = 2  # bad flags or values (argparse uses 2 as well)
    CHANGE_FAILED = 3  # the change ended Failed, Rejected, Cancelled or Expired
    TIMEOUT = 4  # --wait gave up before the change settled
    TAMPERED = 5  # report verify: the evidence does not verify


class CommandError(Exception):
    """An expected failure, reported as `error: <message>` and an exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
