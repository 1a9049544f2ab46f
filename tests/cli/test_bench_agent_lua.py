"""agent.lua signs open-API requests as kaquan's own signer does: its requests, taken apart here, verify with
`request_signing` (the server's check), each with a nonce of its own and the current time. No server: wrk runs
a small script that loads agent.lua, asks it for requests and prints them, then exits before connecting."""

import hashlib
import hmac
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kaquan.bench import agent_wrk
from kaquan.channels.agents import request_signing

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")

KEYS = [("kq_ak_00112233aabbccdd", "kq_sk_" + "A" * 43), ("kq_ak_99887766ffeeddcc", "kq_sk_" + "b-_9" * 10 + "xyz")]


def lua_requests(tmp_path: Path, batch: int, count: int) -> list[bytes]:
    """`count` requests as agent.lua builds them for wrk, from a script that loads it and prints them."""
    harness = tmp_path / "harness.lua"
    harness.write_text(
        f"dofile({json.dumps(str(agent_wrk.script()))})\n"
        f'init({{"SKU-1", "{batch}", "RUN-abcdef", "unused", '
        + ", ".join(f'"{key_id}:{secret}"' for key_id, secret in KEYS)
        + "})\n"
        f'for _ = 1, {count} do io.write(request(), "\\0") end\n'
        "os.exit(0)\n"
    )
    # wrk loads the script before it connects anywhere: port 9 is never reached
    done = subprocess.run(  # noqa: S603 - our own command
        [shutil.which("wrk") or "wrk", "-t1", "-c1", "-d1s", "-s", str(harness), "http://127.0.0.1:9/"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return done.stdout.split(b"\0")[:-1]


def parsed(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *lines = head.decode().split("\r\n")
    method, path, _ = request_line.split(" ")
    headers = dict(line.split(": ", 1) for line in lines)
    return method, path, headers, body


@pytest.mark.parametrize(("batch", "path"), [(1, "/open/v1/orders"), (50, "/open/v1/orders/batch")])
def test_each_request_verifies_with_kaquans_signer(tmp_path: Path, batch: int, path: str) -> None:
    requests = [parsed(raw) for raw in lua_requests(tmp_path, batch, 4)]
    assert len(requests) == 4
    secrets_by_key = dict(KEYS)
    for n, (method, sent_path, headers, body) in enumerate(requests):
        assert (method, sent_path) == ("POST", path)
        assert headers["X-Kq-Key"] == KEYS[n % 2][0]  # the agents take turns
        assert request_signing.NONCE_PATTERN.fullmatch(headers["X-Kq-Nonce"])
        assert abs(int(headers["X-Kq-Timestamp"]) - time.time()) <= 5
        canonical = request_signing.canonical_string(
            method, sent_path, "", body, headers["X-Kq-Timestamp"], headers["X-Kq-Nonce"]
        )
        expected = request_signing.sign(secrets_by_key[headers["X-Kq-Key"]], canonical)
        assert headers["X-Kq-Signature"] == expected
        orders = [json.loads(body)] if batch == 1 else json.loads(body)["orders"]
        assert len(orders) == batch and {order["sku"] for order in orders} == {"SKU-1"}
    assert len({headers["X-Kq-Nonce"] for _, _, headers, _ in requests}) == 4
    numbers = [order for _, _, _, body in requests for order in body.decode().split('"out_order_no":"')[1:]]
    assert len({number.split('"')[0] for number in numbers}) == 4 * batch  # no order number twice


def test_the_lua_hmac_matches_pythons_for_a_fixed_input(tmp_path: Path) -> None:
    """kq_hmac.lua on a fixed key and a message of several SHA-256 blocks, a key longer than a block too."""
    message = "KQ1-HMAC-SHA256\nPOST\n/open/v1/orders\n\n" + "x" * 200 + "\n1795593600\nnonce-0123456789abcdef"
    short_key, long_key = "kq_sk_" + "Z" * 43, "k" * 100
    harness = tmp_path / "hmac.lua"
    lua_hmac = agent_wrk.script().with_name("kq_hmac.lua")
    harness.write_text(
        f"local kq = dofile({json.dumps(str(lua_hmac))})\n"
        f"local message = {json.dumps(message)}\n"
        f'io.write(kq.hmac_hex("{short_key}")(message), " ", kq.hmac_hex("{long_key}")(message), " ")\n'
        "io.write(kq.sha256_hex(message))\n"
        "os.exit(0)\n"
    )
    done = subprocess.run(  # noqa: S603 - our own command
        [shutil.which("wrk") or "wrk", "-t1", "-c1", "-d1s", "-s", str(harness), "http://127.0.0.1:9/"],
        capture_output=True,
        timeout=30,
        check=True,
        text=True,
    )
    expected = [
        request_signing.sign(short_key, message),
        hmac.new(long_key.encode(), message.encode(), hashlib.sha256).hexdigest(),
        hashlib.sha256(message.encode()).hexdigest(),
    ]
    assert done.stdout.split() == expected
