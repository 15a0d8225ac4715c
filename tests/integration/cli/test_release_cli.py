"""``shiprail release show`` and ``release postmortem`` in a project from ``shiprail init``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_retro_export import _fresh_manifest

REASON = "Carol is out; see ticket [/link] and [bold]PAY-12[/bold]"
SUMMARY = "Holiday weeks need two approvers [red]on the rota[/red] [/]"


def test_show_prints_what_people_wrote_as_text_not_rich_markup(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0", "--as", "bob").code == 0
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
    assert shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", REASON).code == 0
    r = shiprail("release", "show", "checkout-2.4.0")
    assert (r.code, r.err) == (0, "")
    assert f"  override #1 by dana of approvals: {REASON}" in r.out.splitlines()
    assert "  post-mortem #1: open" in r.out.splitlines()

    assert shiprail("release", "postmortem", "checkout-2.4.0", "--done", "--as", "dana", "--summary", SUMMARY).code == 0
    r = shiprail("release", "show", "checkout-2.4.0")
    assert (r.code, r.err) == (0, "")
    assert f"  post-mortem #1: done — {SUMMARY}" in r.out.splitlines()
    r = shiprail("release", "postmortem", "checkout-2.4.0")
    assert (r.code, r.err) == (0, "")
    assert re.fullmatch(rf"#1 done opened \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ: {re.escape(SUMMARY)}\n", r.out), r.out


def test_show_says_when_it_lists_only_the_latest_gate_evaluations(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for _ in range(13):  # no approval yet: each attempt is a failed approvals gate
        assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1
    r = shiprail("release", "show", "checkout-2.4.0")
    assert (r.code, r.err) == (0, "")
    assert "gate evaluations (the last 12 of 13; --json or `shiprail release export` has all)" in r.out.splitlines()
    assert r.out.count("│ stage  │ approvals │ fail ") == 12
    assert len(shiprail("release", "show", "checkout-2.4.0", "--json").json()["gates"]) == 13


def test_no_one_acts_as_shiprails_own_actors(shiprail: Any) -> None:
    # The service layer trusts "shiprail:…" actors without a role check: typed at --as, they let
    # someone not in shiprail.yaml roll a release back, recorded as the controller's doing.
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0", "--as", "bob").code == 0
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
    assert shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", "x" * 20).code == 0
    events = len(shiprail("audit", "export").out.splitlines())
    for args in (
        ("release", "rollback", "checkout-2.4.0", "--reason", "contract fired"),
        ("release", "pause", "checkout-2.4.0"),
        ("release", "create", "releases/checkout-2.4.0.yaml"),
    ):
        r = shiprail(*args, "--as", "shiprail:controller")
        assert (r.code, r.out) == (2, "")
        assert r.err == (
            "error: --as shiprail:controller: names starting with 'shiprail:' are shiprail's own (the controller, "
            "the notifier); act as a person in shiprail.yaml with --as NAME or SHIPRAIL_USER\n"
        )
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["status"] == "staging"
    assert len(shiprail("audit", "export").out.splitlines()) == events
    assert [v["id"] for v in shiprail("release", "list", "--json").json()] == ["checkout-2.4.0"]


def test_signoff_of_an_item_given_in_superscript_digits_is_refused_in_one_sentence(shiprail: Any) -> None:
    # "²" is a digit to str.isdigit(), but int() refuses it: signoff stopped with a traceback.
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    r = shiprail("release", "signoff", "checkout-2.4.0", "²", "--as", "quinn")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "error: '²' is not an item of the QA checklist of checkout-2.4.0; give its number or text: "
        "1. Pay with a saved card; 2. Pay with a new card and save it; 3. A declined saved card shows the retry "
        "screen\n"
    )
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["signoffs"] == []


def test_create_refused_for_who_acts_starts_no_store(shiprail: Any, project: Path) -> None:
    # `release create` may start a store; it opened (and so created) it before checking --as, so a
    # refusal left an empty store behind, and at a mistyped --db a second store the next
    # command took for real.
    typo = project / "typo.db"
    for who, error in (
        ((), "error: say who is acting with --as NAME or SHIPRAIL_USER\n"),
        (
            ("--as", "nobody"),
            "error: 'nobody' is not a person in shiprail.yaml; add them under people, or act as someone who is "
            "with --as NAME or SHIPRAIL_USER\n",
        ),
    ):
        for db in ((), ("--db", f"sqlite:///{typo}")):
            r = shiprail("release", "create", "releases/checkout-2.4.0.yaml", *who, *db)
            assert (r.code, r.out, r.err) == (2, "", error)
    assert not (project / ".shiprail").exists()
    assert not typo.exists()


def test_no_override_or_postmortem_goes_unwritten_even_at_reason_min_chars_0(shiprail: Any, project: Path) -> None:
    # reason_min_chars: 0 let an executive pass a gate with a blank --reason, and close the
    # post-mortem with a blank --summary: an override nobody wrote down.
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text().replace("reason_min_chars: 15", "reason_min_chars: 0"))
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    events = shiprail("audit", "export").out
    r = shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", "  ")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "error: --reason must explain the override in at least 1 character; it goes into the audit trail and "
        "opens a post-mortem\n"
    )
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["status"] == "planned"
    assert shiprail("audit", "export").out == events

    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
    assert shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", "ok").code == 0
    r = shiprail("release", "postmortem", "checkout-2.4.0", "--done", "--as", "dana", "--summary", " ")
    assert (r.code, r.out, r.err) == (2, "", "error: --summary must say what was learned in at least 1 character\n")
    assert [p["status"] for p in shiprail("release", "postmortem", "checkout-2.4.0", "--json").json()] == ["open"]


def test_an_invisible_reason_or_summary_is_refused(shiprail: Any) -> None:
    # Twenty zero-width spaces are not whitespace to str.strip: they passed an override with a
    # reason nobody can read, and closed its post-mortem the same way.
    invisible = "\u200b" * 20
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    events = shiprail("audit", "export").out
    r = shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", invisible + "\u2060ok\x07")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "error: --reason must explain the override in at least 15 characters; it goes into the audit trail and "
        "opens a post-mortem\n"
    )
    assert shiprail("audit", "export").out == events
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
    assert shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", REASON).code == 0
    r = shiprail("release", "postmortem", "checkout-2.4.0", "--done", "--as", "dana", "--summary", invisible)
    assert (r.code, r.out, r.err) == (2, "", "error: --summary must say what was learned in at least 15 characters\n")
    assert [p["status"] for p in shiprail("release", "postmortem", "checkout-2.4.0", "--json").json()] == ["open"]


def test_an_owner_who_hands_the_release_over_still_may_not_approve_or_override_it(shiprail: Any, project: Path) -> None:
    # The owner may always update the plan: bob named alice the owner, then approved his own
    # release; dana did the same and passed its failed gates by override.
    plan = project / "releases" / "checkout-2.4.0.yaml"
    text = plan.read_text()
    plan.write_text(text.replace("owner: alice", "owner: bob"))
    assert shiprail("release", "create", str(plan), "--as", "bob").code == 0
    plan.write_text(text)  # owner: alice again
    assert shiprail("release", "update", "checkout-2.4.0", str(plan), "--as", "bob").code == 0
    r = shiprail("release", "approve", "checkout-2.4.0", "--as", "bob")
    assert (r.code, r.out) == (1, "")
    assert (
        r.err == "error: bob owned this release (its plan now names alice) and may not approve it; ask someone else\n"
    )
    assert shiprail("release", "approve", "checkout-2.4.0", "--as", "carol").code == 0

    plan.write_text(text.replace("owner: alice", "owner: dana").replace('version: "2.4.0"', 'version: "2.4.1"'))
    assert shiprail("release", "create", str(plan), "--as", "dana").code == 0
    plan.write_text(text.replace('version: "2.4.0"', 'version: "2.4.1"'))
    assert shiprail("release", "update", "checkout-2.4.1", str(plan), "--as", "dana").code == 0
    events = shiprail("audit", "export").out
    r = shiprail(
        "release", "override", "checkout-2.4.1", "--as", "dana", "--reason", "The CTO waived it for the outage"
    )
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: dana owned this release (its plan now names alice) and may not override its gates; ask someone else\n"
    )
    assert shiprail("audit", "export").out == events
    assert shiprail("release", "show", "checkout-2.4.1", "--json").json()["overrides"] == []


def test_handover_changes_who_is_on_call_and_release_show_says_so(shiprail: Any, project: Path) -> None:
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text().replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    r = shiprail("release", "handover", "checkout-2.4.0", "--to", "erin", "--as", "bob")
    assert (r.code, r.err) == (
        1,
        "error: release checkout-2.4.0 is planned: until it is staged, who is on call is its plan's verify.on_call "
        "(bob); change it there and run `shiprail release update checkout-2.4.0 releases/checkout-2.4.0.yaml`\n",
    )
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 0
    assert "  on call for Verify: bob" in shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    events = len(shiprail("audit", "export").out.splitlines())
    refused = [
        (
            ("--to", "carol", "--as", "bob"),
            2,
            "error: --to carol cannot be on call: that needs the role oncall in shiprail.yaml, and carol has "
            "approver; give carol the role, or hand over to someone who has it (erin)\n",
        ),
        (
            ("--to", "erin", "--as", "quinn"),
            1,
            "error: quinn may not hand over who is on call for checkout-2.4.0 (on "
            "call: bob, owner: alice): that needs the role executive in shiprail.yaml, and quinn has qa\n",
        ),
        (("--to", "erin"), 2, "error: say who is acting with --as NAME or SHIPRAIL_USER\n"),
    ]
    for args, code, err in refused:
        assert tuple(shiprail("release", "handover", "checkout-2.4.0", *args)) == (code, "", err)
    assert len(shiprail("audit", "export").out.splitlines()) == events  # nothing recorded
    r = shiprail("release", "handover", "checkout-2.4.0", "--to", "erin", "--as", "bob", "--reason", "[b]shift[/b]")
    assert tuple(r) == (0, "checkout-2.4.0: erin is now on call (was bob)\n", "")
    lines = shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    at = lines.index("  on call for Verify: erin")
    assert re.fullmatch(
        r"    handed over \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: bob → erin by bob: \[b\]shift\[/b\]", lines[at + 1]
    ), lines[at + 1]
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert (shown["on_call"], [(h["from"], h["to"], h["by"]) for h in shown["handovers"]]) == (
        "erin",
        [("bob", "erin", "bob")],
    )
    r = shiprail("release", "handover", "checkout-2.4.0", "--to", "bob", "--as", "dana", "--json")
    assert (r.code, r.json()["on_call"]) == (0, "bob")


def test_update_asks_approvals_again_when_the_service_file_changed_what_the_release_runs(
    shiprail: Any, project: Path
) -> None:
    plan = "releases/checkout-2.4.0.yaml"
    assert shiprail("release", "create", plan, "--as", "alice").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    r = shiprail("release", "update", "checkout-2.4.0", plan, "--as", "alice")  # nothing changed: they still count
    assert (r.code, r.err) == (0, "")
    assert "  approvals: 2 of 2 (bob, carol)" in r.out.splitlines()
    assert "approvals are asked again" not in r.out

    # The plan file is the same; the error_rate its contract watches now counts only 503s.
    service = project / "services" / "checkout.yaml"
    service.write_text(service.read_text().replace('code=~"5.."', 'code="503"'))
    r = shiprail("release", "update", "checkout-2.4.0", plan, "--as", "alice")
    assert (r.code, r.err) == (0, "")
    lines = r.out.splitlines()
    assert "  approvals: 0 of 2; not counting, of the release as it was before: bob, carol" in lines
    assert lines[-1] == (
        "approvals are asked again: the plan file is the same, but it resolves otherwise with services/checkout.yaml "
        "and shiprail.yaml as they are now (target changed); the approval(s) of bob, carol no longer count"
    )
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: release checkout-2.4.0 cannot stage: gate approvals failed (0 of 2 required approvals given); fix it "
        "and try again, or someone with the role executive may pass it with `shiprail release override "
        "checkout-2.4.0 --at planned --gate approvals --reason ...` (failed: approvals)\n"
    )
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(a["by"], a["current"]) for a in shown["approvals"]] == [("bob", False), ("carol", False)]
    assert all(a["resolved_hash"] != shown["resolved_hash"] for a in shown["approvals"])

    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.err) == (0, "")


def test_update_says_when_reverting_an_edit_brings_the_earlier_approvals_back(shiprail: Any, project: Path) -> None:
    plan = "releases/checkout-2.4.0.yaml"
    assert shiprail("release", "create", plan, "--as", "alice").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    service = project / "services" / "checkout.yaml"
    text = service.read_text()
    service.write_text(text.replace('code=~"5.."', 'code="503"'))
    assert shiprail("release", "update", "checkout-2.4.0", plan, "--as", "alice").code == 0
    service.write_text(text)
    r = shiprail("release", "update", "checkout-2.4.0", plan, "--as", "alice")
    assert (r.code, r.err) == (0, "")
    assert "  approvals: 2 of 2 (bob, carol)" in r.out.splitlines()
    assert r.out.splitlines()[-1] == (
        "the release changed: the plan file is the same, but it resolves otherwise with services/checkout.yaml and "
        "shiprail.yaml as they are now (target changed); the approval(s) of bob, carol, given when it last resolved "
        "as it does now, count again"
    )
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 0


def test_an_approval_stops_counting_when_its_approver_may_no_longer_approve(shiprail: Any, project: Path) -> None:
    """carol approved, then lost the approver role (or left shiprail.yaml): Stage went ahead on her approval.

    As the on_call gate judges the person on call against shiprail.yaml as it is when the release
    enters Verify, the approvals gate judges the approvers as they are when it enters Stage.
    """
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    policy = project / "shiprail.yaml"
    text = policy.read_text()
    policy.write_text(text.replace("carol: {roles: [approver]", "carol: {roles: [qa]"))
    lines = shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    assert (
        "  approvals: 1 of 2 (bob); not counting, no longer holding the role approver or executive in "
        "shiprail.yaml: carol"
    ) in lines
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(a["by"], a["current"], a["lapsed"]) for a in shown["approvals"]] == [
        ("bob", True, False),
        ("carol", True, True),
    ]
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: release checkout-2.4.0 cannot stage: gate approvals failed (1 of 2 required approvals given (carol "
        "no longer holds the role approver or executive in shiprail.yaml: their approval does not count)); fix it "
        "and try again, or someone with the role executive may pass it with `shiprail release override "
        "checkout-2.4.0 --at planned --gate approvals --reason ...` (failed: approvals)\n"
    )
    # Gone from shiprail.yaml altogether, the same.
    people = [line for line in text.splitlines(keepends=True) if not line.startswith("  carol:")]
    policy.write_text("".join(people))
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1
    # Given the role back, her approval counts again.
    policy.write_text(text)
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.err) == (0, "")
    assert "  approvals: 2 of 2 (bob, carol)" in r.out.splitlines()


def test_update_and_show_do_not_count_the_approval_of_a_former_owner_again(shiprail: Any, project: Path) -> None:
    """The plan named bob its owner and was put back: `release update` said bob's approval counts
    again and `release show` said 2 of 2, while `release stage` refused on 1 of 2 (bob owned it)."""
    plan = project / "releases" / "checkout-2.4.0.yaml"
    text = plan.read_text()
    assert shiprail("release", "create", str(plan), "--as", "alice").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    plan.write_text(text.replace("owner: alice", "owner: bob"))
    assert shiprail("release", "update", "checkout-2.4.0", str(plan), "--as", "alice").code == 0
    plan.write_text(text)
    r = shiprail("release", "update", "checkout-2.4.0", str(plan), "--as", "alice")
    assert (r.code, r.err) == (0, "")
    lines = r.out.splitlines()
    assert "  approvals: 1 of 2 (carol); not counting, by someone who owned the release: bob" in lines
    assert lines[-1] == (
        "the release changed: the plan changed; the approval(s) of carol, given when it last resolved as it does "
        "now, count again"
    )
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(a["by"], a["current"], a["by_owner"]) for a in shown["approvals"] if a["current"]] == [
        ("bob", True, True),
        ("carol", True, False),
    ]
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.err.split(";")[0]) == (
        1,
        "error: release checkout-2.4.0 cannot stage: gate approvals failed (1 of 2 required approvals given (bob "
        "owned this release: their approval does not count))",
    )


def _approved_and_carol_moved_to_qa(shiprail: Any, project: Path) -> tuple[Path, str]:
    """checkout-2.4.0 approved by bob, carol and dana, then carol moved to [qa]: shiprail.yaml and its text before."""
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for who in ("bob", "carol", "dana"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    policy = project / "shiprail.yaml"
    text = policy.read_text()
    policy.write_text(text.replace("carol: {roles: [approver]", "carol: {roles: [qa]"))
    return policy, text


def _package_counts(shiprail: Any, out: Path, section: str, key: str) -> tuple[list[str], list[Any]]:
    """checkout-2.4.0 exported into ``out`` (and verified): the ``counts`` column of gates.md's ``section``
    table and the ``counts`` of gates.json's ``key`` rows."""
    assert shiprail("release", "export", "checkout-2.4.0", "--out", str(out)).code == 0
    assert shiprail("release", "verify-package", str(out)).code == 0
    table = (out / "gates.md").read_text().split(f"## {section}\n\n")[1].split("\n\n")[0].splitlines()
    rows = json.loads((out / "gates.json").read_text())[key]
    return [row.split(" | ")[-1].rstrip(" |") for row in table[2:]], [x["counts"] for x in rows]


