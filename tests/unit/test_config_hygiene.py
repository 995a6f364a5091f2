"""Config mistakes get one clear line naming the key, the file and its line; relative paths are read
from the config's folder; the example config documents every setting."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from ordersync.config import Settings, load_settings
from ordersync.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "sync.example.yaml"

SHOP = """\
shops:
  - name: wc
    platform: webcommander
    base_url: http://127.0.0.1:8701
    uuid: {uuid}
    access_token: token
    timezone: UTC
"""


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sync.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return str(raised.value)


@pytest.mark.parametrize(
    ("uuid", "problem"),
    [
        ("$WC_UUID", "'$WC_UUID' is not expanded: write ${WC_UUID}"),
        ('"${WC_UUID"', "an unclosed ${ in '${WC_UUID'"),
        (
            '"${ORDERSYNC_TEST_UNSET_VAR:-}"',
            "a secret that is empty ('${ORDERSYNC_TEST_UNSET_VAR:-}' gave nothing)",
        ),
        ('"${ORDERSYNC_TEST_UNSET_VAR}"', "environment variable ORDERSYNC_TEST_UNSET_VAR is not set"),
    ],
)
def test_a_secret_reference_that_cannot_work_is_refused_with_its_line(
    tmp_path: Path, uuid: str, problem: str
) -> None:
    message = _error(tmp_path, SHOP.format(uuid=uuid))
    assert f"shops.0.uuid ({tmp_path / 'sync.yaml'} line 5): {problem}" in message, message


def test_a_typo_names_its_line_and_the_closest_key(tmp_path: Path) -> None:
    message = _error(tmp_path, SHOP.format(uuid="u") + "    page_sise: 50\nmirorr: {path: m.duckdb}\n")
    assert (
        "shops.0.webcommander.page_sise (" in message
        and "line 8): unknown key; did you mean 'page_size'?" in message
    )
    assert "mirorr (" in message and "line 9): unknown key; did you mean 'mirror'?" in message


def test_a_bad_value_names_its_line(tmp_path: Path) -> None:
    message = _error(tmp_path, "workers: -1\n" + SHOP.format(uuid="u"))
    assert "workers (" in message and "line 1): Input should be greater than or equal to 0" in message


def test_relative_paths_are_read_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "sync.yaml").write_text(
        "mirror: {path: data/m.duckdb}\nstate: {url: 'sqlite:///state/s.db'}\n" + SHOP.format(uuid="u")
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("etc/sync.yaml"))
    assert settings.mirror.path == folder / "data" / "m.duckdb"
    assert settings.state.url.get_secret_value() == f"sqlite:///{folder / 'state' / 's.db'}"
    absolute = tmp_path / "abs.duckdb"
    (folder / "sync.yaml").write_text(f"mirror: {{path: {absolute}}}\n" + SHOP.format(uuid="u"))
    assert load_settings(folder / "sync.yaml").mirror.path == absolute


def _keys(model: type[BaseModel], prefix: str, seen: set[type[BaseModel]]) -> list[tuple[str, str]]:
    if model in seen:
        return []
    seen.add(model)
    found = []
    for name, info in model.model_fields.items():
        found.append((f"{prefix}{name}", info.alias or name))
        stack = [info.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found.extend(_keys(kind, f"{prefix}{name}.", seen))
            else:
                stack.extend(typing.get_args(kind))
    return found


def test_the_example_config_documents_every_setting() -> None:
    text = EXAMPLE.read_text()
    missing = [
        path
        for path, key in _keys(Settings, "", set())
        if not re.search(rf"(^|[\s{{,#-]){re.escape(key)}:", text, re.M)
    ]
    assert not missing, f"sync.example.yaml does not mention: {missing}"
