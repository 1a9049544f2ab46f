"""The WeChat Pay plugin: the merchant's gateway from `KAQUAN_WECHATPAY_*`, or a simulated platform for demos.

Keys are read from files the environment names and never logged; the APIv3
key may be given inline (`KAQUAN_WECHATPAY_APIV3_KEY`) or, better, as a file.
"""

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.routing import Mount

from kaquan.payments.plugins import GatewaySetup, Simulation
from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.gateway import DEFAULT_BASE_URL, METHODS, NAME, Merchant, WechatPayGateway
from kaquan.payments.wechatpay.simulator import WechatPaySimulator

MOUNT = f"/sim/{NAME}"
SIMULATED_MCHID = "1900000109"  # the examples of WeChat Pay's own documentation
SIMULATED_APPID = "wxd678efh567hg6787"


class WechatPayMisconfigured(ValueError):
    """Some KAQUAN_WECHATPAY_* settings are there and others it needs are not: refuse to start half-configured."""


class WechatPaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAQUAN_WECHATPAY_", extra="ignore")

    mchid: str | None = None
    appid: str | None = None
    apiv3_key: SecretStr | None = None
    apiv3_key_file: Path | None = None
    private_key_file: Path | None = None  # apiclient_key.pem
    cert_serial_no: str | None = None  # the merchant API certificate's serial
    platform_public_key_file: Path | None = None  # 微信支付公钥 (pub_key.pem), or a platform certificate
    platform_public_key_id: str | None = None  # PUB_KEY_ID_…, or that certificate's serial
    platform_cert_file: Path | None = None  # a platform certificate (wechatpay_….pem), the older mode
    platform_cert_serial: str | None = None  # defaults to the certificate's own serial
    base_url: str = DEFAULT_BASE_URL
    fee_rate_bp: int = 60
    methods: str = ",".join(METHODS)
    timeout_s: float = 10.0


def merchant_from(settings: WechatPaySettings) -> Merchant | None:
    """The merchant's identity and keys, None when WeChat Pay is not configured at all."""
    if not settings.mchid:
        return None
    missing = [
        name
        for name, present in (
            ("APPID", settings.appid),
            ("APIV3_KEY or APIV3_KEY_FILE", settings.apiv3_key or settings.apiv3_key_file),
            ("PRIVATE_KEY_FILE", settings.private_key_file),
            ("CERT_SERIAL_NO", settings.cert_serial_no),
            (
                "PLATFORM_PUBLIC_KEY_FILE or PLATFORM_CERT_FILE",
                settings.platform_public_key_file or settings.platform_cert_file,
            ),
        )
        if not present
    ]
    if settings.platform_public_key_file and not settings.platform_public_key_id:
        missing.append("PLATFORM_PUBLIC_KEY_ID")
    if missing:
        raise WechatPayMisconfigured("WeChat Pay needs KAQUAN_WECHATPAY_" + ", KAQUAN_WECHATPAY_".join(missing))
    appid, key_file, serial_no = (
        settings.appid or "",
        settings.private_key_file or Path(),
        settings.cert_serial_no or "",
    )
    apiv3 = (
        settings.apiv3_key.get_secret_value()
        if settings.apiv3_key
        else Path(str(settings.apiv3_key_file)).read_text(encoding="ascii").strip()
    ).encode()
    if len(apiv3) != protocol.APIV3_KEY_BYTES:
        raise WechatPayMisconfigured("the WeChat Pay APIv3 key must be 32 characters")
    platform_keys: dict[str, rsa.RSAPublicKey] = {}
    for path, named in (
        (settings.platform_public_key_file, settings.platform_public_key_id),
        (settings.platform_cert_file, settings.platform_cert_serial),
    ):
        if path is None:
            continue
        pem = path.read_bytes()
        serial = protocol.certificate_serial(pem)
        if serial is not None and named is not None and named.upper() != serial:
            raise WechatPayMisconfigured(f"{path} is the certificate {serial}, not {named}")
        key_id = named or serial
        if key_id is None:
            raise WechatPayMisconfigured(
                f"{path} is a bare public key: name it with KAQUAN_WECHATPAY_PLATFORM_PUBLIC_KEY_ID"
            )
        platform_keys[key_id] = protocol.load_public_key(pem)
    return Merchant(
        mchid=settings.mchid,
        appid=appid,
        serial_no=serial_no.upper(),
        private_key=protocol.load_private_key(key_file.read_bytes()),
        apiv3_key=apiv3,
        platform_keys=platform_keys,
    )


