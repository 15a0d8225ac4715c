"""nginx router: weighted upstream servers (or ``split_clients`` for sticky cohorts).

shiprail owns one include file per service. A change is written atomically (a temporary file in
the same directory, then ``os.replace``), checked with ``nginx -T`` (the previous file is put back
when nginx rejects it) and applied with ``nginx -s reload``. The reload is confirmed only once the
master has started workers on the new configuration and told the old ones to stop accepting:
``nginx -s reload`` merely signals the master, which re-reads the configuration afterwards and,
if that fails, logs it and keeps serving the old split. The file's first line records the weight
and whether its reload was confirmed, so ``current_weight`` reads the weight back from the file
alone. Routers writing into one directory (services sharing one nginx) take turns, under a lock
file there, so that no service's reload can load another's file halfway through its test.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from shiprail.routers.base import MAX_PORT, RouterError
from shiprail.schema.base import Duration, StrictModel, without_default

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SERVER = re.compile(r"[^\s;{}\"'#\\]+")
_BAD_IN_KEY = re.compile(r"[\"\\;\n\r]")
# An HTTP header name (RFC 9110's token, as nginx turns it into ``$http_…``: letters, digits, '-').
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")
# The value a header route matches: plain characters, so it needs no escaping in nginx or HAProxy.
_HEADER_VALUE = re.compile(r"[A-Za-z0-9._~-]{1,128}")

# The lock file, in the include file's directory, that routers sharing one nginx take turns on.
LOCK_NAME = ".shiprail-nginx.lock"
# How often a router looks at the master's workers while it waits for a reload to take effect.
RELOAD_POLL_SECONDS = 0.01
# ``nginx -T`` starts each file it dumps with this line.
_DUMPED_FILE = re.compile(r"^# configuration file .*:$")
# Words, quoted strings, braces and semicolons of one line of nginx configuration (comments cut first).
_TOKENS = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};\"']+")


def pid_directive(dump: str) -> str | None:
    """The path of the main context's ``pid`` directive in ``nginx -T``'s dump, or None.

    Only a ``pid`` outside every block counts (nginx allows it nowhere else): a ``map`` or
    ``split_clients`` entry whose key is ``pid`` is not one. Each dumped file starts outside any
    block, since a file included inside a block holds that block's contents.
    """
    depth = 0
    words: list[str] = []
    for line in dump.splitlines():
        if _DUMPED_FILE.match(line):
            depth, words = 0, []
            continue
        for token in _TOKENS.findall(_uncomment(line)):
            if token == "{":
                depth, words = depth + 1, []
            elif token == "}":
                depth, words = max(depth - 1, 0), []
            elif token == ";":
                if depth == 0 and len(words) == 2 and words[0] == "pid":
                    return words[1].strip("\"'")
                words = []
            else:
                words.append(token)
    return None


# A block defining an http-level variable: `map SRC $var {`, `split_clients "KEY" $var {`, `geo [SRC] $var {`.
_DEFINES = re.compile(r"^\s*(?:map|split_clients|geo)\s+(?:(?:\"[^\"]*\"|'[^']*'|[^\s{]+)\s+)?\$(\w+)\s*\{")


def defined_elsewhere(dump: str, own: Path, names: set[str]) -> list[tuple[str, str]]:
    """``(variable, file)`` for each of ``names`` that a file of ``nginx -T``'s dump other than ``own``
    defines too (a ``map``, ``split_clients`` or ``geo`` block).

    nginx accepts a variable defined twice without a word and uses one of the definitions: two
    services in one nginx whose names meet (upstreams ``a-b`` and ``a_b`` both make
    ``$shiprail_a_b``) would route one service's requests by the other's split.
    """
    found: list[tuple[str, str]] = []
    mine = own.resolve()
    current: str | None = None
    skip = True  # before the first file, and inside ``own``
    for line in dump.splitlines():
        if _DUMPED_FILE.match(line):
            current = line.removeprefix("# configuration file ").removesuffix(":")
            skip = Path(current).resolve() == mine
            continue
        if skip or current is None:
            continue
        match = _DEFINES.match(_uncomment(line))
        if match and match[1] in names:
            found.append((match[1], current))
    return found


def _uncomment(line: str) -> str:
    """``line`` without its comment: a ``#`` outside quotes that starts a word starts one (nginx reads
    the ``#`` inside ``/run/a#b.pid`` as part of the path)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;{}"):
            return line[:i]
    return line