def _counted_anyway(shiprail: Any, out: Path, key: str, number: int, what: str) -> None:
    """Row ``number`` of gates.json's ``key``, which does not count, rewritten to count: the package no longer holds."""
    gates = json.loads((out / "gates.json").read_text())
    gates[key][number - 1]["counts"] = True
    (out / "gates.json").write_text(json.dumps(gates, indent=2) + "\n")
    _fresh_manifest(out)
    r = shiprail("release", "verify-package", str(out))
    assert r.code == 1
    assert (
        f"gates.json: the {what} with number {number} has counts true, but the audit events record counts false"
        in " ".join(r.err.split())
    )


def test_the_package_counts_an_approval_as_the_approvals_gate_does(
    shiprail: Any, project: Path, tmp_path: Path
) -> None:
    """carol approved and lost the approver role: `release show` and the Stage gate no longer counted
    her approval, while the package's gates.md said "counts: yes" (and serve's status page with it).

    Before Stage the package cannot tell (shiprail.yaml, which decides then, is not in it); after
    Stage it counts what the gate counted there, whatever shiprail.yaml says later; verify-package
    derives the same again from the package's own events and gate evaluations.
    """
    policy, text = _approved_and_carol_moved_to_qa(shiprail, project)

    def export(name: str) -> tuple[list[str], list[Any]]:
        return _package_counts(shiprail, tmp_path / name, "Approvals", "approvals")

    then = "still holds the role approver or executive in shiprail.yaml then"
    assert export("planned") == (
        [f"at Stage, if bob {then}", f"at Stage, if carol {then}", f"at Stage, if dana {then}"],
        [None, None, None],
    )
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 0
    gone = "no (not counted at Stage: carol no longer held the role approver or executive in shiprail.yaml)"
    assert export("staged") == (["yes", gone, "yes"], [True, False, True])
    # Given the role back after Stage: what Stage counted stays as it was.
    policy.write_text(text)
    assert export("later") == (["yes", gone, "yes"], [True, False, True])
    # Rewritten to count, the package no longer holds.
    _counted_anyway(shiprail, tmp_path / "later", "approvals", 2, "approval")


