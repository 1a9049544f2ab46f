"""The container image, the compose file and the systemd units in deploy/ name only what kaquan has.

No container runtime runs here, so these files are checked by reading them: every service, command,
option, setting and probe they name must be one kaquan really has, and the topology must be the one
deploy/cluster/up.sh runs. HAProxy's configuration is checked by `haproxy -c` and the units by
`systemd-analyze verify` where those programs are installed.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address, ip_network
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import typer.core
import typer.main
import yaml

from kaquan.cli.app import app
from kaquan.kit.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONTAINER = DEPLOY / "container"
SYSTEMD = DEPLOY / "systemd"
KAQUAN_SERVICES = {"migrate", "serve-1", "serve-2", "worker"}


def _cli() -> typer.core.TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


CLI = _cli()


def known_settings() -> set[str]:
    """Every KAQUAN_* name kaquan reads: the Settings fields, the CLI's own (KAQUAN_HOST, KAQUAN_PORT) and the
    few that src/ reads straight from the environment (KAQUAN_LOG_FORMAT)."""
    names = {f"KAQUAN_{field.upper()}" for field in Settings.model_fields}
    for path in (ROOT / "src" / "kaquan").rglob("*.py"):
        names.update(re.findall(r"environ(?:\.get\(|\[)\"(KAQUAN_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    for command in CLI.commands.values():
        for param in command.params:
            if isinstance(param, typer.core.TyperOption) and isinstance(param.envvar, str):
                names.add(param.envvar)
    return names


def option_names(command: str) -> set[str]:
    return {name for param in CLI.commands[command].params for name in getattr(param, "opts", [])} | {
        name for param in CLI.commands[command].params for name in getattr(param, "secondary_opts", [])
    }


def env_file(path: Path) -> dict[str, str]:
    """NAME=value lines, as compose's .env and systemd's EnvironmentFile= read them."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_the_settings_checked_against_are_kaquans() -> None:
    names = known_settings()
    assert {"KAQUAN_DATABASE_URL", "KAQUAN_MASTER_KEY", "KAQUAN_PORT", "KAQUAN_HOST", "KAQUAN_LOG_FORMAT"} <= names
    assert "KAQUAN_DB_PASSWORD" not in names


# The image -------------------------------------------------------------------------------------------------


def containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (CONTAINER / "Containerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_is_python_311_slim_installing_the_runtime_lock_with_hashes() -> None:
    steps = containerfile()
    assert [args.split()[0] for name, args in steps if name == "FROM"] == ["python:3.11-slim", "python:3.11-slim"]
    runs = [args for name, args in steps if name == "RUN"]
    assert any("--require-hashes" in run and "-r /src/requirements/runtime.txt" in run for run in runs)
    assert any("--no-deps --no-build-isolation" in run for run in runs)
    assert not any("pip install" in run and "--require-hashes" not in run and "--no-deps" not in run for run in runs)
    for name, args in steps:
        if name == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_the_image_runs_kaquan_serve_as_a_user_that_is_not_root() -> None:
    steps = dict(containerfile())
    assert steps["USER"] not in {"root", "0"}
    assert steps["ENTRYPOINT"] == '["kaquan"]'
    assert steps["CMD"] == '["serve"]'
    env = dict(re.findall(r"(\w+)=(\S+)", steps["ENV"]))
    assert {name for name in env if name.startswith("KAQUAN_")} <= known_settings()
    assert steps["EXPOSE"] == env["KAQUAN_PORT"]
    assert env["KAQUAN_HOST"] == "0.0.0.0"  # noqa: S104 - inside a container the published port is the boundary
    assert "/healthz" in steps["HEALTHCHECK"]


def test_the_build_context_leaves_out_everything_but_what_the_image_copies() -> None:
    patterns = [
        line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line and line[0] != "#"
    ]
    assert patterns[0] == "*"
    assert {"!requirements/runtime.txt", "!pyproject.toml", "!README.md", "!src/"} <= set(patterns)
    assert not any(p.startswith("!") and ("var" in p or ".env" in p) for p in patterns)


@pytest.fixture
def healthz_server(tmp_path: Path) -> Iterator[int]:
    """An HTTP server answering 200 at /healthz and 404 elsewhere, on a free port."""
    (tmp_path / "healthz").write_text("ok")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


def test_the_image_healthcheck_asks_healthz_on_kaquans_port(healthz_server: int) -> None:
    exec_form = dict(containerfile())["HEALTHCHECK"].split(" CMD ", 1)[1]
    command = yaml.safe_load(exec_form)  # a JSON array
    assert command[0] == "python"
    check = [sys.executable, *command[1:]]

    healthy = subprocess.run(  # noqa: S603 - this interpreter running the image's own check
        check, env={**os.environ, "KAQUAN_PORT": str(healthz_server)}, timeout=30, check=False
    )
    assert healthy.returncode == 0

    with socket.socket() as spare:  # a port nothing listens on
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
    unhealthy = subprocess.run(  # noqa: S603 - as above
        check, env={**os.environ, "KAQUAN_PORT": str(closed)}, capture_output=True, timeout=30, check=False
    )
    assert unhealthy.returncode != 0


# The compose file ------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONTAINER / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def test_compose_runs_the_clusters_topology() -> None:
    services = compose()["services"]
    assert set(services) == {"pg-primary", "pg-replica", "redis", "haproxy"} | KAQUAN_SERVICES
    assert {name: services[name]["command"] for name in KAQUAN_SERVICES} == {
        "migrate": ["migrate"],
        "serve-1": ["serve", "--no-worker"],
        "serve-2": ["serve", "--no-worker"],
        "worker": ["worker"],
    }
    for name in KAQUAN_SERVICES:
        assert services[name]["command"][0] in CLI.commands
        assert set(services[name]["command"][1:]) <= option_names(services[name]["command"][0])
        assert services[name]["build"]["dockerfile"] == "deploy/container/Containerfile"
        assert (CONTAINER / services[name]["build"]["context"] / "deploy/container/Containerfile").exists()
    assert services["migrate"]["restart"] == "no"
    for name in KAQUAN_SERVICES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["depends_on"]["pg-primary"] == {"condition": "service_healthy"}
    assert "migrate" not in services["migrate"]["depends_on"]


def test_compose_gives_kaquan_only_settings_kaquan_has_pointing_at_its_own_services() -> None:
    document = compose()
    services = document["services"]
    for name in KAQUAN_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) <= known_settings(), set(environment) - known_settings()
    environment = services["serve-1"]["environment"]
    assert (
        "host=pg-primary:5432&host=pg-replica:5432&target_session_attrs=read-write"
        in (environment["KAQUAN_DATABASE_URL"])
    )
    assert "@pg-replica:5432/kaquan" in environment["KAQUAN_READ_DATABASE_URL"]
    assert environment["KAQUAN_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["KAQUAN_READY_WORKER_MAX_AGE_S"] == "0"
    haproxy = ip_address(services["haproxy"]["networks"]["default"]["ipv4_address"])
    assert environment["KAQUAN_TRUSTED_PROXIES"] == str(haproxy)
    assert haproxy in ip_network(document["networks"]["default"]["ipam"]["config"][0]["subnet"])


def test_every_variable_compose_needs_is_in_the_example_and_every_example_is_used() -> None:
    text = (CONTAINER / "compose.yaml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{(\w+)", text))
    example = env_file(CONTAINER / "kaquan.env.example")
    assert used == set(example)
    assert {name for name in example if name.startswith("KAQUAN_")} <= known_settings()
    assert all(value.startswith("REPLACE") for name, value in example.items() if "PASSWORD" in name or "KEY" in name)


def test_haproxy_sends_traffic_to_the_serve_processes_that_are_ready() -> None:
    config = (CONTAINER / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+) check", config, flags=re.MULTILINE)
    assert {name for name, _, _ in servers} == {"serve-1", "serve-2"}
    assert {(host, port) for _, host, port in servers} == {("serve-1", "8000"), ("serve-2", "8000")}
    assert "option httpchk GET /readyz" in config
    assert "http-check expect status 200" in config
    (published,) = compose()["services"]["haproxy"]["ports"]
    assert f"bind :{published.rsplit(':', 1)[1]}" in config


