"""``shiprail demo``: the main job, on embedded defaults, in a throwaway directory.

It runs the real CLI in-process on a project from ``shiprail init`` and a SQLite store, and
checks that every step ends the way it should: a plan validated, a bad plan refused with every
problem named, a release gated on approvals, an accountable override that opens a post-mortem,
a frozen contract refusing an edit, and the audit chain catching a row altered behind its back.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console

from shiprail.cli.init import write_project

PLAN = "releases/checkout-2.4.0.yaml"
RID = "checkout-2.4.0"


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
        text = out.getvalue() + err.getvalue()
        self.console.print(text.rstrip(), markup=False, highlight=False, soft_wrap=True)
        mark = "[green]✓[/green]" if code == expect else "[red]✗[/red]"
        self.console.print(f"{mark} exit {code} (expected {expect})", style="dim")
        if code != expect:
            self.failures.append(f"`shiprail {' '.join(args)}` exited {code}, expected {expect}")
        return text


def _quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


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


def run_demo(directory: Path | None = None, console: Console | None = None) -> int:
    """Run the walkthrough; 0 when every step ended as expected, 1 otherwise."""
    console = console or Console(highlight=False)
    with contextlib.ExitStack() as stack:
        root = directory or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shiprail-demo-")))
        root.mkdir(parents=True, exist_ok=True)
        stack.enter_context(_chdir(root))
        env = {k: os.environ.pop(k) for k in ("SHIPRAIL_DATABASE_URL", "SHIPRAIL_USER") if k in os.environ}
        stack.callback(os.environ.update, env)
        demo = Demo(console)
        _walkthrough(demo, root)
        db = root / ".shiprail" / "shiprail.db"
        console.print()
        if demo.failures:
            for failure in demo.failures:
                console.print(f"[red]demo failed:[/red] {failure}")
            return 1
        console.print("[bold green]demo complete:[/bold green] every step ended as expected.")
        if directory is not None:
            console.print(f"The project is in {root} and its store in {db};")
            console.print(f"look around with `cd {root} && shiprail release show {RID}`.")
        else:
            console.print("It ran in a throwaway directory; keep one with `shiprail demo --dir DIR`.")
        return 0


def _walkthrough(demo: Demo, root: Path) -> None:
    write_project(root)
    demo.say("A project: the policy, a service, a release plan (shiprail init)")
    demo.run(["plan", "validate", PLAN], expect=0)

    demo.say("A plan that breaks the rules is refused, every problem named at once")
    bad = (root / PLAN).read_text()
    bad = bad.replace("above: 0.01          # more than 1% of requests fail", "above: if it breaks")
    bad = bad.replace("- {weight: 10, bake: 2h}\n", "")
    bad = bad.replace("on_call: bob", "on_call: bobb")
    bad = bad.replace("notify: [status-page]", "notify: [status-pag]")
    (root / "releases" / "bad.yaml").write_text(bad)
    demo.run(["plan", "validate", "releases/bad.yaml"], expect=2)

    demo.say("The release is recorded; it needs two approvals (payments makes it high risk)")
    demo.run(["release", "create", PLAN, "--as", "alice"], expect=0)
    demo.run(["release", "approve", RID, "--as", "alice"], expect=1)
    demo.run(["release", "approve", RID, "--as", "bob"], expect=0)
    demo.run(["release", "stage", RID, "--as", "alice"], expect=1)

    demo.say("Only an executive who does not own the release may pass a failed gate, with a reason")
    demo.run(["release", "override", RID, "--as", "bob", "--reason", "ship it"], expect=1)
    demo.run(
        [
            "release",
            "override",
            RID,
            "--as",
            "dana",
            "--reason",
            "Carol is out sick; Bob reviewed the whole diff twice",
        ],
        expect=0,
    )

    demo.say("Once in Stage the contract is frozen: an edited plan is refused")
    path = root / PLAN
    path.write_text(path.read_text().replace("above: 3             # more", "above: 30            # more"))
    demo.run(["release", "update", RID, PLAN, "--as", "alice"], expect=1)
    demo.run(["release", "show", RID], expect=0)

    demo.say("Every decision is in a hash-chained audit trail")
    demo.run(["audit", "export", "--out", "audit.jsonl", "--checkpoint", "checkpoint.json"], expect=0)
    demo.run(["audit", "verify"], expect=0)
    demo.say("Someone rewrites who approved, straight in the database file…")
    _tamper(root / ".shiprail" / "shiprail.db", seq=2)
    demo.run(["audit", "verify"], expect=1)