def test_show_counts_after_stage_the_approvals_stage_counted(shiprail: Any, project: Path) -> None:
    """carol lost the approver role, and Stage went through on bob's and dana's approvals: once staged,
    `release show` said "approvals: 3 of 2 (bob, carol, dana)", counting the approval the gate had not.

    It now shows what Stage counted, whatever shiprail.yaml says since: carol's role given back, or
    bob's taken away after Stage, changes nothing.
    """
    policy, text = _approved_and_carol_moved_to_qa(shiprail, project)
    r = shiprail("release", "stage", "checkout-2.4.0", "--as", "alice")
    assert (r.code, r.err) == (0, "")
    counted = (
        "  approvals: 2 of 2 (bob, dana); not counting, no longer holding the role approver or executive in "
        "shiprail.yaml: carol"
    )
    assert counted in r.out.splitlines()
    policy.write_text(text.replace("bob:   {roles: [approver, oncall]", "bob:   {roles: [oncall]"))
    assert counted in shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(a["by"], a["lapsed"]) for a in shown["approvals"]] == [("bob", False), ("carol", True), ("dana", False)]


def _staged_and_quinn_moved_to_approver(shiprail: Any, project: Path, *items: str) -> tuple[Path, str]:
    """checkout-2.4.0 with ``items`` signed off by quinn, staged, then quinn moved to [approver]:
    shiprail.yaml and its text before."""
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for item in items:
        assert shiprail("release", "signoff", "checkout-2.4.0", item, "--as", "quinn").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 0
    policy = project / "shiprail.yaml"
    text = policy.read_text()
    policy.write_text(text.replace("quinn: {roles: [qa]", "quinn: {roles: [approver]"))
    return policy, text


