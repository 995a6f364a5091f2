"""`ordersync schema --dbt` gives a sources.yml that dbt itself accepts: its JSON schema for resource
files (which catches a misspelt key dbt-duckdb's parse would pass over) and a real `dbt parse` of a
project holding only that file, whose manifest then describes every table, view and column."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.mirror.dictionary import TABLES, table_columns, view_columns


def _schema_errors(document: object) -> list[str]:
    from dbt.jsonschemas.jsonschemas import CustomDraft7Validator, resources_schema

    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in CustomDraft7Validator(resources_schema()).iter_errors(document)
    ]


def _parse(project: Path, sources_text: str) -> tuple[bool, dict[str, object]]:
    """`dbt parse` of a project holding only this sources.yml; no network, no usage tracking."""
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: mirror_check\nversion: '1.0'\nconfig-version: 2\nprofile: mirror_check\n"
        "flags: {send_anonymous_usage_stats: false}\n"
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                "mirror_check": {
                    "target": "dev",
                    "outputs": {"dev": {"type": "duckdb", "path": "unused.duckdb"}},
                }
            }
        )
    )
    (project / "models" / "sources.yml").write_text(sources_text)
    from dbt.cli.main import dbtRunner  # dbt-duckdb is in the dev dependency group

    result = dbtRunner().invoke(
        [
            "parse",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--no-partial-parse",
            "--quiet",
            "--log-path",
            str(project / "logs"),
            "--target-path",
            str(project / "target"),
        ]
    )
    manifest_path = project / "target" / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return result.success, manifest


def test_the_generated_sources_are_accepted_by_dbt_and_describe_every_column(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--dbt"])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    assert _schema_errors(document) == []

    ok, manifest = _parse(tmp_path / "good", result.stdout)
    assert ok
    sources = {s["name"]: s for s in manifest["sources"].values()}  # type: ignore[union-attr]
    expected = {**table_columns(), **{v: c for v, c in view_columns().items() if not v.startswith("_")}}
    assert set(sources) == set(expected) and set(TABLES) <= set(sources)
    for name, columns in expected.items():
        described = sources[name]["columns"]
        assert [c for c, _ in columns] == list(described), name
        assert all(described[c]["description"] for c in described), name
        assert sources[name]["description"]
    # Keys are tested: orders' key columns not null, a one-column key unique as well.
    tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}  # type: ignore[union-attr]
    assert "source_not_null_ordersync_orders_order_id" in tests
    assert "source_unique_ordersync_runs_run_id" in tests
    assert any(t.startswith("source_unique_ordersync_orders_platform") for t in tests), tests


def test_a_broken_sources_file_is_refused_by_the_same_checks(tmp_path: Path) -> None:
    """The checks above can fail: a misspelt key is a schema error, a wrong shape fails dbt's parse."""
    document = yaml.safe_load(CliRunner().invoke(app, ["schema", "--dbt"]).stdout)
    table = document["sources"][0]["tables"][0]
    table["colums"] = table.pop("columns")
    assert any("colums" in e for e in _schema_errors(document))
    document["sources"][0]["tables"] = {"orders": {}}
    ok, _ = _parse(tmp_path / "bad", yaml.safe_dump(document))
    assert not ok


def test_a_database_name_is_carried_for_an_attached_file() -> None:
    result = CliRunner().invoke(app, ["schema", "--dbt", "--database", "mirror"])
    assert yaml.safe_load(result.stdout)["sources"][0]["database"] == "mirror"
