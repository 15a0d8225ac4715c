"""Command groups that answer an unknown command with the shiprail command that does it.

Someone coming from Argo Rollouts, Spinnaker or Octopus types ``shiprail release status``, ``watch``
or ``abort``; Typer's guess by spelling answered ``status`` with "Did you mean 'start'?", which
starts a rollout. A word other release tools use, or a command of another group (``shiprail
rollback`` for ``shiprail release rollback``), names the command instead; any other word keeps
Typer's guess.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

# Typer 0.26 and later vendor their own Click (as in main.py).
try:
    from typer._click.exceptions import UsageError
except ImportError:  # typer < 0.26
    from click.exceptions import UsageError  # type: ignore[assignment]

_SHOW = "`shiprail release show RELEASE_ID` shows where a release stands, `shiprail release list` every release"
_FOLLOW = (
    "`shiprail release start RELEASE_ID --wait` follows a release live to its end (and starts it if it is "
    "still staging), `shiprail release show RELEASE_ID` shows it once"
)
_ROLLBACK = "`shiprail release rollback RELEASE_ID` puts all traffic back on the baseline"
_RETRY = "a rolled-back change is tried again as a new release of its plan: `shiprail release create PLAN_FILE`"
_START = "`shiprail release start RELEASE_ID` starts a staged release's rollout"
_VALIDATE = "`shiprail plan validate FILES...` checks release plans"
_RECORDS = "`shiprail release retro`, `release export` and `release notes` write a release's records"
_VERIFY = "`shiprail audit verify` checks the audit chain, `shiprail release verify-package DIR` a release package"

# Words other release tools (and habit) use, and what answers them here.
OTHER_TOOLS_WORDS: dict[str, str] = {
    "status": _SHOW,
    "get": _SHOW,
    "describe": _SHOW,
    "info": _SHOW,
    "inspect": _SHOW,
    "ls": "`shiprail release list` lists releases",
    "watch": _FOLLOW,
    "follow": _FOLLOW,
    "logs": _FOLLOW,
    "abort": _ROLLBACK,
    "undo": _ROLLBACK,
    "revert": _ROLLBACK,
    "cancel": _ROLLBACK,
    "retry": _RETRY,
    "restart": _RETRY,
    "deploy": _START,
    "rollout": _START,
    "lint": _VALIDATE,
    "report": _RECORDS,
    "verify": _VERIFY,
}


class ShiprailGroup(TyperGroup):
    """A command group whose "no such command" names the shiprail command a newcomer meant."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            hint = self._meant(ctx, args[0]) if args else None
            if hint is not None:
                exc.message = f"No such command {args[0]!r}: {hint}."
            raise

    def _meant(self, ctx: Any, word: str) -> str | None:
        """The command ``word`` stands for: a word's hint, or a command of the same name in another group."""
        if word in OTHER_TOOLS_WORDS:
            return OTHER_TOOLS_WORDS[word]
        root = ctx.find_root()
        elsewhere = [
            f"`{root.info_name} {group_name} {word}`"
            for group_name, group in sorted(getattr(root.command, "commands", {}).items())
            if group is not self and word in getattr(group, "commands", {})
        ]
        return f"it is {' or '.join(elsewhere)}" if elsewhere else None