def test_the_package_counts_a_qa_sign_off_as_the_qa_gate_does(shiprail: Any, project: Path, tmp_path: Path) -> None:
    """quinn signed off two items and left QA: the qa gate of `release start` did not count them (an
    executive overrode it), while the package's gates.md listed them as signed, like any other.

    Before the rollout starts the package cannot tell (shiprail.yaml decides then); once started it
    counts what the gate counted, and verify-package derives the same again.
    """
    policy, text = _staged_and_quinn_moved_to_approver(shiprail, project, "1", "2")

    def export(name: str) -> tuple[list[str], list[Any]]:
        return _package_counts(shiprail, tmp_path / name, "QA sign-offs", "qa_signoffs")

    then = "at Start, if quinn still holds the role qa in shiprail.yaml then"
    assert export("staged") == ([then, then, ""], [None, None])
    assert shiprail("release", "start", "checkout-2.4.0", "--as", "alice").code == 1
    r = shiprail("release", "override", "checkout-2.4.0", "--at", "staging", "--as", "dana", "--reason", REASON)
    assert (r.code, r.err) == (0, "")
    gone = "no (not counted at Start: quinn no longer held the role qa in shiprail.yaml)"
    assert export("started") == ([gone, gone, ""], [False, False])
    policy.write_text(text)  # given the role back after Start: what Start counted stays
    assert export("later") == ([gone, gone, ""], [False, False])
    _counted_anyway(shiprail, tmp_path / "later", "qa_signoffs", 1, "QA sign-off")


