"""Turn pydantic's findings into one clear sentence per problem, each naming file, line and key."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shiprail.errors import Problem
from shiprail.schema.base import FROM_FILE, out_of_range
from shiprail.schema.source import FloatText, Loc, NumberText, SourceDoc
from shiprail.text import ascii_float, digits_hint, percent_hint

M = TypeVar("M", bound=BaseModel)
_FILE = {FROM_FILE: True}
_MAX_PRUNE_ROUNDS = 8


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in YAML, not Python's True/False
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        # -10, not the -10.0 a number field holds; other values in full (repr, not 6 digits).
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _has(container: Any, part: str | int) -> bool:
    """True when ``container[part]`` exists (a dict key or a list index)."""
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _real_loc(loc: tuple[str | int, ...], data: Any) -> Loc:
    """Drop the parts pydantic adds for union members (``nginx``, ``str``...) that are not keys."""
    out: list[str | int] = []
    here = data
    for part in loc:
        if _has(here, part):
            out.append(part)
            here = here[part]
        elif isinstance(here, dict | list):
            # Not in the data: either a union tag (skip it) or a missing/unknown key (keep it).
            if isinstance(part, str) and not _looks_like_union_tag(part, here):
                out.append(part)
                here = None
        else:
            # Below a scalar: pydantic is naming a union member, not a place in the file.
            continue
    return tuple(out)


def _looks_like_union_tag(part: str, here: Any) -> bool:
    if isinstance(here, dict) and here.get("type") == part:
        return True
    return part in {"str", "int", "float", "bool", "none"} or "[" in part


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (through Optional, Annotated, unions)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found: list[Any] = []
        for arg in get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    return [annotation]


def _types_at(model: type[BaseModel], loc: Loc) -> list[Any]:
    """Every type that may stand at ``loc`` inside ``model``."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for tp in current:
            for concrete in _unwrap(tp):
                origin = get_origin(concrete)
                if isinstance(concrete, type) and issubclass(concrete, BaseModel):
                    field = concrete.model_fields.get(str(part))
                    if field is not None:
                        following.append(field.annotation)
                elif origin in (list, tuple, set, frozenset):
                    following.extend(get_args(concrete)[:1])
                elif origin is dict:
                    following.append(get_args(concrete)[1])
        current = following
    return current


def allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a mapping at ``loc`` may have."""
    keys: list[str] = []
    for tp in _types_at(model, loc):
        for concrete in _unwrap(tp):
            if isinstance(concrete, type) and issubclass(concrete, BaseModel):
                keys.extend(k for k in concrete.model_fields if k not in keys)
    return keys


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` did you mean 'x'?`` when a choice is close to ``word``, else an empty string."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def message_for(err: ErrorDetails, model: type[BaseModel], loc: Loc) -> str:
    """One sentence for one pydantic error."""
    kind = err["type"]
    given = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return MISSING
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        choices = allowed_keys(model, loc[:-1])
        hint = did_you_mean(key, choices)
        if not hint and choices:
            hint = f"; known keys: {', '.join(choices)}"
        return f"unknown key {key!r}{hint}"
    if kind in {"float_parsing", "float_type", "int_parsing", "int_type"}:
        return f"a number is required, got {_show(given)}{digits_hint(given) or percent_hint(given)}"
    if kind == "int_from_float":
        return f"a whole number is required, got {_show(given)}"
    if kind in {"bool_parsing", "bool_type"}:
        return f"true or false is required, got {_show(given)}"
    if kind == "invalid_key":
        return f"the key {_show(given)} is not text; quote it or remove it"
    if kind == "string_type":
        return f"text is required, got {_show(given)}"
    if kind in {"list_type", "tuple_type", "set_type"}:
        return f"a list is required, got {_show(given)}"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return f"a mapping of keys to values is required, got {_show(given)}"
    if kind in {"literal_error", "enum"}:
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        return f"one of {expected} is required, got {_show(given)}"
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace(" or ", ", ")
        return f"{ctx.get('tag')!r} is not known; use one of {expected}"
    if kind == "union_tag_not_found":
        return "is required"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        word = {
            "greater_than": "more than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        return f"must be {word} {_show(bound)}, got {_show(given)}"
    return str(err["msg"])


def _text_not_number(given: Any, written: str | None) -> str | None:
    """Where text was required and YAML read a number: what was written, and to quote it."""
    if isinstance(given, bool) or not isinstance(given, int | float):
        return None
    shown = "a number" if isinstance(given, float) and math.isinf(given) else f"the number {_show(given)}"
    if written is None or written == _show(given):
        return f'text is required, got the number {written or _show(given)}; quote it: "{written or _show(given)}"'
    # 1.10 reads as 1.1 and 1.0e+3 as 1000.0 (1.0e+400 as a number no float holds): show what was written.
    return f'text is required, but YAML reads {written} unquoted as {shown}; quote it: "{written}"'


def problems_from(exc: ValidationError, model: type[BaseModel], doc: SourceDoc) -> list[Problem]:
    """Every error of ``exc`` as a located problem, in file order, without repeats."""
    seen: set[tuple[str, str]] = set()
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        raw = tuple(err["loc"])
        if err["type"] == "invalid_key":
            raw = raw[:-1]  # pydantic ends the path with the key itself (True reads as [1])
        loc = _real_loc(raw, doc.data)
        if err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            # pydantic names the union (``router``); the key at fault is its ``type``.
            tag_key = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
            if tag_key:
                loc = (*loc, tag_key)
        message = message_for(err, model, loc)
        if err["type"] == "string_type":
            message = _text_not_number(err.get("input"), doc.numbers.get(loc)) or message
        written_date = doc.dates.get(loc)
        if written_date is not None and str in _kinds_at(model, loc):
            # One message for every type of a union that takes text (a probe's equals), not three.
            what = "a date and time" if ":" in written_date else "a date"
            message = f'text is required, but YAML reads {written_date} unquoted as {what}; quote it: "{written_date}"'
        problem = doc.problem(loc, message)
        key = (problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            problems.append(problem)
    return problems


NO_VALUE = "a value is required here"
NULL_VALUE = f"{NO_VALUE}; give one or remove the key"
MISSING = "is required"


def without_removal_advice(problems: list[Problem], later: list[Problem]) -> list[Problem]:
    """``problems``, where a key given no value is one ``later`` finds missing: no advice to remove it.

    A key given no value is cut before validation, so a later problem at its very place is about
    its absence: the key is needed, and that problem's words replace the advice (``is required``
    becomes "a value is required here"). A later problem about a place around it (a trigger
    without a metric, when ``metric:`` was left empty) may be about its absence too: then only the
    advice to remove it goes. Callers drop those later problems (``drop_related``).
    """
    out = []
    for p in problems:
        if p.message == NULL_VALUE:
            here = [q.message for q in later if q.file == p.file and q.path == p.path]
            around = any(q.file == p.file and _related(q.path, p.path) for q in later)
            if here:
                p = dataclasses.replace(p, message=NO_VALUE if here[0] == MISSING else here[0])
            elif around:
                p = dataclasses.replace(p, message=NO_VALUE)
        out.append(p)
    return out


def strip_nulls(doc: SourceDoc) -> tuple[Any, list[Problem]]:
    """Remove keys given no value (``above:``), each reported: an empty value is never meant."""
    problems: list[Problem] = []

    def clean(value: Any, loc: Loc) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if item is None:
                    problems.append(doc.problem((*loc, key), NULL_VALUE))
                    continue
                out[key] = clean(item, (*loc, key))
            return out
        if isinstance(value, list):
            return [clean(item, (*loc, i)) for i, item in enumerate(value)]
        return value

    return clean(doc.data, ()), problems


def _kinds_at(model: type[BaseModel], loc: Loc) -> set[Any]:
    """The concrete types a value at ``loc`` may have (``str``, ``float``, a model...)."""
    return {concrete for tp in _types_at(model, loc) for concrete in _unwrap(tp)}


def _takes_number_and_text(model: type[BaseModel], loc: Loc) -> bool:
    """Whether a value at ``loc`` may be a number or text (a probe's ``equals``)."""
    kinds = _kinds_at(model, loc)
    return str in kinds and bool(kinds & {int, float})


# Up to 2**53 every whole number is exactly a float; above, only some are (2**53 + 1 is not).
_FLOAT_EXACT = 2**53


def read_numbers_as_written(model: type[BaseModel], doc: SourceDoc, data: Any) -> list[Problem]:
    """In ``data``, each unquoted number of a field that takes a number or text made the number written.

    YAML 1.1 keeps ``1e5`` as text, and the loader keeps ``1.0e-400`` as text because no float
    holds it: a probe's ``equals: 1e5`` then expected the text "1e5", which no JSON number equals,
    and ``equals: 1.0e-400`` passed without a word. Here the first is 100000, and one no float
    holds is refused and removed from ``data``; a quoted value stays text.
    """
    problems: list[Problem] = []

    def visit(holder: Any, loc: Loc) -> None:
        # A list's items from the last, so that one removed does not move those still to visit.
        for key in list(holder) if isinstance(holder, dict) else reversed(range(len(holder))):
            here, value = (*loc, key), holder[key]
            if isinstance(value, dict | list):
                visit(value, here)
                continue
            # The text written: a NumberText's own (wherever an anchor put it), an int's as noted.
            if isinstance(value, NumberText):
                written = str(value)
            elif isinstance(value, int) and not isinstance(value, bool) and here in doc.numbers:
                written = doc.numbers[here]
            else:
                continue  # text, or a float YAML read: a number already
            if not _takes_number_and_text(model, here):
                if isinstance(value, FloatText) and _kinds_at(model, here) - {type(None)} == {str}:
                    # A text field given 1.0e+400: refused like 1.0e+5, not taken as the text.
                    problems.append(doc.problem(here, _text_not_number(math.inf, written) or ""))
                continue
            try:
                number = float(value) if isinstance(value, int) else ascii_float(written.replace("_", ""))
            except OverflowError:  # 400 digits
                number = math.inf
            problem = out_of_range(written, number)
            if problem is None and isinstance(value, int) and abs(value) > _FLOAT_EXACT:
                holder[key] = value  # a float would round it, and no JSON answer would equal the rounded number
            elif problem is None:
                holder[key] = number
            else:
                problems.append(doc.problem(here, f"{problem}, or quote it to expect that text"))
                del holder[key]

    if isinstance(data, dict | list):
        visit(data, ())
    return problems


def _prune(data: Any, loc: Loc) -> bool:
    """Remove the key at ``loc`` from ``data`` (a list item takes its whole list); False if impossible."""
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    if not loc:
        return False
    here = data
    for part in loc[:-1]:
        if _has(here, part):
            here = here[part]
        else:
            return False
    if isinstance(here, dict) and loc[-1] in here:
        del here[loc[-1]]
        return True
    return False


def _related(a: str, b: str) -> bool:
    """True when one path is the other or lies inside it."""
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def drop_related(found: list[Problem], later: list[Problem]) -> list[Problem]:
    """``later`` without the problems about a place ``found`` already reports as broken."""
    broken = [(p.file, p.path) for p in found if p.path]
    return [p for p in later if not any(p.file == f and _related(p.path, path) for f, path in broken)]


def validate(model: type[M], doc: SourceDoc) -> tuple[M | None, list[Problem], set[str]]:
    """Validate ``doc`` against ``model``, reporting everything at once.

    Returns the model (``None`` when a required part is broken), the problems, and the top-level
    keys that had to be cut: each broken key is cut from the data and the rest validated again,
    so the guardrails can still check everything else. Callers drop guardrail problems about a
    place already reported (``drop_related``) and skip rules that need a cut section.
    """
    data, nulls = strip_nulls(doc)
    problems = [*doc.problems, *nulls, *read_numbers_as_written(model, doc, data)]
    broken: set[str] = set()
    pruned = copy.deepcopy(data)
    first = True
    for _ in range(_MAX_PRUNE_ROUNDS):
        try:
            return model.model_validate(pruned, context=_FILE), problems, broken
        except ValidationError as exc:
            if first:
                found = problems_from(exc, model, doc)
                problems = without_removal_advice(problems, found)
                given_none = {(p.file, p.path) for p in nulls}
                problems.extend(p for p in found if (p.file, p.path) not in given_none)
                first = False
            for err in exc.errors():
                loc = _real_loc(tuple(err["loc"]), pruned)
                target = loc[:-1] if err["type"] == "missing" else loc
                if not _prune(pruned, target):
                    return None, problems, broken
                broken.add(str(target[0]))
    return None, problems, broken
