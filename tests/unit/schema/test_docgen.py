"""``docs/formats.md`` is generated from the file models; it must never drift from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from shiprail.schema import docgen
from shiprail.schema.plan import ReleasePlan
from shiprail.schema.policy import Policy
from shiprail.schema.service import Service

REPO = Path(__file__).resolve().parents[3]
FORMATS = REPO / "docs" / "formats.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return docgen.render_formats()


def test_docs_formats_md_is_generated(rendered: str) -> None:
    assert FORMATS.is_file(), "docs/formats.md is missing; run `python -m shiprail.schema.docgen`"
    assert FORMATS.read_text(encoding="utf-8") == rendered, (
        "docs/formats.md is out of date; run `python -m shiprail.schema.docgen`"
    )


@pytest.mark.parametrize("model", [Policy, Service, ReleasePlan])
def test_every_top_level_key_has_a_row(rendered: str, model: type[BaseModel]) -> None:
    section = rendered.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
    for key in model.model_fields:
        assert f"\n| `{key}` | " in section, f"{model.__name__}.{key} has no row in docs/formats.md"


def test_every_key_of_every_nested_section_has_a_row(rendered: str) -> None:
    for model in (Policy, Service, ReleasePlan):
        for name, schema in model.model_json_schema().get("$defs", {}).items():
            assert f"\n### {name}\n" in rendered, f"{name} has no section"
            section = rendered.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
            for key in schema.get("properties", {}):
                assert f"\n| `{key}` | " in section, f"{name}.{key} has no row"


def test_every_field_has_a_description() -> None:
    for model in (Policy, Service, ReleasePlan):
        schema = model.model_json_schema()
        for name, section in [(model.__name__, schema), *schema.get("$defs", {}).items()]:
            for key, prop in section.get("properties", {}).items():
                assert docgen._description(prop, schema.get("$defs", {})), f"{name}.{key} has no description"


def test_the_examples_are_embedded(rendered: str) -> None:
    for kind in docgen.KINDS:
        for rel in kind.examples:
            assert f"### Example: `{rel}`" in rendered
            assert docgen._template(rel).rstrip("\n") in rendered


def test_durations_and_factory_defaults_are_written_as_in_the_files(rendered: str) -> None:
    assert "| `analysis_interval` | duration | `1m` |" in rendered
    assert "| `window` | duration | `1d` |" in rendered
    min_bake = "{low: {1: 5m, 10: 30m, 50: 1h}, medium: {1: 30m, 10: 2h, 50: 4h}, high: {1: 30m, 10: 2h, 50: 4h}}"
    assert f"`{min_bake}`" in rendered
    assert "| `high_tags` | list of string | `[auth, payments, data-migration]` |" in rendered


def test_main_writes_the_file(tmp_path: Path, rendered: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "formats.md"
    assert docgen.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == rendered
    assert capsys.readouterr().out == f"wrote {target}\n"