def test_haproxys_busy_answer_is_kaquans_error_shape() -> None:
    head, _, body = (CONTAINER / "haproxy" / "busy.http").read_bytes().partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert head.startswith(b"HTTP/1.1 503 ")
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Retry-After"] == "2"
    assert yaml.safe_load(body)["error"]["code"] == "busy"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (.ci/run installs it)")
def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    shutil.copy(CONTAINER / "haproxy" / "busy.http", tmp_path / "busy.http")
    config = (CONTAINER / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
    (tmp_path / "haproxy.cfg").write_text(
        config.replace("/usr/local/etc/haproxy/busy.http", str(tmp_path / "busy.http"))
    )
    checked = subprocess.run(  # noqa: S603 - Debian's haproxy on our own file
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("script", ["primary-init.sh", "replica.sh"])
def test_the_postgres_scripts_are_valid_bash(script: str) -> None:
    subprocess.run(["bash", "-n", str(CONTAINER / "postgres" / script)], check=True, timeout=30)  # noqa: S603,S607


# The systemd units -----------------------------------------------------------------------------------------

UNITS = ["kaquan-serve@.service", "kaquan-worker.service", "kaquan-migrate.service"]


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as systemd reads it: sections of key=value lines; a key may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            current = stripped.strip("[]")
            sections[current] = []
        else:
            key, equals, value = stripped.partition("=")
            assert equals and current, f"{name}: {line!r} is neither a section nor key=value"
            sections[current].append((key, value))
    return sections


def values(name: str, section: str, key: str) -> list[str]:
    return [value for k, value in unit(name)[section] if k == key]


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_runs_a_kaquan_command_as_kaquan_hardened(name: str) -> None:
    (exec_start,) = values(name, "Service", "ExecStart")
    program, command, *options = exec_start.split()
    assert program == "/opt/kaquan/bin/kaquan"
    assert command in CLI.commands
    assert {option for option in options if option.startswith("--")} <= option_names(command)
    assert values(name, "Unit", "Description")
    assert values(name, "Service", "User") == ["kaquan"]
    assert values(name, "Service", "EnvironmentFile") == ["/etc/kaquan/kaquan.env"]
    for key, wanted in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "kaquan",
    }.items():
        assert values(name, "Service", key) == [wanted], key
    (environment,) = values(name, "Service", "Environment")
    assert {pair.split("=")[0] for pair in environment.split()} <= known_settings()


def test_serve_takes_its_port_from_the_instance_and_leaves_the_worker_to_its_unit() -> None:
    (exec_start,) = values("kaquan-serve@.service", "Service", "ExecStart")
    assert "--port %i" in exec_start
    assert "--no-worker" in exec_start
    assert values("kaquan-worker.service", "Service", "ExecStart") == ["/opt/kaquan/bin/kaquan worker"]
    assert values("kaquan-migrate.service", "Service", "Type") == ["oneshot"]
    for name in ["kaquan-serve@.service", "kaquan-worker.service"]:
        assert values(name, "Install", "WantedBy") == ["kaquan.target"]
        assert "kaquan-migrate.service" in values(name, "Unit", "After")[0].split()


def test_the_environment_file_example_names_only_kaquans_settings_and_no_real_secret() -> None:
    example = env_file(SYSTEMD / "kaquan.env.example")
    assert set(example) <= known_settings(), set(example) - known_settings()
    assert example["KAQUAN_MASTER_KEY"].startswith("REPLACE")
    assert "REPLACE" in example["KAQUAN_DATABASE_URL"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    kaquan = Path(sys.executable).with_name("kaquan")  # verify wants ExecStart's program to exist
    for path in [*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.target")]:
        text = path.read_text(encoding="utf-8").replace("/opt/kaquan/bin/kaquan", str(kaquan))
        (tmp_path / path.name).write_text(text)
    units = ["kaquan-serve@8001.service", "kaquan-worker.service", "kaquan-migrate.service", "kaquan.target"]
    verified = subprocess.run(  # noqa: S603 - Debian's systemd-analyze on our own units
        ["systemd-analyze", "verify", "--man=no", *units],  # noqa: S607
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [line for line in (verified.stdout + verified.stderr).splitlines() if "kaquan" in line]
    assert verified.returncode == 0 and complaints == [], verified.stdout + verified.stderr
