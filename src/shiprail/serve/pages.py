"""The status pages of ``shiprail serve``: the releases under way, and each release as its package reads.

Pure: views and records in, HTML out. A release's page is its live state (``shiprail.describe``,
as ``release show`` says it) over the sections of its release package (``shiprail.export.package``),
so the page and the package an auditor gets read the same. Jinja2 escapes every value; the
package's Markdown is rendered with raw HTML off, so nothing a person wrote (a summary, a reason,
an edited retrospective) can put markup or script on the page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from shiprail import defaults, describe
from shiprail.domain.states import TERMINAL, Status
from shiprail.export import history as h
from shiprail.export import package
from shiprail.export.record import ReleaseRecord
from shiprail.releases import ReleaseView

_ENV = Environment(loader=PackageLoader("shiprail.serve", "templates"), autoescape=select_autoescape(["html"]))
# CommonMark with GitHub's tables, as the package's Markdown is written; raw HTML in it is shown as
# text, and an image as a link: every reader's browser would fetch it from a host its writer chose.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")
# What a page lets the browser load: its own inline style, nothing else (the pages run no script).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADING = re.compile(r"^(#{1,5}) ", re.MULTILINE)
# An HTML comment in a retrospective (the guide at its top) is for its editors: hidden on the page too.
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)
# A link to another file of the package ("see [gates.md](gates.md)"): on the page, that file's section.
_PACKAGE_LINK = re.compile(r'href="([a-z]+)\.md"')


@dataclass(frozen=True)
class Section:
    """One part of a release's page: a file of its package, rendered."""

    id: str
    title: str
    html: Markup
    open: bool


def markdown(text: str) -> Markup:
    """A package file's Markdown as HTML, its title dropped and its headings one level down.

    The title and the line under it ("Release `x`. Times are UTC.") repeat what the page heads with.
    """
    parts = _COMMENT.sub("", text).split("\n\n")
    if parts and parts[0].startswith("# "):
        parts = parts[2:] if len(parts) > 1 and parts[1].startswith("Release ") else parts[1:]
    body = "\n\n".join(_shift_headings(p) for p in parts)
    return Markup(_PACKAGE_LINK.sub(r'href="#\1"', _MARKDOWN.render(body)))


def _shift_headings(block: str) -> str:
    # Code blocks are left alone: a line starting with "#" there is code, not a heading.
    return block if block.startswith("```") else _HEADING.sub(r"#\1 ", block)


def sections(record: ReleaseRecord, retrospective: str | None) -> list[Section]:
    """The package's files in the order people look for them, the ones that matter now open."""
    verifying = record.status == Status.VERIFYING.value or (
        record.status == Status.PAUSED.value and record.paused_from == Status.VERIFYING.value
    )
    out = []
    if retrospective is not None:
        out.append(Section("retrospective", "Retrospective", markdown(retrospective), True))
    if record.rollbacks:
        out.append(Section("rollback", "Rollback log", markdown(package.rollback_md(record)), True))
    out.append(Section("rollout", "Rollout", markdown(package.rollout_md(record)), True))
    if verifying or record.status == Status.COMPLETE.value:
        out.append(Section("verify", "Post-release validation", markdown(package.verify_md(record)), verifying))
    out += [
        Section("gates", "Gates, approvals, checks, overrides", markdown(package.gates_md(record)), True),
        Section("plan", "Plan and rollback contract", markdown(package.plan_md(record)), False),
        Section("audit", "Audit events", markdown(package.audit_md(record)), False),
    ]
    return out


def release_page(view: ReleaseView, record: ReleaseRecord, retrospective: str | None, now: datetime, root: str) -> str:
    """The page of one release: where it stands, the last analysis, then its package's sections."""
    outcome = h.outcome(record)
    ended = Status(view.status) in TERMINAL
    controller = view.controller
    return _ENV.get_template("release.html").render(
        title=f"{view.service} {view.version}",
        root=root,
        now=describe.utc(now),
        refresh=None if ended else defaults.STATUS_REFRESH_SECONDS,
        v=view,
        since=describe.utc(view.state_since),
        # The outcome once there is one: under way, the state and where it stands say it all.
        headline=outcome.headline[:1].upper() + outcome.headline[1:] if ended else None,
        detail=Markup(_MARKDOWN.renderInline(outcome.detail)),
        where=describe.position(view),
        trouble=_trouble(view),
        held=describe.held(view),
        paused=describe.paused(view),
        dry_runs=describe.dry_runs(view),
        on_call=view.on_call or view.resolved.on_call,
        controller=None
        if controller is None or ended
        else {"holder": controller["holder"], "until": describe.utc(controller["lease_until"])},
        analysis_at=describe.utc(view.last_analysis["at"]) if view.last_analysis and not ended else None,
        analysis=describe.analysis_rows(view),
        sections=sections(record, retrospective),
    )


def releases_page(
    live: Sequence[ReleaseView], ended: Sequence[ReleaseView], ended_total: int, now: datetime, root: str
) -> str:
    """The list: every release under way (``live``, full views: where each stands), then the latest that ended."""
    rows_live = [
        _row(v)
        | {
            "where": describe.position(v),
            "trouble": _trouble(v),
            "held": describe.held(v),
            "paused": describe.paused(v),
        }
        for v in live
    ]
    return _ENV.get_template("releases.html").render(
        title="releases",
        root=root,
        now=describe.utc(now),
        refresh=defaults.STATUS_REFRESH_SECONDS,
        live=rows_live,
        ended=[_row(v) for v in ended],
        ended_total=ended_total,
        more_ended=ended_total > len(ended),
    )


def _row(view: ReleaseView) -> dict[str, Any]:
    return {
        "id": view.id,
        "service": view.service,
        "baseline": view.baseline,
        "version": view.version,
        "status": view.status,
        "state": view.state,
        "owner": view.owner,
        "risk": view.risk,
        "since": describe.utc(view.state_since),
    }


def _trouble(view: ReleaseView) -> str | None:
    return describe.router_trouble(view.router_trouble) if view.router_trouble else None


def message_page(title: str, message: str, now: datetime, root: str, *, refresh: int | None = None) -> str:
    """A page saying one thing (a refusal, a release that is not there), in the pages' frame;
    ``refresh``: seconds after which it reloads itself (the store away for a moment)."""
    return _ENV.get_template("message.html").render(
        title=title, root=root, now=describe.utc(now), message=message, refresh=refresh
    )
