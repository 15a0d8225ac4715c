"""``shiprail demo``: the main job, on embedded defaults, in a throwaway directory.

On a fresh machine with only the package installed it starts ``shiprail serve`` (API + controller,
SQLite store) on a free loopback port, the sample shop (real HTTP, the real SDK, one code path per
version) and a load generator, then runs two complete releases with second-long bakes: a good one
that goes 1 → 10 → 50 → 100 % → verified → complete, and a bad one (slow, failing code path) that
its rollback contract rolls back on its own. It ends with both releases' logs, the audit check and
where everything is. Exit 0 only when both releases end the way they should.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console

from shiprail import defaults
from shiprail.cli.output import CliConsole
from shiprail.demo import project
from shiprail.demo.load import Load
from shiprail.demo.receiver import Receiver

# Simulated traffic: requests per second over this many distinct users.
LOAD_RATE = 150
LOAD_USERS = 5000
# The longest one demo release may take before the demo gives up on it.
RELEASE_TIMEOUT_SECONDS = 90
# The longest a helper process may take to say where it listens.
START_TIMEOUT_SECONDS = 30
# The longest the notifier inside serve may take to deliver the releases' events.
NOTIFY_TIMEOUT_SECONDS = 15
# The copy of the store the demo tampers with (beside the store, in the state directory).
TAMPERED_FILE = "tampered.db"
# The exit code of a command stopped by Ctrl-C (128 + SIGINT), as typer reports it.
INTERRUPTED = 130
# What the demo's receiver must hear: each release's start and its ending.
EXPECTED_NOTIFICATIONS = {
    (f"{project.SERVICE}-{project.GOOD}", "started"),
    (f"{project.SERVICE}-{project.GOOD}", "verifying"),
    (f"{project.SERVICE}-{project.GOOD}", "completed"),
    (f"{project.SERVICE}-{project.BAD}", "started"),
    (f"{project.SERVICE}-{project.BAD}", "rolled_back"),
}
RELEASES = {
    project.GOOD: ("complete", "A good change: 1 → 10 → 50 → 100 %, verified, complete"),
    project.BAD: ("rolled_back", "A bad change: its new code path is slow and fails; the contract rolls it back"),
}


def _await_notifications(demo: Demo, receiver: Receiver) -> None:
    """Wait (bounded) for the notifier in serve to deliver what the communication plan promises."""
    deadline = time.monotonic() + NOTIFY_TIMEOUT_SECONDS
    while not set(receiver.events()) >= EXPECTED_NOTIFICATIONS and time.monotonic() < deadline:
        time.sleep(0.2)
    for (_, event), text in zip(receiver.events(), receiver.headlines(), strict=True):
        demo.console.print(f"  webhook {event:<12} {text}  (signature verified)")
    missing = sorted(EXPECTED_NOTIFICATIONS - set(receiver.events()))
    mark = "[green]✓[/green]" if not missing and not receiver.refused else "[red]✗[/red]"
    demo.console.print(f"{mark} {len(receiver.events())} signed notifications received, {receiver.refused} refused")
    if missing or receiver.refused:
        demo.failures.append(f"notifications missing {missing} or refused ({receiver.refused})")


def _status_pages(demo: Demo, url: str, token: str) -> None:
    """Read both releases back through serve's status API and pages, as a dashboard and a person would."""
    import httpx

    try:
        rows = httpx.get(f"{url}/api/v1/releases", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        pages = {
            version: httpx.get(f"{url}/releases/{release_id(version)}", auth=("demo", token), timeout=10)
            for version in RELEASES
        }
    except (httpx.HTTPError, ValueError) as exc:
        demo.failures.append(f"serve's status pages did not answer: {exc}")
        return
    states = {row["id"]: row["status"] for row in rows}
    for version, (expected, _title) in RELEASES.items():
        rid = release_id(version)
        page = pages[version]
        ok = states.get(rid) == expected and page.status_code == 200 and f"s-{expected}" in page.text
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        demo.console.print(f"{mark} {url}/releases/{rid}: {states.get(rid, 'not listed')} (expected {expected})")
        if not ok:
            demo.failures.append(f"serve's status page of {rid} does not show it {expected}")


def release_id(version: str) -> str:
    return f"{project.SERVICE}-{version}"


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class Demo:
    """Runs CLI commands, shows them like a terminal session, and checks their exit codes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.failures: list[str] = []

    def say(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]## {text}[/bold cyan]")

    def run(self, args: list[str], expect: int) -> str:
        from shiprail.cli.main import main

        self.console.print(f"[bold]$ shiprail {' '.join(_quote(a) for a in args)}[/bold]")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
        if code == INTERRUPTED:
            # Ctrl-C landed inside the command, which (as typer does) turned it into exit 130: it
            # is the person stopping the demo, not a step that failed. Without this the demo
            # carried on for half a minute and then reported the step as "failed".
            raise KeyboardInterrupt
        text = out.getvalue() + err.getvalue()
        self.console.print(text.rstrip(), markup=False, highlight=False, soft_wrap=True)
        mark = "[green]✓[/green]" if code == expect else "[red]✗[/red]"
        self.console.print(f"{mark} exit {code} (expected {expect})", style="dim")
        if code != expect:
            self.failures.append(f"`shiprail {' '.join(args)}` exited {code}, expected {expect}")
        return text


def _quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


def _copy_store(db: Path, to: Path) -> None:
    """A consistent copy of a SQLite store, its write-ahead log included (a file copy may miss it)."""
    to.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(db)) as source, contextlib.closing(sqlite3.connect(to)) as copy:
        source.backup(copy)


def _tamper(db: Path, seq: int) -> None:
    """What an attacker with file access does: drop the guard, rewrite a row, put the guard back."""
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        ddl = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'audit_events_no_update'")).scalar_one()
        conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        conn.execute(
            sa.text("UPDATE audit_events SET actor = 'carol' WHERE seq = :seq"),
            {"seq": seq},
        )
        conn.execute(sa.text(ddl))
    engine.dispose()


class Process:
    """A helper process of the demo, its output in a log file, stopped by PID."""

    def __init__(self, name: str, args: list[str], *, cwd: Path, log: Path, env: dict[str, str], ready: str) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = self._wait_for(re.compile(ready))

    def _wait_for(self, pattern: re.Pattern[str]) -> str:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        tail = self.log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{self.name} did not start (see {self.log}):\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def run_demo(directory: Path | None = None, console: Console | None = None) -> int:
    """Run the main job; 0 when both releases ended as expected (and every command too), 1 otherwise."""
    # Piped or in a CI log, a plain Console folds every long line at 80 columns ("…weight 0 /
    # (signature verified)"); CliConsole writes each one whole there, and word-wraps on a terminal.
    console = console or CliConsole(highlight=False)
    with contextlib.ExitStack() as stack:
        root = directory or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shiprail-demo-")))
        root = root.resolve()  # the demo works from inside it: a relative --dir would move with it
        root.mkdir(parents=True, exist_ok=True)
        stack.enter_context(_chdir(root))
        env = {k: os.environ.pop(k) for k in ("SHIPRAIL_DATABASE_URL", "SHIPRAIL_USER") if k in os.environ}
        stack.callback(os.environ.update, env)
        demo = Demo(console)
        try:
            _releases(demo, root, stack)
        except RuntimeError as exc:
            demo.failures.append(str(exc))
        db = root / defaults.STATE_DIR / defaults.SQLITE_FILE
        console.print()
        if demo.failures:
            for failure in demo.failures:
                console.print(f"[red]demo failed:[/red] {failure}")
            return 1
        console.print("[bold green]demo complete:[/bold green] every step ended as expected.")
        if directory is not None:
            console.print(
                f"The project is in {root}, its store in {db} (SQLite; logs of serve and the shop beside it)."
            )
            console.print(
                f"Open it with `cd {root} && shiprail release show {release_id(project.BAD)}`, "
                f"`shiprail audit verify`, or `sqlite3 {db}`."
            )
        else:
            console.print(f"The store was {db} (SQLite), in a throwaway directory now removed;")
            console.print(
                "keep the project and its store with `shiprail demo --dir DIR`, then `shiprail release show ID` there."
            )
        return 0


def _releases(demo: Demo, root: Path, stack: contextlib.ExitStack) -> None:
    from shiprail.cli.context import releases
    from shiprail.cli.watch import follow

    secret = secrets.token_hex(16)
    receiver = Receiver(secret).start()
    stack.callback(receiver.stop)
    plans = project.write(root, receiver.url)
    demo.say("A project: the policy, the shop service on the flag router, two release plans")
    for plan in plans.values():
        demo.run(["plan", "validate", str(plan.relative_to(root))], expect=0)

    key = f"demo-{secrets.token_hex(8)}"
    token = secrets.token_hex(8)
    env = {
        **os.environ,
        defaults.SDK_KEY_ENV: key,
        project.WEBHOOK_SECRET_ENV: secret,
        defaults.STATUS_TOKEN_ENV: token,
        "PYTHONUNBUFFERED": "1",
    }
    state = root / defaults.STATE_DIR
    demo.say("shiprail serve (API + controller, SQLite store), the sample shop with the SDK, simulated users")
    serve = Process(
        "shiprail serve",
        [sys.executable, "-m", "shiprail", "serve", "--port", "0", "--quiet"],
        cwd=root,
        log=state / "serve.log",
        env=env,
        ready=r"shiprail serve: (http://\S+)",
    )
    stack.callback(serve.stop)
    shop = Process(
        "the sample shop",
        [
            sys.executable,
            "-m",
            "shiprail.demo.shop",
            "--serve",
            serve.url,
            "--service",
            project.SERVICE,
            "--stable",
            project.STABLE,
            "--bad",
            project.BAD,
        ],
        cwd=root,
        log=state / "shop.log",
        env=env,
        ready=r"listening on (http://\S+)",
    )
    stack.callback(shop.stop)
    load = Load(shop.url, rate=LOAD_RATE, users=LOAD_USERS).start()
    stack.callback(load.stop)
    demo.console.print(
        f"serve {serve.url} (pid {serve.proc.pid}), shop {shop.url} (pid {shop.proc.pid}), "
        f"{LOAD_RATE} requests/s from {LOAD_USERS} users"
    )

    svc = releases(None)
    for version, (expected, title) in RELEASES.items():
        rid = release_id(version)
        demo.say(title)
        demo.run(["release", "create", str(plans[version].relative_to(root)), "--as", "alice"], expect=0)
        demo.run(["release", "approve", rid, "--as", "bob"], expect=0)
        demo.run(["release", "stage", rid, "--as", "alice"], expect=0)
        before = load.snapshot()
        demo.run(["release", "start", rid, "--as", "alice"], expect=0)
        view = follow(svc, rid, demo.console, timeout_s=RELEASE_TIMEOUT_SECONDS)
        served = load.snapshot() - before
        mix = ", ".join(f"{v} {code}: {n}" for (v, code), n in sorted(served.items()))
        demo.console.print(f"traffic during the release: {mix}", style="dim")
        mark = "[green]✓[/green]" if view.status == expected else "[red]✗[/red]"
        demo.console.print(f"{mark} {rid} ended {view.status} (expected {expected})")
        if view.status != expected:
            demo.failures.append(f"{rid} ended {view.status}, expected {expected}")

    demo.say("What happened, release by release (the rollback log says what fired and how long the revert took)")
    for version in RELEASES:
        demo.run(["release", "show", release_id(version)], expect=0)

    demo.say("The same, as the team reads it: serve's status pages and release API")
    _status_pages(demo, serve.url, token)

    demo.say("The communication plan: signed webhooks, each signature checked by the receiver")
    _await_notifications(demo, receiver)

    demo.say("Every decision is in a hash-chained audit trail")
    demo.run(["audit", "verify"], expect=0)
    load.stop()
    shop.stop()
    serve.stop()
    # On a copy: the project the demo leaves (--dir) keeps an intact store to export and verify.
    demo.say("Someone rewrites who approved, straight in (a copy of) the database file…")
    tampered = state / TAMPERED_FILE
    _copy_store(state / defaults.SQLITE_FILE, tampered)
    _tamper(tampered, seq=2)
    demo.run(["audit", "verify", "--db", f"sqlite:///{tampered.relative_to(root)}"], expect=1)
