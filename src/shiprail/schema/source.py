"""YAML documents that remember where each value came from, so errors can name the line."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from shiprail.errors import PlanInvalid, Problem, why_unreadable
from shiprail.text import is_digits, overflowed, underflowed

Loc = tuple[str | int, ...]
# More values than any plan, service or policy file holds (a 30 MB plan has a few hundred
# thousand): what a file's aliases may expand to. A few hundred bytes of nested aliases can
# stand for billions ("billion laughs").
MAX_YAML_VALUES = 2_000_000


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 the key ``on:`` would read as ``True``.

    And YAML 1.2's numbers: YAML 1.1 reads ``010`` as octal 8 and ``1:30`` in base 60 as 90, so
    ``min_samples: 010`` asked for 8 samples and ``above: 1:30`` fired above 90. Here a leading
    zero is decimal (``010`` is 10, as the schema reads the text) and ``1:30`` is text, refused
    where a number is required. ``0b`` numbers are text too; ``0x`` stays hexadecimal.

    And a lone ``=`` is text, as in YAML 1.2: YAML 1.1 reads it as the "value key" of a mapping,
    which PyYAML cannot construct, so ``- =`` was refused as a YAML syntax error.
    """


# Resolvers replaced below, and YAML 1.1's value key (``=``), dropped.
_REPLACED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:value",
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# PyYAML's, without YAML 1.1's octal (0 then digits), binary and base-60 forms.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


# A number as YAML 1.2 writes one in decimal (``1e5``, ``1.0e5``, ``010``) that the resolvers above
# leave as text (YAML 1.1 wants a dot and a signed exponent): kept as the text written, but tagged,
# so that a field taking a number or text (a probe's ``equals``) reads it as the number it is. Only
# an unquoted value without a tag gets here: ``"1e5"`` and ``!!str 1e5`` are text.
NUMBER_TEXT_TAG = "tag:shiprail,2026:number-text"
_Loader.add_implicit_resolver(
    NUMBER_TEXT_TAG,
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


class NumberText(str):
    """An unquoted number kept as the text written: one YAML 1.1 reads as text (``1e5``), or one no
    float holds (``1.0e-400``). Marked in the value itself, not only by its place in the file: an
    anchor merged with ``<<: *name`` puts the same value at other places too."""

    __slots__ = ()


class FloatText(NumberText):
    """A YAML float no float holds (``1.0e+400``, ``1.0e-400``), kept as written: YAML reads it as a
    number, so a field that takes text only refuses it as it refuses ``1.0e+5`` (quote it)."""

    __slots__ = ()


def _construct_number_text(loader: yaml.SafeLoader, node: Node) -> str:
    return NumberText(loader.construct_yaml_str(node))


_Loader.add_constructor(NUMBER_TEXT_TAG, _construct_number_text)


def _construct_float(loader: yaml.SafeLoader, node: Node) -> Any:
    """A YAML float; one too large for a float (``1.0e+400``) stays the text written, not ``inf``,
    and so does one too small (``1.0e-400``), not ``0.0``.

    Infinity is a threshold that never or always fires and is refused as such; a number written
    too large is a different mistake, and the schema says so (``1.0e+400 is too large``); one
    written too small would otherwise pass as 0, a threshold that fires at any error.
    """
    value = loader.construct_yaml_float(node)  # type: ignore[arg-type]
    text = str(node.value)
    if overflowed(text, value) or underflowed(text, value):
        return FloatText(text)
    return value


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def format_path(loc: Sequence[str | int]) -> str:
    """``("triggers", 1, "above")`` -> ``triggers[1].above``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class SourceDoc:
    """A parsed YAML file with the line of every key and list item."""

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    # Problems found while reading that do not stop validation (duplicate keys).
    problems: list[Problem] = field(default_factory=list)
    # Unquoted values written as numbers, as written (``1.10``, ``1e5``): a message about a value that
    # should have been text shows what the user wrote, not the number YAML made of it, and a field
    # that takes a number or text reads them as numbers. Those YAML 1.1 keeps as text (``1e5``) and
    # those no float holds (``1.0e-400``) are here too, as text in ``data``; quoted ones are not.
    numbers: dict[Loc, str] = field(default_factory=dict)
    # Unquoted values YAML 1.1 reads as dates or times (``2026-01-02``), as written: a text field
    # refusing one says to quote it.
    dates: dict[Loc, str] = field(default_factory=dict)

    def line_for(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of its nearest ancestor present in the file."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """A problem located at ``loc`` in this file."""
        return Problem(self.file, self.line_for(loc), format_path(loc), message)


def display_name(path: Path) -> str:
    """The path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", NUMBER_TEXT_TAG})
_BINARY_TAG = "tag:yaml.org,2002:binary"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _walk(node: Node, loc: Loc, doc: SourceDoc) -> None:
    """Note in ``doc`` the line of every key and item below ``node``, its duplicate keys, and the
    unquoted values YAML reads as other than text."""
    file, lines = doc.file, doc.lines
    if node.tag == _BINARY_TAG:
        # Base64 that a text field takes as the decoded bytes: a plan reviewed as code could run a
        # command, or name an owner, that no reviewer read.
        message = "!!binary is not read in shiprail files; write the text itself"
        raise PlanInvalid([Problem(file, node.start_mark.line + 1, format_path(loc), message)])
    if isinstance(node, ScalarNode) and node.style is None and node.tag in _NUMBER_TAGS:
        doc.numbers[loc] = str(node.value)
    elif isinstance(node, ScalarNode) and node.style is None and node.tag == _TIMESTAMP_TAG:
        doc.dates[loc] = str(node.value)
    elif isinstance(node, MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                doc.problems.append(
                    Problem(
                        file,
                        line,
                        format_path((*loc, key)),
                        f"duplicate key (first given on line {seen[key]}); keep one",
                    )
                )
            seen[key] = line
            # Keys that YAML reads as numbers (min_bake weights) are looked up as ints too.
            lines[(*loc, key)] = line
            # is_digits: str.isdigit() is also true of "²", which int() refuses (a traceback).
            if isinstance(key, str) and is_digits(key.lstrip("-")):
                lines[(*loc, int(key))] = line
            _walk(value_node, (*loc, key), doc)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), doc)


