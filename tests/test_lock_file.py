"""The lock files pin what pyproject.toml asks for: an edit to pyproject.toml without `make lock` fails here.

requirements/lock.txt is what `make` installs (runtime, dev and the build backend, for
`pip install --no-build-isolation`), requirements/runtime.txt what a container image installs; both are
`pip install --require-hashes` files written by `uv pip compile --universal --generate-hashes`.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


def read_lock(path: Path) -> list[Pin]:
    """Each `name==version [; marker] \\` entry with its `--hash` lines and its `# via` annotations."""
    pins = []
    for entry in re.split(r"^(?=[^\s#])", path.read_text(encoding="utf-8"), flags=re.MULTILINE):
        head, *rest = entry.splitlines() or [""]
        if not head or head.startswith("#"):
            continue
        requirement = Requirement(head.removesuffix("\\").strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {head!r} is not pinned with =="
        notes = [line.strip().removeprefix("#").strip() for line in rest if line.strip().startswith("#")]
        pins.append(
            Pin(
                name=canonicalize_name(requirement.name),
                version=Version(specifier.version),
                marker=str(requirement.marker or ""),
                hashes=tuple(re.findall(r"--hash=(\S+)", entry)),
                via=tuple(note.removeprefix("via").strip() for note in notes if note != "via"),
            )
        )
    return pins


LOCK = read_lock(REQUIREMENTS / "lock.txt")
RUNTIME = read_lock(REQUIREMENTS / "runtime.txt")
RUNTIME_DEPENDENCIES = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
DEV_DEPENDENCIES = [Requirement(text) for text in PYPROJECT["project"]["optional-dependencies"]["dev"]]
BUILD_DEPENDENCIES = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]]


def pins_of(lock: list[Pin], name: str) -> list[Pin]:
    return [pin for pin in lock if pin.name == canonicalize_name(name)]


def unmet(requirements: list[Requirement], lock: list[Pin]) -> list[str]:
    """Each requirement the lock leaves out, or pins (under any marker) at a version its specifier refuses."""
    problems = []
    for requirement in requirements:
        pins = pins_of(lock, requirement.name)
        if not pins:
            problems.append(f"{requirement} is not in the lock")
        problems += [
            f"{requirement} is locked at {pin.version}"
            for pin in pins
            if not requirement.specifier.contains(pin.version, prereleases=True)
        ]
    return problems


@pytest.mark.parametrize(
    ("what", "requirements", "lock"),
    [
        ("runtime dependencies in lock.txt", RUNTIME_DEPENDENCIES, LOCK),
        ("dev dependencies in lock.txt", DEV_DEPENDENCIES, LOCK),
        ("build backend in lock.txt", BUILD_DEPENDENCIES, LOCK),
        ("runtime dependencies in runtime.txt", RUNTIME_DEPENDENCIES, RUNTIME),
        ("build backend in runtime.txt", BUILD_DEPENDENCIES, RUNTIME),
    ],
)
def test_every_dependency_of_pyproject_is_locked_at_a_version_it_allows(
    what: str, requirements: list[Requirement], lock: list[Pin]
) -> None:
    assert unmet(requirements, lock) == [], f"{what}: run `make lock` after editing pyproject.toml"


def test_a_dependency_the_lock_does_not_satisfy_is_caught() -> None:
    fastapi = pins_of(LOCK, "fastapi")[0]
    assert unmet([Requirement(f"fastapi>{fastapi.version}")], LOCK) == [
        f"fastapi>{fastapi.version} is locked at {fastapi.version}"
    ]
    assert unmet([Requirement("a-package-nobody-locked>=1")], LOCK) == ["a-package-nobody-locked>=1 is not in the lock"]


def test_the_lock_names_as_direct_only_what_pyproject_asks_for() -> None:
    """A dependency taken out of pyproject.toml without `make lock` would stay installed: caught by its annotation."""
    asked = {canonicalize_name(r.name) for r in RUNTIME_DEPENDENCIES + DEV_DEPENDENCIES}
    direct = {pin.name for pin in LOCK if "kaquan (pyproject.toml)" in pin.via}
    assert direct == asked
    runtime_direct = {pin.name for pin in RUNTIME if "kaquan (pyproject.toml)" in pin.via}
    assert runtime_direct == {canonicalize_name(r.name) for r in RUNTIME_DEPENDENCIES}


@pytest.mark.parametrize("name", ["lock.txt", "runtime.txt", "uv.txt"])
def test_every_pin_carries_sha256_hashes(name: str) -> None:
    pins = read_lock(REQUIREMENTS / name)
    assert pins
    for pin in pins:
        assert pin.hashes, f"{pin.name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin


def test_the_image_installs_the_same_versions_as_the_tests_ran_with() -> None:
    locked = {(pin.name, pin.marker): pin.version for pin in LOCK}
    assert {(pin.name, pin.marker): pin.version for pin in RUNTIME}.items() <= locked.items()
    assert not {"pytest", "hypothesis", "mypy", "ruff", "playwright", "schemathesis"} & {pin.name for pin in RUNTIME}


def test_build_in_is_pyprojects_build_backend() -> None:
    lines = (REQUIREMENTS / "build.in").read_text(encoding="utf-8").splitlines()
    listed = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert [str(r) for r in listed] == [str(r) for r in BUILD_DEPENDENCIES]


@pytest.mark.parametrize("name", ["lock.txt", "runtime.txt", "uv.txt"])
def test_the_files_say_how_they_are_written(name: str) -> None:
    head = (REQUIREMENTS / name).read_text(encoding="utf-8").splitlines()[:2]
    assert head == ["# This file was autogenerated by uv via the following command:", "#    make lock"]
