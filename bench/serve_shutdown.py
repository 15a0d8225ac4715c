"""How long ``shiprail serve`` takes to exit after SIGTERM, and what the requests under way get.

Against real ``shiprail serve`` processes on 127.0.0.1, from the repository root::

    .venv/bin/python -m bench.serve_shutdown [--runs 5] [--cases idle,long-poll,held write,cut off] [--no-write]

Four cases, ``--runs`` serves each, every serve started anew in a fresh project:

- *idle*: serve with its controller (SQLite), settled after its start, nothing under way;
- *long-poll*: the same, holding one SDK long-poll (``wait=60``) at SIGTERM;
- *held write*: ``--no-controller`` on PostgreSQL (``SHIPRAIL_TEST_PG_URL``, a schema of its own):
  the bench locks the ``signals`` table, an SDK posts a signal (it waits for the lock), SIGTERM,
  and the lock goes 3 s later, or once serve has exited;
- *cut off*: the same with ``--shutdown-grace 1s`` and the lock held 6 s.

It prints, per case, the median, least and most seconds from SIGTERM to the process's exit, the
answers the requests got, and whether serve's log held a traceback, and rewrites its section of
``docs/benchmarks.md`` (between ``<!-- bench:shutdown:start -->`` and ``<!-- bench:shutdown:end -->``);
``--no-write`` leaves the page alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from tests.integration.cli.test_serve_cli import AUTH
from tests.integration.cli.test_serve_cli import start as start_serve
from tests.support.stores import pg_schema

from bench.page import docs_problem, machine, md_table, reflow, write_section
from shiprail.cli.init import write_project

PG_URL = os.environ.get("SHIPRAIL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DOCS = Path("docs/benchmarks.md")
MARK_START, MARK_END = "<!-- bench:shutdown:start -->", "<!-- bench:shutdown:end -->"
RUNS = 5
HOLD_S = 3.0  # a write held past uvicorn's old 2 s grace, within the default --shutdown-grace
CUT_HOLD_S = 6.0  # well past the cut-off case's --shutdown-grace 1s


def start(project: Path, flags: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """The tests' ``shiprail serve`` (flag service ``shop``) in ``project``, once it answers: process and URL."""
    proc, url, _log = start_serve(project, *flags)
    httpx.get(f"{url}/healthz", timeout=30)
    time.sleep(1.0)  # its first controller pass over
    return proc, url


def in_thread(call: Callable[[], str], answers: list[str]) -> threading.Thread:
    def run() -> None:
        try:
            answers.append(call())
        except httpx.HTTPError as exc:
            answers.append(type(exc).__name__)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def one_run(case: str, flags: list[str], hold_s: float) -> tuple[float, list[str], bool]:
    """SIGTERM to exit (seconds), the answers, whether the log held a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        write_project(project)
        answers: list[str] = []
        threads: list[threading.Thread] = []
        if case != "held write":
            proc, url = start(project, flags)
            if case == "long-poll":
                etag = httpx.get(f"{url}/api/v1/sdk/shop/config", headers=AUTH).headers["etag"]
                headers = {**AUTH, "If-None-Match": etag}
                params = {"wait": 60}
                get = f"{url}/api/v1/sdk/shop/config"

                def long_poll() -> str:
                    return str(httpx.get(get, params=params, headers=headers, timeout=90).status_code)

                threads.append(in_thread(long_poll, answers))
                time.sleep(0.5)
            took = terminate(proc, lambda: None, 0.0)
        else:
            with pg_schema(PG_URL, "bench_") as schema:
                db = ["--db", f"{PG_URL}?options=-csearch_path%3D{schema}"]
                proc, url = start(project, ["--no-controller", *db, *flags])
                engine = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
                with engine.connect() as locker:
                    locker.execute(sa.text("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE"))
                    post = f"{url}/api/v1/sdk/shop/signals"
                    headers = {**AUTH, "Idempotency-Key": "b1"}
                    threads.append(
                        in_thread(
                            lambda: str(httpx.post(post, json={"name": "c"}, headers=headers, timeout=60).status_code),
                            answers,
                        )
                    )
                    time.sleep(0.5)
                    took = terminate(proc, locker.rollback, hold_s)
                engine.dispose()
        for thread in threads:
            thread.join(timeout=60)
        return took, answers, "Traceback" in (project / "serve.log").read_text()


def terminate(proc: subprocess.Popen[bytes], release: Callable[[], None], hold_s: float) -> float:
    """SIGTERM ``proc``, call ``release`` ``hold_s`` later (or once it has exited): the seconds it took to exit."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    while proc.poll() is None and time.monotonic() < started + hold_s:
        time.sleep(0.005)
    release()
    proc.wait(timeout=120)
    return time.monotonic() - started