@dataclass(frozen=True)
class SimulationKeys:
    """The simulated merchant's key, the simulated platform's key and the APIv3 key they share."""

    merchant_key: rsa.RSAPrivateKey
    platform_key: rsa.RSAPrivateKey
    apiv3_key: bytes

    @property
    def merchant_serial(self) -> str:
        return _fingerprint(self.merchant_key.public_key()).upper()

    @property
    def platform_key_id(self) -> str:
        return "PUB_KEY_ID_" + str(int(_fingerprint(self.platform_key.public_key())[:16], 16)).zfill(20)[:20]

    @classmethod
    def generate(cls) -> "SimulationKeys":
        return cls(_new_rsa(), _new_rsa(), protocol.new_nonce(protocol.APIV3_KEY_BYTES).encode())


def load_or_create_keys(directory: Path) -> SimulationKeys:
    """The simulation's keys, kept in `directory` (mode 0600) so a demo's trades survive a restart of the keys."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {name: directory / name for name in ("merchant_key.pem", "platform_key.pem", "apiv3_key")}
    if not all(path.exists() for path in files.values()):
        keys = SimulationKeys.generate()
        _write_secret(files["merchant_key.pem"], protocol.private_pem(keys.merchant_key))
        _write_secret(files["platform_key.pem"], protocol.private_pem(keys.platform_key))
        _write_secret(files["apiv3_key"], keys.apiv3_key)
        return keys
    return SimulationKeys(
        merchant_key=protocol.load_private_key(files["merchant_key.pem"].read_bytes()),
        platform_key=protocol.load_private_key(files["platform_key.pem"].read_bytes()),
        apiv3_key=files["apiv3_key"].read_bytes().strip(),
    )


def build_simulation(setup: GatewaySetup, keys: SimulationKeys) -> Simulation:
    """A simulated WeChat Pay mounted at /sim/wechatpay of `setup.public_url`, and a gateway talking to it."""
    base_url = setup.public_url.rstrip("/") + MOUNT
    simulator = WechatPaySimulator(
        mchid=SIMULATED_MCHID,
        appid=SIMULATED_APPID,
        apiv3_key=keys.apiv3_key,
        merchant_keys={keys.merchant_serial: keys.merchant_key.public_key()},
        platform_key=keys.platform_key,
        platform_serial=keys.platform_key_id,
        base_url=base_url,
        notify_transport=setup.notify_transport,
    )
    # standing alone, the simulator sits under the same mount as in a demo server, so its URLs are the same
    transport = setup.transport or httpx.ASGITransport(Starlette(routes=[Mount(MOUNT, app=simulator.app)]))
    merchant = Merchant(
        mchid=SIMULATED_MCHID,
        appid=SIMULATED_APPID,
        serial_no=keys.merchant_serial,
        private_key=keys.merchant_key,
        apiv3_key=keys.apiv3_key,
        platform_keys={keys.platform_key_id: keys.platform_key.public_key()},
    )
    gateway = WechatPayGateway(merchant, replace(setup, transport=transport), base_url=base_url)
    return Simulation(gateway=gateway, provider=simulator, mount_path=MOUNT)


class WechatPayPlugin:
    name = NAME
    title = "微信支付"

    def configured(self, setup: GatewaySetup) -> WechatPayGateway | None:
        settings = WechatPaySettings()
        merchant = merchant_from(settings)
        if merchant is None:
            return None
        methods = tuple(method.strip() for method in settings.methods.split(",") if method.strip())
        return WechatPayGateway(
            merchant,
            setup,
            base_url=settings.base_url,
            methods=methods,
            fee_rate_bp=settings.fee_rate_bp,
            timeout_s=settings.timeout_s,
        )

    def simulated(self, setup: GatewaySetup) -> Simulation:
        return build_simulation(setup, load_or_create_keys(setup.state_dir / NAME))


plugin = WechatPayPlugin()


def _new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _fingerprint(key: rsa.RSAPublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha1(der).hexdigest()  # noqa: S324 - a name for the key, like a certificate serial, not a guard


def _write_secret(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
