"""The README's Operations table shows every command exactly as it runs (issue 18 item 10).

Each row's command is run with ``--help`` through the real entry point: it must exit 0,
every option the row shows must exist, every option the command requires must be in
the row (not in brackets), and every command the CLI has must have a row.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sscl_daemon import cli

README = Path(__file__).resolve().parents[2] / "README.md"
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_OPTION = re.compile(r"--[a-z][a-z-]*")


def operations_rows() -> list[str]:
    """The command cell of each row of the table under ``## Operations``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Operations\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(sscl-daemon [^`]+)` \|", section, flags=re.MULTILINE)


def _words(row: str) -> list[str]:
    """The command (and sub-command) words of a row: lowercase words before any argument."""
    words: list[str] = []
    for word in row.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return words


def _without_brackets(text: str) -> str:
    while _BRACKETS.search(text):
        text = _BRACKETS.sub("", text)
    return text


ROWS = operations_rows()


def test_the_table_lists_every_command() -> None:
    assert len(ROWS) >= len(cli.COMMANDS)
    assert {_words(row)[0] for row in ROWS} == set(cli.COMMANDS)


@pytest.mark.parametrize("row", ROWS)
def test_each_row_runs_with_help_and_shows_the_real_options(
    row: str, capsys: pytest.CaptureFixture[str]
) -> None:
    words = _words(row)
    with pytest.raises(SystemExit) as exited:
        cli.main([*words, "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: sscl-daemon {' '.join(words)}")
    shown = set(_OPTION.findall(row))
    assert shown <= set(_OPTION.findall(help_text)), f"{row}: options the command lacks"
    usage = help_text.split("\n\n", 1)[0]
    required = set(_OPTION.findall(_without_brackets(usage)))
    assert required <= set(_OPTION.findall(_without_brackets(row))), (
        f"{row}: the command requires {sorted(required)}"
    )


def test_check_config_exits_2_on_an_invalid_file_as_its_row_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = next(row for row in ROWS if _words(row) == ["check-config"])
    described = README.read_text(encoding="utf-8").split(f"`{row}` |", 1)[1].split("\n", 1)[0]
    assert "exit 2" in described
    bad = tmp_path / "bad.toml"
    bad.write_text("[calls]\nlog_internall = true\n[blocklist]\nentries = ['12ab']\n")
    assert cli.main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "log_internall" in err
    assert "12ab" in err