# Where nginx looks for its files when it was built without --prefix (nginx's configure default).
DEFAULT_PREFIX = "/usr/local/nginx"
# A worker's process title; ``is shutting down`` once the master told it to stop accepting.
WORKER_TITLE = "nginx: worker process"
DRAINING_TITLE = "nginx: worker process is shutting down"

SCALE = 10_000
"""Weights are applied in hundredths of a percent: 0.01 % is the smallest canary share."""

MARKER_PREFIX = "# shiprail-router: nginx"
_MARKER = re.compile(
    r"^# shiprail-router: nginx upstream=(?P<upstream>\S+) weight=(?P<weight>[0-9.]+) "
    r"state=(?P<state>applied|pending)$"
)


class HeaderRoute(StrictModel):
    """Requests carrying ``header: value`` go to the canary whenever it has traffic.

    Testers (or a probe, or a synthetic check) reach the new version at every step, 1 % included,
    as Argo Rollouts' header routes and Flagger's A/B matches let them. At weight 0, before the
    rollout and after a rollback, the header sends nobody to the canary: a rollback takes every
    request off it.
    """

    header: str = Field(description="The request header, e.g. `X-Canary`.")
    value: str = Field(description="Its exact value (case-sensitive), e.g. `always`.")

    @field_validator("header")
    @classmethod
    def _header_is_a_name(cls, value: str) -> str:
        if not _HEADER.fullmatch(value):
            raise ValueError(f"a header name of letters, digits and '-' is required, got {value!r}")
        return value

    @field_validator("value")
    @classmethod
    def _value_is_plain(cls, value: str) -> str:
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"a value of letters, digits, '.', '_', '~' or '-' is required, got {value!r}")
        return value


class NginxRouterConfig(StrictModel):
    """Where the include file goes and what it routes between.

    shiprail writes ``include_file`` atomically, checks the whole configuration with ``nginx -T``,
    reloads nginx and waits for its new workers; the file is the single source of truth for the
    current weight.
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
    header_route: HeaderRoute | None = Field(
        None,
        description=(
            "Requests with this header and value go to the canary at every step (none at weight 0); "
            "proxy to `$shiprail_<upstream>` to use it."
        ),
    )
    nginx_binary: str = Field("nginx", description="The nginx executable, for `nginx -T` and reloads.")
    conf: str | None = Field(None, description="The main nginx configuration file, when not nginx's default.")
    prefix: str | None = Field(None, description="nginx's prefix directory (`nginx -p`), when not the compiled-in one.")
    error_log: str | None = Field(
        None,
        description="The error log nginx writes while testing and reloading (`nginx -e`), when not the default.",
    )
    timeout: Duration = Field(
        60,
        description="The longest `nginx -T` or `nginx -s reload` may run, and a reload may take to start new workers.",
    )

    @field_validator("include_file")
    @classmethod
    def _include_file_is_a_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty; give the path of the file shiprail writes the split into")
        return value

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

    @model_serializer(mode="wrap")
    def _omit_no_header_route(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The router is part of the resolved release whose hash approvals approve: a service that
        # never set header_route serialises as it did before the field existed, so its releases keep
        # their hash (and approvals) when `release update` resolves an unchanged plan again.
        return without_default(handler(self), "header_route", None)


# The port of a `host:port` or `[v6]:port` server address (a bare IPv6 address has no port here).
_PORT = re.compile(r"^(?:\[[^\]]*\]|[^:\[\]]+):(\d+)$")


def address_problems(config: NginxRouterConfig) -> list[tuple[str, str]]:
    """(key, why) for each of ``stable`` and ``canary`` whose port no TCP port can have.

    Checked when a service file is loaded: ``nginx -T`` would refuse the include file at the first
    step, and the rollout stall there, retrying a file nginx never takes.
    """
    out: list[tuple[str, str]] = []
    for key in ("stable", "canary"):
        match = _PORT.match(getattr(config, key))
        if match and not 1 <= int(match.group(1)) <= MAX_PORT:
            why = f"port {match.group(1)} is not a TCP port (1 to {MAX_PORT}); nginx would refuse the include file"
            out.append((key, f"{why} at the first step"))
    return out


def check_weight(weight: float) -> float:
    """The weight as applied: a percentage between 0 and 100, in hundredths; else ``RouterError``."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise RouterError(f"a canary weight must be a number between 0 and 100, got {weight!r}")
    if not 0 <= weight <= 100:
        raise RouterError(f"a canary weight must be between 0 and 100, got {weight:g}")
    applied = round(weight * 100) / 100
    # Rounded to 0 or 100, a canary step would leave one version's server out of the file: a step
    # of 0.001 would send the canary nothing (and read back as applied, within the controller's
    # tolerance), one of 99.999 everyone. Refused, so `plan validate` names the step instead.
    if applied == 0 < weight:
        raise RouterError(f"nginx weights go in steps of 0.01%, so {weight:g} would send the canary no traffic")
    if applied == 100 > weight:
        raise RouterError(f"nginx weights go in steps of 0.01%, so {weight:g} would send the stable version none")
    return applied


