"""The README's walkthrough runs as written, in order, on the database `make run` makes (`kaquan demo`).

Every ```sh block of README.md is the walkthrough, except the two that cannot run
inside a test: the `make` block that sets everything up and the agent client that
needs a running server (both exempt by their first command, so a new block of any
other kind fails here until it runs). Each command runs as the operator types it,
from a scratch copy of the repository's examples/ folder, and must succeed.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from tests.support.cli import Kaquan

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
KAQUAN = ".venv/bin/kaquan"
# First words of the blocks that are not run here, and why.
NOT_RUN = {
    "make": "sets up and serves; `kaquan demo` below is what it loads",
    "KAQUAN_URL=http://127.0.0.1:8000": "the agent client needs `make run`'s server and the key it printed",
}


def walkthrough(readme: str) -> list[tuple[int, list[str]]]:
    """Each command of the README's ```sh blocks with the line it starts on, continuation lines joined."""
    commands: list[tuple[int, list[str]]] = []
    for block in re.finditer(r"^```sh\n(.*?)^```", readme, flags=re.DOTALL | re.MULTILINE):
        line_no = readme.count("\n", 0, block.start(1)) + 1
        found: list[tuple[int, list[str]]] = []
        pending, starts = "", line_no
        for offset, text in enumerate(block.group(1).splitlines()):
            if not pending:
                starts = line_no + offset
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            command, pending = shlex.split(pending + text, comments=True), ""
            if command:
                found.append((starts, command))
        if found and not any(found[0][1][0].startswith(first) for first in NOT_RUN):
            commands.extend(found)
    return commands


def split_env(words: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """`NAME=value kaquan …`: the variables set for this one command, and the command."""
    env: dict[str, str | None] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        name, value = words[0].split("=", 1)
        env[name], words = value, words[1:]
    return env, words


PLACEHOLDER = re.compile(r"<[^<>\s]+>|\[[^\[\]\s]*\]|…")  # <name>, [option], … — not `a > 5` in a rule


def test_the_readme_names_its_walkthrough_and_every_command_is_kaquan() -> None:
    commands = [(line, split_env(words)[1]) for line, words in walkthrough(README.read_text(encoding="utf-8"))]

    assert len(commands) > 30
    strays = [(line, " ".join(words)) for line, words in commands if not words or words[0] != KAQUAN]
    assert strays == [], "README sh blocks hold commands the walkthrough test cannot run"
    unfilled = [(line, " ".join(words)) for line, words in commands if any(PLACEHOLDER.search(w) for w in words)]
    assert unfilled == [], "placeholders do not run as written: put them in the prose"


def test_the_readme_walkthrough_runs_as_written_on_the_demo_database(
    unmigrated_kaquan: Kaquan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kaquan = unmigrated_kaquan  # `make run` starts from no database: `kaquan demo` migrates it
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    kaquan.ok("demo")

    for line, words in walkthrough(README.read_text(encoding="utf-8")):
        env, command = split_env(words)
        result = kaquan(*command[1:], env=env)
        assert result.exit_code == 0, (
            f"README.md line {line}: {' '.join(words)}\nexit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        )
