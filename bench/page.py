"""What every benchmark program shares: the machine it ran on, Markdown tables, and its section of docs/benchmarks.md.

Each program owns one section of the page, between its ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->`` markers, and rewrites only that.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import textwrap
from collections.abc import Sequence
from pathlib import Path

# Units kept on the line of their number when prose is re-wrapped ("10 %", "1 s", "812 ns").
_UNITS = re.compile(r"(\d) (%|s\b|ms\b|ns\b|µs\b|min\b|point\b)")


def command_version(cmd: Sequence[str]) -> str:
    """The first line a command prints (its version, usually), or why it could not be run."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine(**extra: str) -> dict[str, str]:
    """Cores, CPU model, kernel and Python of this machine, plus ``extra`` (tool versions)."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": command_version(["nproc"]),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        **extra,
    }


def page_options(ap: argparse.ArgumentParser, docs: Path) -> None:
    """The options every program that runs in processes and rewrites its section shares."""
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    ap.add_argument("--no-write", action="store_true", help=f"do not rewrite {docs}")
    ap.add_argument("--docs", type=Path, default=docs, help=argparse.SUPPRESS)


def docs_problem(path: Path) -> str | None:
    """Why the page at ``path`` could not be rewritten at the end of a run (checked before it starts), or None."""
    if path.is_dir():
        return f"--docs {path} is a directory, not the page to rewrite"
    if not path.parent.is_dir():
        return (
            f"{path.parent} does not exist, so {path} could not be rewritten: run this from the repository root, "
            "or give --docs or --no-write"
        )
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        return f"{path} is not writable: give --docs or --no-write"
    return None


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (``|`` inside a cell escaped)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def reflow(markdown: str, width: int = 100) -> str:
    """Prose paragraphs and list items re-wrapped at ``width``; tables, code, headings and markers as they are."""
    out: list[str] = []
    for block in markdown.split("\n\n"):
        first = block.lstrip("\n")
        if first.startswith(("|", "    ", "#", "<!--")):
            out.append(block)
            continue
        items: list[list[str]] = []
        for line in block.splitlines():
            if line.startswith("- ") or not items:
                items.append([line])
            else:
                items[-1].append(line)
        wrapped = []
        for item in items:
            # Numbers keep their units and "a - b" stays whole (no line may start with "- "): their
            # spaces are held by a placeholder while wrapping.
            text = _UNITS.sub("\\1\0\\2", " ".join(part.strip() for part in item))
            text = text.replace(" - ", "\0-\0")
            indent = "  " if text.startswith("- ") else ""
            filled = textwrap.fill(text, width, subsequent_indent=indent, break_long_words=False)
            wrapped.append(filled.replace("\0", " "))
        out.append("\n".join(wrapped))
    return "\n\n".join(out)


def replace_block(text: str, start: str, end: str, block: str) -> str | None:
    """``text`` with the block from ``start`` to ``end`` replaced by ``block``; None when it has none."""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _: block, text, count=1)


def write_section(section: str, start: str, end: str, path: Path) -> None:
    """Replace the page's section between ``start`` and ``end`` (or append it); the rest stays as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    updated = replace_block(text, start, end, section)
    if updated is None:
        updated = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(updated if updated.endswith("\n") else updated + "\n", encoding="utf-8")