def not_a_file(path: Path) -> str | None:
    """Why ``path`` is no regular file to read (``is a directory``...), or None; it is never opened.

    Opening a FIFO waits for a writer (for ever), and a device may never end: only a regular file
    is read. A path that does not exist is None here; reading it says so.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, socket or device)"
    return None


def load_yaml(path: Path, file: str | None = None) -> SourceDoc:
    """Read ``path``; raise ``PlanInvalid`` naming the line on a syntax error or duplicate key."""
    name = file or display_name(path)
    why = not_a_file(path)
    if why is not None:
        raise PlanInvalid([Problem(name, None, "", f"{why}; give a file")])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanInvalid([Problem(name, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanInvalid([Problem(name, None, "", why_unreadable(exc))]) from None
    return parse_yaml(text, name)


def _values(node: Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias in it is expanded (linear: each node once)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # an alias of a node that holds it counts nothing more (and does not loop)
        if isinstance(node, MappingNode):
            memo[key] = 1 + sum(_values(k, memo) + _values(v, memo) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            memo[key] = 1 + sum(_values(item, memo) for item in node.value)
        else:
            memo[key] = 1
    return memo[key]


def parse_yaml(text: str, file: str) -> SourceDoc:
    """Parse YAML ``text`` (named ``file`` in messages) into a ``SourceDoc``."""
    # PyYAML (YAML 1.1) ends a line at NEL, LS and PS, where editors and YAML 1.2 see none: one
    # pasted into a comment breaks the file on a line that looks fine, and shifts every line named.
    odd = re.search("[\x85\u2028\u2029]", text)
    if odd is not None:
        at = text[: odd.start()].count("\n") + 1
        char = f"U+{ord(odd.group()):04X}"
        message = f"{char} is read by YAML as a line break that editors do not show; remove it"
        raise PlanInvalid([Problem(file, at, "", message)])
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character: refused before parsing
        at = text[: exc.position].count("\n") + 1
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise PlanInvalid([Problem(file, at, "", f"control character {char} is not allowed; remove it")]) from None
    doc = SourceDoc(file, None)
    try:
        node = loader.get_single_node()
        if node is not None and _values(node, {}) > MAX_YAML_VALUES:
            raise PlanInvalid(
                [Problem(file, None, "", f"its aliases expand to more than {MAX_YAML_VALUES:,} values; write it out")]
            )
        if node is not None:
            # Lines and duplicate keys before construction, which flattens merge keys (`<<: *base`)
            # into each mapping: a key that overrides a merged one is not a duplicate.
            doc.lines[()] = node.start_mark.line + 1
            _walk(node, (), doc)
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise PlanInvalid([Problem(file, None, "", "nested too deeply to be a shiprail file")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "not valid YAML"
        if "block" in what or "indent" in what:
            what += " (check the indentation)"
        raise PlanInvalid([Problem(file, line, "", f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise PlanInvalid([Problem(file, None, "", f"YAML syntax error: {exc}")]) from None
    finally:
        loader.dispose()
    doc.data = data
    if data is None:
        raise PlanInvalid([Problem(file, 1, "", "the file is empty; see `shiprail init` for an example")])
    if not isinstance(data, dict):
        raise PlanInvalid([Problem(file, 1, "", "the file must be a mapping of keys to values")])
    return doc