def test_show_says_a_sign_off_by_someone_who_left_qa_does_not_count(shiprail: Any, project: Path) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "signoff", "checkout-2.4.0", "1", "--as", "quinn").code == 0
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text().replace("quinn: {roles: [qa]", "quinn: {roles: [approver]"))
    lines = shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    assert (
        "  QA · Pay with a saved card (signed off by quinn, who no longer holds the role qa in shiprail.yaml)" in lines
    )
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(x["by"], x["lapsed"]) for x in shown["signoffs"]] == [("quinn", True)]


def test_show_after_start_marks_the_sign_offs_start_did_not_count(shiprail: Any, project: Path) -> None:
    """quinn signed off an item and left QA; the qa gate refused it and an executive overrode it: once
    rolling out, `release show` ticked the item (`QA ✓ quinn …`) and `--json` said `"lapsed": false`.

    It now shows what Start counted, whatever shiprail.yaml says since (quinn's role given back).
    """
    policy, text = _staged_and_quinn_moved_to_approver(shiprail, project, "1")
    assert shiprail("release", "start", "checkout-2.4.0", "--as", "alice").code == 1
    r = shiprail("release", "override", "checkout-2.4.0", "--at", "staging", "--as", "dana", "--reason", REASON)
    assert (r.code, r.err) == (0, "")
    policy.write_text(text)
    shown = shiprail("release", "show", "checkout-2.4.0")
    assert shown.out.startswith("checkout-2.4.0  checkout 2.3.1 → 2.4.0  rolling_out (step 1)")
    assert (
        "  QA · Pay with a saved card (signed off by quinn, who no longer holds the role qa in shiprail.yaml)"
        in shown.out.splitlines()
    )
    data = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(x["by"], x["lapsed"]) for x in data["signoffs"]] == [("quinn", True)]