def format_weight(weight: float) -> str:
    """``10``, ``0.5``, ``12.25``: no trailing zeros, no exponent."""
    text = f"{weight:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def variable_name(upstream: str, kind: str = "") -> str:
    """The nginx variable set to the chosen upstream's name (``split_clients``' or a header route's map's).

    ``kind`` names another variable of the same upstream: ``cohort``, the one ``split_clients``
    sets when a header route's map decides.
    """
    return "shiprail_" + (f"{kind}_" if kind else "") + re.sub(r"[^A-Za-z0-9_]", "_", upstream)


def variables_of(config: NginxRouterConfig) -> set[str]:
    """The nginx variables the include file defines (none in `weighted` mode without a header route)."""
    if config.mode == "weighted" and config.header_route is None:
        return set()
    names = {variable_name(config.upstream)}
    if config.mode == "split_clients" and config.header_route is not None:
        names.add(variable_name(config.upstream, "cohort"))
    return names


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
    route = config.header_route
    canary_name = f"{config.upstream}_canary"
    # What the requests without the header get: the weighted upstream, or the cohort split_clients chose.
    split = config.upstream
    if config.mode == "weighted":
        stable_weight, canary_weight = server_weights(weight)
        lines.append(f"upstream {config.upstream} {{")
        if stable_weight:
            lines.append(f"    server {config.stable} weight={stable_weight};  # stable")
        if canary_weight:
            lines.append(f"    server {config.canary} weight={canary_weight};  # canary")
        lines.append("}")
        if route is not None and weight > 0:
            lines += [f"upstream {canary_name} {{", f"    server {config.canary};", "}"]
    else:
        stable_name = f"{config.upstream}_stable"
        # With a header route the cohort goes to a variable of its own, and the map below decides.
        cohort = variable_name(config.upstream) if route is None else variable_name(config.upstream, "cohort")
        split = f"${cohort}"
        lines += [
            f"upstream {stable_name} {{",
            f"    server {config.stable};",
            "}",
            f"upstream {canary_name} {{",
            f"    server {config.canary};",
            "}",
            # Stable owns the start of the hash range, so an empty key (hash 0) always goes to stable,
            # and the canary's cohort only grows as its weight does.
            f'split_clients "{config.key}" ${cohort} {{',
        ]
        if weight <= 0:
            lines.append(f"    * {stable_name};")
        elif weight >= 100:
            lines.append(f"    * {canary_name};")
        else:
            lines.append(f"    {format_weight(100 - weight)}% {stable_name};")
            lines.append(f"    * {canary_name};")
        lines.append("}")
    if route is not None:
        header_variable = "$http_" + route.header.lower().replace("-", "_")
        lines += [f"map {header_variable} ${variable_name(config.upstream)} {{", f"    default {split};"]
        if weight > 0:
            # A regular expression, as nginx matches plain strings in a map ignoring their case.
            lines.append(f'    "~^{re.escape(route.value)}$" {canary_name};')
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
        self._build: str | None = None  # `nginx -V`'s output, once asked

    # A call killed with its controller leaves nothing running that writes the include file: the
    # lock goes with the process, and an `nginx -s reload` it had sent only makes nginx read the
    # file as it is (a `pending` file reads as unconfirmed, so the next holder sets it again).
    calls_end_with_caller = True

    @property
    def call_timeout_s(self) -> float:
        """The longest one call may take: ``set_weight`` waits for the lock, runs ``nginx -T`` and
        ``nginx -s reload`` and waits for the new workers, each for at most ``timeout``."""
        return 4 * float(self.config.timeout)

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

    @property
    def real_path(self) -> Path:
        """The file nginx reads: ``include_file`` with its symlinks resolved.

        Renaming over a symlink would replace the link, not the file it points to: nginx, which
        includes the target, would keep its old split while the link said the new weight.
        """
        return Path(os.path.realpath(self.path))

    def _write(self, text: str | None) -> None:
        """Replace the include file atomically with ``text`` (or remove it for ``None``)."""
        target = self.real_path
        if text is None:
            target.unlink(missing_ok=True)
            return
        directory = target.parent
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise RouterError(f"cannot write into {directory}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, target)
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

    def _nginx(self, *args: str) -> tuple[bool, str, str | None]:
        """Run nginx with ``args``: (exited 0, nginx's own words on what went wrong, its standard output).

        The output is None when nginx did not run at all (not found, could not start, timed out):
        then nothing was tested, let alone rejected.
        """
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
            return False, f"{self.config.nginx_binary} was not found", None
        except subprocess.TimeoutExpired:
            return False, f"`{' '.join(command)}` ran longer than {self.config.timeout}s", None
        except OSError as exc:
            return False, f"`{' '.join(command)}` could not run: {exc.strerror or exc}", None
        # nginx speaks on stderr; the standard output is `nginx -T`'s dump of the configuration.
        return done.returncode == 0, _nginx_message(done.stderr or done.stdout), done.stdout

    def set_weight(self, weight: float) -> None:
        """Write, test, reload and confirm ``weight``; a no-op when the file already applies it."""
        weight = check_weight(weight)
        applied = render(self.config, weight, state="applied")
        if self._read() == applied:
            return
        if not self.real_path.parent.is_dir():
            raise RouterError(f"the directory of include_file {self.path} does not exist; create it")
        with self._turn():
            previous = self._read()
            if previous == applied:
                return
            self._write(render(self.config, weight, state="pending"))
            shown = format_weight(weight)
            # -T tests the whole configuration as -t does, and dumps it: the dump names the pid file.
            ok, message, dump = self._nginx("-T", "-q")
            if dump is None:
                untested = f"nginx could not test {self.path} at weight {shown}, so the previous file was put back"
                raise self._put_back(previous, f"{untested}: {message}")
            if not ok:
                rejected = f"nginx rejected {self.path} at weight {shown}, so the previous file was put back"
                raise self._put_back(previous, f"{rejected}: {message}")
            clashes = defined_elsewhere(dump, self.real_path, variables_of(self.config))
            if clashes:
                variable, other = clashes[0]
                raise self._put_back(
                    previous,
                    f"${variable}, which {self.path} defines, is defined in {other} too, and nginx would route "
                    "by one of them without a word; rename one service's upstream, so the previous file was put back",
                )
            unreloaded = f"nginx could not be reloaded for weight {shown}, so the previous {self.path} was put back"
            try:
                master = self._master(dump)
                serving = workers(master)[0]
            except RouterError as exc:
                raise self._put_back(previous, f"{unreloaded}: {exc.message}") from exc
            ok, message, _ = self._nginx("-s", "reload")
            if not ok:
                raise self._put_back(previous, f"{unreloaded}: {message}")
            if not self._took_effect(master, serving):
                # The master kept its old workers: it failed to load the configuration (its error log
                # says why), or it is stuck. Put the file back so it describes what nginx serves.
                raise self._put_back(
                    previous,
                    f"nginx (master pid {master}) did not start workers on the configuration for weight {shown} "
                    f"within {self.config.timeout}s of the reload, so the previous {self.path} was put back; "
                    "its error log says why",
                )
            self._write(applied)
            if self._read() != applied:
                raise RouterError(f"{self.path} did not read back as weight {shown} after the reload; set it again")

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the lock of the include file's directory: one change at a time per nginx."""
        # The directory nginx reads the file from: a service whose include_file is a symlink takes
        # turns with the services whose files are really there.
        lock_path = self.real_path.parent / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RouterError(f"cannot open the lock file {lock_path}: {exc.strerror or exc}") from exc
        try:
            # A network deadline, like a subprocess timeout: it reads the monotonic clock.
            deadline = time.monotonic() + float(self.config.timeout)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RouterError(
                            f"another router held {lock_path} for over {self.config.timeout}s "
                            "(a change to the same nginx); set the weight again"
                        ) from None
                    time.sleep(RELOAD_POLL_SECONDS)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _master(self, dump: str) -> int:
        """The running master's pid, from the pid file the configuration names (as ``nginx -s`` reads it)."""
        named = pid_directive(dump)
        pid_path = Path(named) if named else Path(self._built_with("pid-path") or "logs/nginx.pid")
        if not pid_path.is_absolute():
            # nginx's own default prefix when it was built without --prefix (./configure && make install).
            prefix = self.config.prefix or self._built_with("prefix") or DEFAULT_PREFIX
            pid_path = Path(prefix) / pid_path
        try:
            text = pid_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RouterError(
                f"cannot read nginx's pid file {pid_path} (is nginx running?): {exc.strerror or exc}"
            ) from exc
        if not text.isdigit() or not Path(f"/proc/{text}").is_dir():
            what = f"names no running process ({text})" if text else "is empty"
            raise RouterError(f"nginx's pid file {pid_path} {what}; is nginx running?")
        return int(text)

    def _built_with(self, option: str) -> str | None:
        """A ``--option=value`` nginx was built with (``nginx -V``), e.g. its prefix or pid path."""
        if self._build is None:
            try:
                done = subprocess.run(
                    [self.config.nginx_binary, "-V"],
                    capture_output=True,
                    text=True,
                    timeout=self.config.timeout,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except (OSError, subprocess.TimeoutExpired):
                return None
            self._build = done.stderr + done.stdout
        found = re.search(rf"--{re.escape(option)}=(\S+)", self._build)
        return found[1] if found else None

    def _took_effect(self, master: int, before: set[int]) -> bool:
        """Whether the master now serves with new workers only (the ones from ``before`` draining)."""
        deadline = time.monotonic() + float(self.config.timeout)
        while True:
            serving, _ = workers(master)
            if serving and not serving & before:
                return True
            if time.monotonic() > deadline or not Path(f"/proc/{master}").is_dir():
                return False
            time.sleep(RELOAD_POLL_SECONDS)

    def _put_back(self, previous: str | None, why: str) -> RouterError:
        """Restore the previous file; the error to raise, saying ``why``."""
        self._restore(previous)
        return RouterError(why)

    def _restore(self, previous: str | None) -> None:
        # The error being raised already says what failed; a file left pending stays unconfirmed.
        with contextlib.suppress(RouterError, OSError):
            self._write(previous)


def workers(master: int) -> tuple[set[int], set[int]]:
    """``(serving, draining)``: the pids of an nginx master's workers, by their process titles (Linux /proc).

    A worker told to stop (after a reload) closes its listening sockets at once and retitles
    itself ``worker process is shutting down`` while its open requests finish.
    """
    serving: set[int] = set()
    draining: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) != master:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if title.startswith(DRAINING_TITLE):
            draining.add(int(entry.name))
        elif title.startswith(WORKER_TITLE):
            serving.add(int(entry.name))
    return serving, draining


def _nginx_message(output: str) -> str:
    """nginx's own words, without the noise: the [emerg]/[error] lines, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    important = [line for line in lines if re.search(r"\[(emerg|alert|crit|error)\]", line)]
    chosen = important or lines[-1:]
    return "; ".join(chosen)[-1000:] or "no output"