# The four cases: (name, the case one_run plays, flags added, seconds the write is held after SIGTERM).
CASES: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("idle", "idle", (), 0.0),
    ("long-poll", "long-poll", (), 0.0),
    ("held write", "held write", (), HOLD_S),
    ("cut off", "held write", ("--shutdown-grace", "1s"), CUT_HOLD_S),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"serves per case (default {RUNS})")
    parser.add_argument("--cases", default=",".join(name for name, *_ in CASES), help="which cases, comma-separated")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOCS}")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if c[0] in args.cases.split(",")]
    if args.runs < 1 or not chosen:
        parser.error(f"--runs must be at least 1 and --cases some of {', '.join(n for n, *_ in CASES)}")
    if not args.no_write and (why := docs_problem(args.docs)):
        parser.error(why)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    headers = ["case", "median s", "least", "most", "answers", "tracebacks in the log"]
    rows: list[list[str]] = []
    for name, case, flags, hold_s in chosen:
        runs = [one_run(case, list(flags), hold_s) for _ in range(args.runs)]
        took = [t for t, _, _ in runs]
        answers = Counter(a for _, got, _ in runs for a in got)
        tracebacks = sum(tb for _, _, tb in runs)
        shown = ", ".join(f"{a}×{n}" for a, n in sorted(answers.items())) or "-"
        rows.append(
            [
                name,
                f"{statistics.median(took):.2f}",
                f"{min(took):.2f}",
                f"{max(took):.2f}",
                shown,
                f"{tracebacks}/{len(runs)}",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    info = machine()
    body = f"""{MARK_START}
## serve's shutdown (`bench/serve_shutdown.py`)

Seconds from SIGTERM to the exit of a real `shiprail serve` on 127.0.0.1, {args.runs} serves per case,
each in a fresh project: *idle* (its controller on SQLite, nothing under way); *long-poll* (one SDK
long-poll held at SIGTERM: answered at once, 304); *held write* (PostgreSQL, `--no-controller`: an SDK
signal waits on a lock of the `signals` table, which goes {HOLD_S:g} s after SIGTERM: it completes
within the default `--shutdown-grace` and gets its usual 201); *cut off* (the same with
`--shutdown-grace 1s` and the lock held {CUT_HOLD_S:g} s: past the grace the post is answered 503,
serve cancels its statement, and exits without waiting for the lock; nothing is stored, and a
retry with the same Idempotency-Key stores it once).

Reproduce from the repository root (PostgreSQL at `SHIPRAIL_TEST_PG_URL`, default
127.0.0.1:5432/test; this section is rewritten by the program):

    .venv/bin/python -m bench.serve_shutdown --runs {args.runs}

Measured {when} on {info["nproc"]} cores ({info["cpu"]}, {info["kernel"]}), Python {info["python"]}.

{md_table(headers, rows)}

{MARK_END}"""
    if not args.no_write:
        write_section(reflow(body), MARK_START, MARK_END, args.docs)
        print(f"rewrote the shutdown section of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