def test_show_says_a_sign_off_by_someone_since_named_the_owner_does_not_count(shiprail: Any, project: Path) -> None:
    """quinn signed off an item, then the plan named quinn its owner: `release show` still ticked it
    (`QA ✓ quinn`), while the qa gate of `release start` does not count it."""
    plan = project / "releases" / "checkout-2.4.0.yaml"
    assert shiprail("release", "create", str(plan), "--as", "alice").code == 0
    assert shiprail("release", "signoff", "checkout-2.4.0", "1", "--as", "quinn").code == 0
    plan.write_text(plan.read_text().replace("owner: alice", "owner: quinn"))
    r = shiprail("release", "update", "checkout-2.4.0", str(plan), "--as", "alice")
    assert (r.code, r.err) == (0, "")
    assert "  QA · Pay with a saved card (signed off by quinn, who owns the release)" in r.out.splitlines()
    shown = shiprail("release", "show", "checkout-2.4.0", "--json").json()
    assert [(x["by"], x["by_owner"]) for x in shown["signoffs"]] == [("quinn", True)]


@pytest.mark.parametrize("command", ["start", "pause", "rollback"])
def test_a_plan_file_that_is_not_there_is_named_as_a_file_not_as_a_release(shiprail: Any, command: str) -> None:
    """``release start releases/checkout-2.5.0.yaml`` (a typo, or not written yet) said there is no
    release of that name, as though the plan file had been taken for an id."""
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    code, out, err = shiprail("release", command, "releases/checkout-2.5.0.yaml", "--as", "bob", "--json")
    assert (code, err) == (2, "")
    assert json.loads(out) == {
        "ok": False,
        "error": "releases/checkout-2.5.0.yaml: no such plan file, and no release has that id; give a release id "
        "(`shiprail release list` shows them) or the plan file of one",
        "exit_code": 2,
    }
    Path("releases/adir.yaml").mkdir()
    code, out, err = shiprail("release", command, "releases/adir.yaml", "--as", "bob")
    assert (code, out) == (2, "")
    assert err == (
        "error: releases/adir.yaml is a directory, and no release has that id; give a release id "
        "(`shiprail release list` shows them) or the plan file of one\n"
    )


