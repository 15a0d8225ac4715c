"""nginx router: weighted upstream servers (or ``split_clients`` for sticky cohorts).

shiprail owns one include file per service. A change is written atomically (a temporary file in
the same directory, then ``os.replace``), checked with ``nginx -t`` (the previous file is put back
when nginx rejects it) and applied with ``nginx -s reload``. The file's first line records the
weight and whether the reload that applies it was confirmed, so ``current_weight`` reads the
weight back from the file alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from shiprail.routers.base import RouterError
from shiprail.schema.base import Duration, StrictModel

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SERVER = re.compile(r"[^\s;{}\"'#\\]+")
_BAD_IN_KEY = re.compile(r"[\"\\;\n\r]")

SCALE = 10_000
"""Weights are applied in hundredths of a percent: 0.01 % is the smallest canary share."""

MARKER_PREFIX = "# shiprail-router: nginx"
_MARKER = re.compile(
    r"^# shiprail-router: nginx upstream=(?P<upstream>\S+) weight=(?P<weight>[0-9.]+) "
    r"state=(?P<state>applied|pending)$"
)


class NginxRouterConfig(StrictModel):
    """Where the include file goes and what it routes between.

    shiprail writes ``include_file`` atomically, checks the whole configuration with ``nginx -t``
    and reloads nginx; the file is the single source of truth for the current weight.
    """

    type: Literal["nginx"] = Field(description="`nginx`.")
    include_file: str = Field(
        description="The file shiprail writes the split into; include it in the nginx configuration."
    )
    upstream: str = Field(description="The name of the upstream the include file defines.")
    stable: str = Field(description="The stable version's server (host:port).")
    canary: str = Field(description="The canary version's server (host:port).")
    mode: Literal["weighted", "split_clients"] = Field(
        "weighted", description="`weighted` upstream servers, or `split_clients` for sticky cohorts."
    )
    key: str = Field("$remote_addr", description="The nginx variable `split_clients` hashes into cohorts.")
    nginx_binary: str = Field("nginx", description="The nginx executable, for `nginx -t` and reloads.")
    conf: str | None = Field(None, description="The main nginx configuration file, when not nginx's default.")
    prefix: str | None = Field(None, description="nginx's prefix directory (`nginx -p`), when not the compiled-in one.")
    error_log: str | None = Field(
        None,
        description="The error log nginx writes while testing and reloading (`nginx -e`), when not the default.",
    )
    timeout: Duration = Field(60, description="The longest `nginx -t` or `nginx -s reload` may run.")

    @field_validator("upstream")
    @classmethod
    def _upstream_is_a_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"an upstream name of letters, digits, '_', '.' or '-' is required, got {value!r}")
        return value

    @field_validator("stable", "canary")
    @classmethod
    def _server_is_an_address(cls, value: str) -> str:
        if not _SERVER.fullmatch(value):
            raise ValueError(f"a server address like 10.0.0.5:8080 is required, got {value!r}")
        return value

    @field_validator("key")
    @classmethod
    def _key_fits_in_quotes(cls, value: str) -> str:
        if not value or _BAD_IN_KEY.search(value):
            raise ValueError(f"an nginx expression without quotes, backslashes or ';' is required, got {value!r}")
        return value


def check_weight(weight: float) -> float:
    """The weight as applied: a percentage between 0 and 100, in hundredths; else ``RouterError``."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise RouterError(f"a canary weight must be a number between 0 and 100, got {weight!r}")
    if not 0 <= weight <= 100:
        raise RouterError(f"a canary weight must be between 0 and 100, got {weight:g}")
    return round(weight * 100) / 100


def format_weight(weight: float) -> str:
    """``10``, ``0.5``, ``12.25``: no trailing zeros, no exponent."""
    text = f"{weight:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def variable_name(upstream: str) -> str:
    """The nginx variable ``split_clients`` sets to the chosen upstream's name."""
    return "shiprail_" + re.sub(r"[^A-Za-z0-9_]", "_", upstream)


def server_weights(weight: float) -> tuple[int, int]:
    """``(stable, canary)`` nginx server weights for a canary percentage, in lowest terms.

    A weight of 0 is given to a server that must get no traffic; its line is left out.
    """
    canary = round(weight * SCALE / 100)
    stable = SCALE - canary
    divisor = math.gcd(stable, canary)
    return stable // divisor, canary // divisor


