"""The reference pages stay true to the code: the exit codes, every command, every
setting and every task are where the README and docs/ say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from producer.cli.main import cli
from shared import contracts
from shared.cli_output import EXIT_CODES
from shared.settings import Settings
from tests.unit.test_cli import leaf_commands

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_the_exit_code_table_is_the_code_s(page: str) -> None:
    rows = re.findall(r"^\| (\d) \| (.+) \|$", (ROOT / page).read_text(), flags=re.MULTILINE)
    assert {int(code): meaning.replace("`", "") for code, meaning in rows} == EXIT_CODES


def test_every_command_has_its_section_in_the_cli_reference() -> None:
    page = (ROOT / "docs/cli.md").read_text()
    missing = [name for name in [*leaf_commands(cli), "mlq train"] if f"### `{name}`" not in page]
    assert not missing


def test_every_setting_is_in_the_configuration_reference() -> None:
    page = (ROOT / "docs/configuration.md").read_text()
    variables = [
        info.alias or f"MLQ_{name.upper()}" for name, info in Settings.model_fields.items()
    ]
    assert len(variables) >= 14
    assert [v for v in variables if f"`{v}`" not in page] == []


def test_every_task_is_in_the_task_reference() -> None:
    page = (ROOT / "docs/tasks.md").read_text()
    names = [value for key, value in vars(contracts).items() if key.startswith("TASK_")]
    assert [name for name in names if isinstance(name, str) and f"`{name}`" not in page] == []


def test_the_readme_links_pages_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)", (ROOT / "README.md").read_text())
    assert len(links) >= 9
    assert [link for link in links if not (ROOT / link).is_file()] == []
