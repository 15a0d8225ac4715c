"""The regression triggers' tests of a release, kept by the controller between analyses.

A trigger's verdict is its test after every increment the release's analyses stored, then the
new one. Replaying them all at every analysis made an analysis cost what the release had seen so
far — reading every stored analysis and feeding every increment again, O(n) per analysis and
O(n²) per release; a 24-hour validation analysed every 10 s is 8,640 analyses. Kept here, each
test is fed only what was stored since the last analysis read. The tests are deterministic, so
the verdicts are the same as a full replay's; a controller that starts (or takes a release over
from another) begins with a full replay of what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shiprail.domain.contract import trigger_name
from shiprail.judges.base import JudgeInputError
from shiprail.judges.contract import Increment, Replay
from shiprail.schema.plan import Trigger


@dataclass
class ReleaseReplays:
    """One release's regression tests, each fed every increment stored up to analysis ``last``."""

    last: int | None = None
    """The last stored analysis read (None: none yet)."""
    pending: dict[str, list[Increment]] = field(default_factory=dict)
    """Per trigger, increments read but not yet fed (its test is built or fed when first asked)."""
    replays: dict[str, tuple[str, Replay]] = field(default_factory=dict)
    """Per trigger: what its test was built for (metric kind and settings), and the test."""

    def read(self, increments: dict[str, list[Increment]], last: int | None) -> None:
        """Take what the analyses stored after ``self.last``, up to and including analysis ``last``."""
        for name, new in increments.items():
            self.pending.setdefault(name, []).extend(new)
        self.last = last

    def replay(self, trigger: Trigger, kind: str) -> Replay | None:
        """The trigger's test fed every increment read so far; None when it was built for other settings.

        A test the stored increments break (``JudgeInputError``) is kept broken: every later feed
        raises the same error, as a full replay would.
        """
        assert trigger.regression is not None
        name = trigger_name(trigger)
        built_for = f"{kind} {trigger.regression.model_dump_json()}"
        held = self.replays.get(name)
        if held is not None and held[0] != built_for:
            return None
        test = held[1] if held is not None else Replay(kind, trigger)
        for inc in self.pending.pop(name, []):
            try:
                test.feed(inc)
            except JudgeInputError:
                break  # broken for good: the rest would raise the same
        self.replays[name] = (built_for, test)
        return test
