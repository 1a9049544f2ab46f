"""On a terminal a destructive command asks, and does nothing unless the operator says yes.

`kaquan` runs as its own process with a pseudo-terminal for standard input, as
an operator at a shell runs it.
"""

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.cli import Kaquan

ANSWER_TIMEOUT_S = 120


def at_a_terminal(tmp_path: Path, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `kaquan ARGS` with a terminal on standard input, typing `answer` and Enter at it."""
    main, terminal = pty.openpty()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAQUAN_")},
        "KAQUAN_DATABASE_URL": f"sqlite:///{tmp_path / 'kaquan.db'}",
        "KAQUAN_VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    try:
        os.write(main, f"{answer}\n".encode())  # waits in the terminal until the prompt reads it
        return subprocess.run(  # noqa: S603 - our own interpreter running our own command
            [sys.executable, "-c", "from kaquan.cli.app import main; main()", *args],
            stdin=terminal,
            capture_output=True,
            text=True,
            env=env,
            timeout=ANSWER_TIMEOUT_S,
            check=False,
        )
    finally:
        os.close(main)
        os.close(terminal)


@pytest.mark.parametrize(("answer", "exit_code"), [("n", 2), ("y", 0)])
def test_keys_rotate_asks_first_and_only_yes_goes_ahead(tmp_path: Path, answer: str, exit_code: int) -> None:
    done = at_a_terminal(tmp_path, answer, "keys", "rotate")

    assert "re-wrap every key under KAQUAN_MASTER_KEY?" in done.stderr
    assert done.returncode == exit_code, done.stderr
    if answer == "y":
        assert "every key is under the primary master key now" in done.stdout
    else:
        assert "not confirmed; nothing was changed" in done.stderr
        assert not (tmp_path / "kaquan.db").exists()  # it never even opened the database


@pytest.mark.parametrize(("answer", "exit_code"), [("n", 2), ("y", 0)])
def test_restore_over_a_database_with_data_asks_first(tmp_path: Path, answer: str, exit_code: int) -> None:
    kaquan = Kaquan(f"sqlite:///{tmp_path / 'kaquan.db'}", tmp_path / "var")  # in process: only the restore asks
    kaquan.ok("product", "create", "--name", "Video", "--kind", "membership")
    kaquan.ok("backup", str(tmp_path / "backup"))

    done = at_a_terminal(tmp_path, answer, "restore", str(tmp_path / "backup"))

    assert "with the backup?" in done.stderr
    assert done.returncode == exit_code, done.stderr
    if answer == "y":
        assert "replacing what the database held" in done.stdout
    else:
        assert "not confirmed; nothing was changed" in done.stderr