def test_override_at_a_state_the_release_left_is_refused_and_records_nothing(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    r = shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", REASON, "--at", "rolled out")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "error: --at 'rolled out' is not a state of a release; give the state `shiprail release show` printed, "
        "e.g. planned, staging, 'rolling_out (step 2)' or verifying\n"
    )
    assert shiprail("release", "approve", "checkout-2.4.0", "--as", "bob").code == 0
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
    events = len(shiprail("audit", "export").out.splitlines())
    r = shiprail(
        "release", "override", "checkout-2.4.0", "--as", "dana", "--reason", REASON, "--at", "rolling_out (step 1)"
    )
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith(
        "error: release checkout-2.4.0 is planned now, not rolling_out (step 1) as when you looked: "
    )
    assert len(shiprail("audit", "export").out.splitlines()) == events
    r = shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", REASON, "--at", "planned")
    assert (r.code, r.err) == (0, "")
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["status"] == "staging"


@pytest.mark.parametrize(
    ("gate", "why"),
    [
        (
            "approvals@deadbeef",
            "--gate approvals@deadbeef: gate approvals refuses for one thing and its refusals carry no reference; "
            "name it as --gate approvals",
        ),
        (
            "approvals@",
            "--gate approvals@: gate approvals refuses for one thing and its refusals carry no reference; name it "
            "as --gate approvals",
        ),
        (
            "freeze@zz",
            "--gate freeze@zz: a refusal's reference is its gate, @ and 8 hexadecimal digits, as the refusal "
            "names it (freeze@1f2e3d4c); copy it from the refusal or from `shiprail release show checkout-2.4.0`",
        ),
    ],
)
def test_a_gate_reference_that_no_refusal_can_have_is_bad_input(shiprail: Any, gate: str, why: str) -> None:
    """``--gate approvals@deadbeef`` (or ``freeze@zz``) was answered as a refusal that changed (`fails now
    for …, not for the refusal you override`), exit 1: no refusal ever has such a reference."""
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "stage", "checkout-2.4.0", "--as", "alice").code == 1
    events = shiprail("audit", "export").out
    r = shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", REASON, "--gate", gate)
    assert tuple(r) == (2, "", f"error: {why}\n")
    assert shiprail("audit", "export").out == events


@pytest.mark.parametrize("command", ["show", "approve", "stage", "check"])
def test_a_command_given_a_plan_file_for_a_release_id_says_it_takes_an_id(command: str, shiprail: Any) -> None:
    # start, promote, pause, resume and rollback take a plan file; the others answered only
    # "no release 'releases/checkout-2.4.0.yaml'", as if the release did not exist.
    plan = "releases/checkout-2.4.0.yaml"
    rid = shiprail("release", "create", plan, "--as", "alice", "--json").json()["id"]
    acting = [] if command == "show" else ["--as", "bob"]
    assert tuple(shiprail("release", command, plan, *acting)) == (
        2,
        "",
        f"error: no release '{plan}': give a release id, not a plan file; recent releases: {rid}\n",
    )