def render(config: NginxRouterConfig, weight: float, *, state: Literal["applied", "pending"] = "applied") -> str:
    """The include file for ``weight`` (already checked with ``check_weight``)."""
    shown = format_weight(weight)
    lines = [
        f"{MARKER_PREFIX} upstream={config.upstream} weight={shown} state={state}",
        "# Written by shiprail: every change is overwritten. The line above records the canary weight.",
    ]
    if config.mode == "weighted":
        stable_weight, canary_weight = server_weights(weight)
        lines.append(f"upstream {config.upstream} {{")
        if stable_weight:
            lines.append(f"    server {config.stable} weight={stable_weight};  # stable")
        if canary_weight:
            lines.append(f"    server {config.canary} weight={canary_weight};  # canary")
        lines.append("}")
    else:
        stable_name, canary_name = f"{config.upstream}_stable", f"{config.upstream}_canary"
        lines += [
            f"upstream {stable_name} {{",
            f"    server {config.stable};",
            "}",
            f"upstream {canary_name} {{",
            f"    server {config.canary};",
            "}",
            # Stable owns the start of the hash range, so an empty key (hash 0) always goes to stable,
            # and the canary's cohort only grows as its weight does.
            f'split_clients "{config.key}" ${variable_name(config.upstream)} {{',
        ]
        if weight <= 0:
            lines.append(f"    * {stable_name};")
        elif weight >= 100:
            lines.append(f"    * {canary_name};")
        else:
            lines.append(f"    {format_weight(100 - weight)}% {stable_name};")
            lines.append(f"    * {canary_name};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def parse_marker(text: str, upstream: str, where: str) -> tuple[float, str]:
    """``(weight, state)`` from an include file's first line; ``RouterError`` when it is not ours."""
    first = text.split("\n", 1)[0]
    match = _MARKER.match(first)
    if not match:
        raise RouterError(f"{where} does not start with shiprail's weight marker; it was not written by shiprail")
    if match["upstream"] != upstream:
        raise RouterError(
            f"{where} was written for upstream {match['upstream']!r}, not {upstream!r}; give each service its own file"
        )
    return float(match["weight"]), match["state"]


class NginxRouter:
    """Splits one service's traffic through an nginx include file."""

    def __init__(self, config: NginxRouterConfig, service_name: str) -> None:
        self.config = config
        self.service_name = service_name
        self.path = Path(config.include_file)

    @property
    def call_timeout_s(self) -> float:
        """The longest one call may take: ``set_weight`` runs ``nginx -t`` and ``nginx -s reload``."""
        return 2 * float(self.config.timeout)

    # -- reading -------------------------------------------------------------------------------

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RouterError(f"cannot read {self.path}: {exc.strerror or exc}") from exc

    def current_weight(self) -> float:
        """The weight recorded in the include file, once its reload was confirmed."""
        text = self._read()
        if text is None:
            raise RouterError(f"{self.path} does not exist; set a weight first (it must exist before nginx starts)")
        weight, state = parse_marker(text, self.config.upstream, str(self.path))
        if state != "applied":
            raise RouterError(
                f"{self.path} holds weight {format_weight(weight)} but the reload applying it was not confirmed; "
                "set the weight again"
            )
        return weight

    # -- writing -------------------------------------------------------------------------------

    def _write(self, text: str | None) -> None:
        """Replace the include file atomically with ``text`` (or remove it for ``None``)."""
        if text is None:
            self.path.unlink(missing_ok=True)
            return
        directory = self.path.parent
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise RouterError(f"cannot write into {directory}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise RouterError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        try:
            dir_fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def nginx_command(self, *args: str) -> list[str]:
        """``nginx`` with the configured ``-p``, ``-c`` and ``-e`` flags, then ``args``."""
        command = [self.config.nginx_binary]
        if self.config.prefix:
            command += ["-p", self.config.prefix]
        if self.config.conf:
            command += ["-c", self.config.conf]
        if self.config.error_log:
            command += ["-e", self.config.error_log]
        return command + list(args)

    def _nginx(self, *args: str) -> tuple[bool, str]:
        command = self.nginx_command(*args)
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.config.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            return False, f"{self.config.nginx_binary} was not found"
        except subprocess.TimeoutExpired:
            return False, f"`{' '.join(command)}` ran longer than {self.config.timeout}s"
        except OSError as exc:
            return False, f"`{' '.join(command)}` could not run: {exc.strerror or exc}"
        return done.returncode == 0, _nginx_message(done.stderr + done.stdout)

    def set_weight(self, weight: float) -> None:
        """Write, test, reload and confirm ``weight``; a no-op when the file already applies it."""
        weight = check_weight(weight)
        previous = self._read()
        applied = render(self.config, weight, state="applied")
        if previous == applied:
            return
        if not self.path.parent.is_dir():
            raise RouterError(f"the directory of include_file {self.path} does not exist; create it")
        self._write(render(self.config, weight, state="pending"))
        shown = format_weight(weight)
        ok, message = self._nginx("-t", "-q")
        if not ok:
            self._restore(previous)
            raise RouterError(
                f"nginx rejected {self.path} at weight {shown}, so the previous file was put back: {message}"
            )
        ok, message = self._nginx("-s", "reload")
        if not ok:
            self._restore(previous)
            raise RouterError(
                f"nginx could not be reloaded for weight {shown}, so the previous {self.path} was put back: {message}"
            )
        self._write(applied)
        if self._read() != applied:
            raise RouterError(f"{self.path} did not read back as weight {shown} after the reload; set it again")

    def _restore(self, previous: str | None) -> None:
        # The error being raised already says what failed; a file left pending stays unconfirmed.
        with contextlib.suppress(RouterError, OSError):
            self._write(previous)


def _nginx_message(output: str) -> str:
    """nginx's own words, without the noise: the [emerg]/[error] lines, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    important = [line for line in lines if re.search(r"\[(emerg|alert|crit|error)\]", line)]
    chosen = important or lines[-1:]
    return "; ".join(chosen)[-1000:] or "no output"
