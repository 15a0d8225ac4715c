"""How long ``shiprail serve`` takes to exit after SIGTERM, and what the requests under way get.

Against real ``shiprail serve`` processes on 127.0.0.1, from the repository root::

    .venv/bin/python -m bench.serve_shutdown [--runs 5] [--hold 3] [--flags "--shutdown-grace 1s"]

Three cases, ``--runs`` serves each, every serve started anew in a fresh project:

- *idle*: serve with its controller (SQLite), settled after its start, nothing under way;
- *long-poll*: the same, holding one SDK long-poll (``wait=60``) at SIGTERM;
- *held write*: ``--no-controller`` on PostgreSQL (``SHIPRAIL_TEST_PG_URL``, a schema of its own):
  the bench locks the ``signals`` table, an SDK posts a signal (it waits for the lock), SIGTERM,
  and the lock goes ``--hold`` seconds later, or once serve has exited.

It prints, per case, the median, least and most seconds from SIGTERM to the process's exit, the
answers the requests got, and whether serve's log held a traceback. ``--flags`` are added to every
serve (``--shutdown-grace 1s`` shows a write cut off past the grace).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa
from tests.integration.cli.test_serve_cli import AUTH
from tests.integration.cli.test_serve_cli import start as start_serve
from tests.support.stores import pg_schema

from shiprail.cli.init import write_project

PG_URL = os.environ.get("SHIPRAIL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the write is held after SIGTERM")
    parser.add_argument("--flags", default="", help="added to every serve, e.g. '--shutdown-grace 1s'")
    parser.add_argument("--cases", default="idle,long-poll,held write")
    args = parser.parse_args()
    flags = shlex.split(args.flags)
    print(f"{'case':<12} {'median s':>9} {'min':>6} {'max':>6}  answers  tracebacks")
    for case in args.cases.split(","):
        runs = [one_run(case, flags, args.hold) for _ in range(args.runs)]
        took = [t for t, _, _ in runs]
        answers = Counter(a for _, got, _ in runs for a in got)
        tracebacks = sum(tb for _, _, tb in runs)
        shown = ", ".join(f"{a}×{n}" for a, n in sorted(answers.items())) or "-"
        print(
            f"{case:<12} {statistics.median(took):>9.2f} {min(took):>6.2f} {max(took):>6.2f}  {shown}  "
            f"{tracebacks}/{len(runs)}"
        )


if __name__ == "__main__":
    main()