def test_update_of_a_staged_release_says_when_it_froze_in_the_usual_format_and_what_to_do(shiprail: Any) -> None:
    # It printed the raw stored time ("2026-11-29T03:49:22.426750+00:00") and "plan a new release",
    # without the command that does.
    plan = "releases/checkout-2.4.0.yaml"
    rid = shiprail("release", "create", plan, "--as", "alice", "--json").json()["id"]
    shiprail("release", "approve", rid, "--as", "bob")
    shiprail("release", "override", rid, "--as", "dana", "--gate", "approvals", "--reason", "Carol is out sick today")
    frozen = shiprail("release", "show", rid, "--json").json()["frozen_at"]
    code, out, err = shiprail("release", "update", rid, plan, "--as", "alice")
    assert (code, out, err) == (
        1,
        "",
        f"error: release {rid} froze its contract at {frozen[:10]} {frozen[11:19]} UTC; its plan can no longer "
        f"change: revert the file, or create a new release of it (`shiprail release create {plan}`)\n",
    )


def test_check_of_a_planned_release_says_to_stage_it_first(shiprail: Any) -> None:
    # "checks run in staging", and nothing said how a planned release gets there.
    rid = shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice", "--json").json()["id"]
    assert tuple(shiprail("release", "check", rid, "--as", "alice")) == (
        1,
        "",
        f"error: release {rid} is planned; checks run in staging: stage it first (`shiprail release stage {rid}`)\n",
    )


def test_show_names_each_approver_once_with_why_their_approval_does_not_count(shiprail: Any, project: Path) -> None:
    """bob approved the plan, approved it again once edited, then lost the approver role: `release show`
    named him twice, "not counting, of the release as it was before: bob; not counting, no longer
    holding the role …: bob". He is named once, for why his approval of the release as it runs does not count."""
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0", "--as", "bob").code == 0
    plan = project / "releases" / "checkout-2.4.0.yaml"
    plan.write_text(plan.read_text().replace("min_samples: 200", "min_samples: 300"))
    assert shiprail("release", "update", "checkout-2.4.0", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text().replace("bob:   {roles: [approver, oncall]", "bob:   {roles: [oncall]"))
    lines = shiprail("release", "show", "checkout-2.4.0").out.splitlines()
    assert [line for line in lines if line.startswith("  approvals:")] == [
        "  approvals: 1 of 2 (carol); not counting, no longer holding the role approver or executive in "
        "shiprail.yaml: bob"
    ]


def test_approve_and_signoff_revoke_withdraw_ones_own(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for who in ("bob", "carol"):
        assert shiprail("release", "approve", "checkout-2.4.0", "--as", who).code == 0
    r = shiprail("release", "approve", "checkout-2.4.0", "--reason", "oops", "--as", "carol")
    assert (r.code, r.out, r.err) == (
        2,
        "",
        "error: --reason goes with --revoke (why you withdraw it); leave it out to give one\n",
    )
    r = shiprail(
        "release", "approve", "checkout-2.4.0", "--revoke", "--reason", "the index is missing", "--as", "carol"
    )
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == "revoked: carol's approval of checkout-2.4.0 no longer counts"
    assert "  approvals: 1 of 2 (bob)" in lines
    assert shiprail("release", "signoff", "checkout-2.4.0", "1", "--as", "quinn").code == 0
    r = shiprail("release", "signoff", "checkout-2.4.0", "1", "--revoke", "--as", "quinn")
    assert r.code == 0
    assert r.out.splitlines()[0] == "revoked: quinn's sign-off of QA item 1 of checkout-2.4.0 no longer counts"
    assert "  QA · Pay with a saved card" in r.out.splitlines()
    r = shiprail("release", "signoff", "checkout-2.4.0", "1", "--revoke", "--as", "quinn")
    assert (r.code, r.err) == (
        2,
        "error: 'Pay with a saved card' of release checkout-2.4.0 is not signed off: there is no sign-off to revoke\n",
    )
