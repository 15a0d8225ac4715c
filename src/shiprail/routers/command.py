"""Command router: the user's script applies the weight it finds in its environment.

``set`` runs through ``/bin/sh -c`` with ``SHIPRAIL_SERVICE``, ``SHIPRAIL_VERSION``,
``SHIPRAIL_BASELINE`` and ``SHIPRAIL_WEIGHT`` added to shiprail's environment. It must be
idempotent: shiprail runs it again whenever it sets a weight, even the same one. A non-zero exit
or a run longer than ``timeout`` is a ``RouterError``.

A router command must finish, and what it leaves running is killed when it does (exits, fails or
times out): its process group, and what left the group (``setsid``, a daemon's double fork),
found as a stage check's are (``shiprail.checks.tests.run_command``, ``checks.leftovers``). A
process it left behind would otherwise hold ports and locks for good, or apply a weight after
shiprail has moved on: a step's 10 landing after the rollback that set 0.

The script runs under coreutils' ``timeout`` (when the machine has it), which kills the script's
process group a second after its ``timeout`` even when the controller that started it is gone
(``kill -9``): an orphaned ``set`` of an old weight cannot land after the controller that took the
release over (it waits for the dead one's call mark to pass, ``shiprail.controller.leases``) has
rolled back. What left the group is not killed then: only a live controller finds it.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from typing import Literal

from pydantic import Field, field_validator

from shiprail import defaults
from shiprail.checks.tests import run_command
from shiprail.routers.base import RouterError
from shiprail.schema.base import Duration, StrictModel
from shiprail.text import shell_status

# re.ASCII: \d alone also matches other scripts' digits (Arabic-Indic or fullwidth fifty), which float() reads; a
# command printing those is broken (a locale-formatting bug), not a weight to route by.
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*%?\s*$", re.ASCII)
TAIL = 500
"""How many characters of the script's stderr a ``RouterError`` carries."""


class CommandRouterConfig(StrictModel):
    """``set`` applies ``SHIPRAIL_WEIGHT``; ``get`` (optional) prints the current weight."""

    type: Literal["command"] = Field(description="`command`.")
    set: str = Field(
        description=(
            "The command that applies the weight it finds in SHIPRAIL_WEIGHT. It must finish: what it "
            "leaves running when it exits or times out is killed."
        )
    )
    get: str | None = Field(None, description="A command that prints the current weight.")
    timeout: Duration = Field(30, description="The longest either command may run; longer than 0s.")

    @field_validator("set")
    @classmethod
    def _set_is_a_command(cls, value: str) -> str:
        if not value.strip():  # the empty shell exits 0: every weight would "apply" and change nothing
            raise ValueError("is empty; give the shell command that applies SHIPRAIL_WEIGHT")
        return value

    @field_validator("get")
    @classmethod
    def _get_is_a_command(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty; give a shell command that prints the current weight, or remove get")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_is_positive(cls, value: int) -> int:
        if value <= 0:  # every command would be killed the moment it starts
            raise ValueError("must be longer than 0s")
        return value


def format_weight(weight: float) -> str:
    """``SHIPRAIL_WEIGHT`` as the script sees it: ``10``, ``0.5``."""
    return f"{weight:.6f}".rstrip("0").rstrip(".") or "0"


def parse_weight(stdout: str) -> float:
    """The weight a ``get`` command printed: its last non-empty line, a number (``%`` allowed)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    match = _NUMBER.match(lines[-1]) if lines else None
    if not match:
        shown = lines[-1].strip()[:200] if lines else "nothing"
        raise RouterError(
            f"the router's get command printed {shown!r}, not a weight between 0 and 100 in ASCII digits (0-9)"
        )
    weight = float(match.group(1))
    if not 0 <= weight <= 100:
        raise RouterError(f"the router's get command printed {weight:g}, not a weight between 0 and 100")
    return weight


def _tail(text: str) -> str:
    text = text.strip()
    return ("…" + text[-TAIL:]) if len(text) > TAIL else text


class CommandRouter:
    """Applies weights by running the user's commands."""

    def __init__(self, config: CommandRouterConfig, service_name: str, version: str, *, baseline: str = "") -> None:
        self.config = config
        self.service_name = service_name
        self.version = version
        self.baseline = baseline
        self.last_set: float | None = None
        """The last weight ``set`` applied successfully; ``current_weight`` without ``get`` returns it."""

    def environment(self, weight: float | None) -> dict[str, str]:
        """shiprail's environment plus the ``SHIPRAIL_*`` variables for the script."""
        env = dict(os.environ)
        env["SHIPRAIL_SERVICE"] = self.service_name
        env["SHIPRAIL_VERSION"] = self.version
        env["SHIPRAIL_BASELINE"] = self.baseline
        if weight is None:
            env.pop("SHIPRAIL_WEIGHT", None)
        else:
            env["SHIPRAIL_WEIGHT"] = format_weight(weight)
        return env

    def argv(self, command: str) -> list[str]:
        """How ``command`` is started: through the shell, under the watchdog when there is one."""
        shell = ["/bin/sh", "-c", command]
        watchdog = shutil.which("timeout")
        if watchdog is None:
            return shell
        # A second later than this process's own kill, so a live controller reports the timeout.
        limit = f"{self.config.timeout + defaults.COMMAND_WATCHDOG_GRACE_SECONDS:g}s"
        return [watchdog, "--signal=KILL", limit, *shell]

    def run(self, which: str, command: str, weight: float | None) -> str:
        """Run one command; its stdout, or ``RouterError`` on a non-zero exit or a timeout.

        The run ends when the script exits, even if a process it started in the background still
        holds its output open (it goes to temporary files, not pipes), and everything it started
        is killed then; on a timeout, at once (no grace after the SIGTERM: a script still applying
        a weight must not finish later).
        """
        done = run_command(
            self.argv(command),
            cwd=None,
            env=self.environment(weight),
            timeout_s=self.config.timeout,
            grace_s=0.0,
        )
        if done.start_error is not None:
            raise RouterError(f"the router's {which} command could not start: {done.start_error}")
        stderr = done.stderr_tail
        if done.timed_out:
            said = f": {_tail(stderr)}" if stderr.strip() else ""
            raise RouterError(
                f"the router's {which} command ran longer than its {self.config.timeout}s timeout and was killed{said}"
            )
        if done.output_cap is not None:
            raise RouterError(f"the router's {which} command was killed: {done.capped()}")
        if done.exit_code != 0:
            assert done.exit_code is not None  # None only when it could not start
            said = f": {_tail(stderr)}" if stderr.strip() else " (it wrote nothing to stderr)"
            raise RouterError(f"the router's {which} command exited with status {shell_status(done.exit_code)}{said}")
        return done.stdout_tail

    @property
    def call_timeout_s(self) -> float:
        """The longest one call may take: each runs one command, killed at its timeout (killing what
        it left and reaping it takes a moment more, well inside the lease's call margin)."""
        return float(self.config.timeout)

    def set_weight(self, weight: float) -> None:
        """Run ``set`` with ``SHIPRAIL_WEIGHT``; every call runs it, so it must be idempotent."""
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
            raise RouterError(f"a canary weight must be a number between 0 and 100, got {weight!r}")
        if not 0 <= weight <= 100:
            raise RouterError(f"a canary weight must be between 0 and 100, got {weight:g}")
        self.run("set", self.config.set, weight)
        self.last_set = float(weight)

    def current_weight(self) -> float:
        """What ``get`` prints; without ``get``, the last weight ``set`` applied (its exit 0 is the proof)."""
        if self.config.get is not None:
            return parse_weight(self.run("get", self.config.get, None))
        if self.last_set is None:
            raise RouterError(
                "the command router has no get command and has not set a weight yet, so the weight is unknown"
            )
        return self.last_set
