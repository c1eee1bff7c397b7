"""Partner configuration: one partner identity per region, the cloud, and where tokens are kept.

Read from a TOML file (``$CSPGRAPH_CONFIG`` or ``~/.config/cspgraph/config.toml``) and overlaid
with ``CSPGRAPH_*`` environment variables: ``CSPGRAPH_CLOUD``, ``CSPGRAPH_EMULATOR``,
``CSPGRAPH_TOKEN_CACHE``, … for top-level keys and ``CSPGRAPH_REGIONS__EU__CLIENT_ID`` (``__``
between levels) for nested ones. Every validation error names the key, what was expected and how to
fix it. Secrets are never part of the configuration itself: a region names where its credential is
(an environment variable, a file, a certificate) and the credential is read only when a token is
needed.

Example::

    cloud = "global"
    token_cache = "~/.cache/cspgraph/tokens.json"

    [regions.NA]
    partner_tenant = "partner.onmicrosoft.com"
    client_id = "6731de76-14a6-49ae-97bc-6eba6914391e"
    client_secret_env = "CSPGRAPH_SECRET_NA"

    [regions.EU]
    partner_tenant = "partner-eu.onmicrosoft.com"
    client_id = "0f4d3c2b-8a91-4f6e-b7d5-2c1e9a8b7f60"
    certificate_file = "eu-app.pem"           # private key + certificate, PEM
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import secrets
import stat
import time
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from cspgraph.clouds import Cloud, CloudName, cloud
from cspgraph.customer_ref import is_domain, is_guid
from cspgraph.emulator_endpoints import EmulatorEndpoints, EndpointsFileError
from cspgraph.http.redaction import remember_secret

log = logging.getLogger(__name__)

ENV_PREFIX = "CSPGRAPH_"
CONFIG_ENV = "CSPGRAPH_CONFIG"
MEMORY = "memory"
EXAMPLE_GUID = "6731de76-14a6-49ae-97bc-6eba6914391e"


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cspgraph" / "config.toml"


def config_origin(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """How the configuration file is named: ``"given"`` (a path passed in, e.g. ``--config``),
    ``"$CSPGRAPH_CONFIG"``, or ``"default"``."""
    env = os.environ if env is None else env
    if path is not None:
        return "given"
    return f"${CONFIG_ENV}" if env.get(CONFIG_ENV) else "default"


def describe_config_path(file: Path, origin: str = "given") -> str:
    """The file, and where its name came from when the user did not type it: messages about a
    configuration nobody named on the command line must say which one they mean."""
    if origin == "default":
        return f"{file} (the default configuration path)"
    if origin.startswith("$"):
        return f"{file} (from {origin})"
    return str(file)


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cspgraph"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which key and how to fix it."""


# -- the file's schema -----------------------------------------------------------------------------

_GUID_FIX = (
    "expected a GUID like {example}; set it to your partner-managed app's "
    "Application (client) ID (Entra admin center → App registrations → Overview)"
)
_HINTS = {
    "partner_tenant": "set it to this region's partner tenant: its domain "
    "(partner.onmicrosoft.com) or its tenant ID",
    "client_id": "set it to your partner-managed app's Application (client) ID",
    "regions": "run `cspgraph setup --region NA --tenant <your partner tenant>`, which registers "
    "the region's partner-managed app and writes its [regions.NA] section (one per region you "
    "sell in: partner_tenant, client_id and a credential)",
}


def _https_url(value: str, key: str) -> str:
    if not re.match(r"^https://[^/\s]+$", value.rstrip("/")):
        raise ValueError(
            f"expected an https URL of a host like https://login.microsoftonline.com "
            f"(no path), got {value!r}; {key} must be reachable over HTTPS"
        )
    return value.rstrip("/")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostsConfig(_Model):
    """Explicit locations of the cloud's services (a proxy, a private endpoint)."""

    login: str | None = None
    graph: str | None = None
    partner_center: str | None = None
    ca_bundle: str | None = None

    @field_validator("login", "graph", "partner_center")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _https_url(value, "the host")


class RegionConfig(_Model):
    """The partner identity (partner tenant + partner-managed app) that serves one region."""

    partner_tenant: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    certificate_file: str | None = None
    certificate_password_env: str | None = None
    # Other `tenant_region_scope` values this identity serves besides the section's own name.
    serves: list[str] = []

    @field_validator("partner_tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        value = value.strip().lower()
        if is_guid(value) or is_domain(value):
            return value
        raise ValueError(
            f"expected a domain like partner.onmicrosoft.com or a tenant ID (GUID), got "
            f"{value!r}; {_HINTS['partner_tenant']}"
        )

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not is_guid(value.strip()):
            raise ValueError(_GUID_FIX.format(example=EXAMPLE_GUID))
        return value.strip().lower()

    @field_validator("client_secret_env", "certificate_password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(
                "expected the NAME of an environment variable like CSPGRAPH_SECRET_NA, got "
                "something else; never put the secret itself in the configuration"
            )
        return value

    @field_validator("serves", mode="before")
    @classmethod
    def _serves(cls, value: Any) -> Any:
        if isinstance(value, str):  # from an environment variable: comma-separated
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> RegionConfig:
        given = [
            k
            for k in ("client_secret_env", "client_secret_file", "certificate_file")
            if getattr(self, k)
        ]
        if len(given) != 1:
            what = "none is set" if not given else f"{' and '.join(given)} are all set"
            raise ValueError(
                f"exactly one credential is needed, but {what}; set client_secret_env "
                '= "CSPGRAPH_SECRET_<REGION>" (an environment variable holding the secret), '
                "client_secret_file (a file readable only by you), or certificate_file "
                "(a PEM with the private key and the certificate: what Microsoft recommends)"
            )
        if self.certificate_password_env and not self.certificate_file:
            raise ValueError("certificate_password_env is set without certificate_file")
        return self


class ConfigModel(_Model):
    cloud: CloudName = "global"
    emulator: str | None = None  # a running emulator's endpoints file
    hosts: HostsConfig | None = None
    token_cache: str = "~/.cache/cspgraph/tokens.json"  # or "memory"
    discovery_cache: str = "~/.cache/cspgraph/discovery.json"  # or "memory"
    discovery_ttl: int = 86400  # seconds a tenant's region is trusted
    # Seconds a token or discovery request may take before it is abandoned and retried, and how
    # many times a transient failure of one is retried (docs/configuration.md).
    token_timeout: float = 30.0
    token_retries: int = 6
    # A partner service account's sign-in (the Secure Application Model), Fernet-encrypted with
    # its key in "<file>.key" (both 0600): GDAP customers the app cannot reach are synced with
    # its delegated tokens (docs/gdap.md). None: no service account.
    service_account_cache: str | None = None
    regions: dict[str, RegionConfig] = {}

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: dict[str, RegionConfig]) -> dict[str, RegionConfig]:
        seen: dict[str, str] = {}
        for name, region in value.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", name):
                raise ValueError(
                    f"region name {name!r}: expected the tenant_region_scope it serves, "
                    "like NA, EU, AS, OC"
                )
            for scope in [name, *region.serves]:
                other = seen.setdefault(scope.upper(), name)
                if other != name:
                    raise ValueError(
                        f"region scope {scope.upper()} is served by both regions.{other} and "
                        f"regions.{name}; remove it from one of them"
                    )
        return value

    @field_validator("discovery_ttl")
    @classmethod
    def _ttl(cls, value: int) -> int:
        if value < 0:
            raise ValueError("expected a number of seconds, 0 or more (86400 = one day)")
        return value

    @field_validator("token_retries")
    @classmethod
    def _token_retries(cls, value: int) -> int:
        if not 0 <= value <= 20:
            raise ValueError("expected a number of retries from 0 to 20 (default 6)")
        return value

    @field_validator("token_timeout")
    @classmethod
    def _token_timeout(cls, value: float) -> float:
        if not 0 < value <= 600:  # also refuses NaN
            raise ValueError("expected a number of seconds above 0 and at most 600 (default 30)")
        return value

    @model_validator(mode="after")
    def _one_location(self) -> ConfigModel:
        if self.emulator and self.hosts:
            raise ValueError(
                "both emulator and [hosts] are set; keep one: emulator takes every host "
                "and the CA bundle from the emulator's endpoints file"
            )
        return self


# -- credentials -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ClientCredential:
    """A partner-managed app's credential, loaded for use. Its repr never shows the secret."""

    kind: Literal["secret", "certificate"]
    _secret: str | None = field(default=None, repr=False)
    _private_key_pem: str | None = field(default=None, repr=False)
    certificate_pem: str | None = None
    thumbprint_sha256: str | None = None  # hex, as the Entra admin center shows it

    def __repr__(self) -> str:
        if self.kind == "certificate":
            return f"ClientCredential(certificate, sha256={self.thumbprint_sha256})"
        return "ClientCredential(secret)"

    def for_msal(self) -> str | dict[str, str]:
        """MSAL's `client_credential`. For a certificate MSAL 1.35+ derives the SHA-256
        thumbprint from `public_certificate` and signs with PS256 + `x5t#S256`."""
        if self.kind == "secret":
            assert self._secret is not None
            return self._secret
        assert self._private_key_pem is not None and self.certificate_pem is not None
        return {"private_key": self._private_key_pem, "public_certificate": self.certificate_pem}

    def token_form(self, client_id: str, token_endpoint: str) -> dict[str, str]:
        """The client-authentication fields of a token request made without MSAL (v1)."""
        if self.kind == "secret":
            assert self._secret is not None
            return {"client_secret": self._secret}
        return {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self._assertion(client_id, token_endpoint),
        }

    def _assertion(self, client_id: str, audience: str) -> str:
        # Lazy on purpose: PyJWT and cryptography (~20 ms) serve certificate credentials only.
        import jwt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        assert self._private_key_pem is not None and self.certificate_pem is not None
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        x5t_s256 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
        der = cert.public_bytes(serialization.Encoding.DER)
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        }
        headers = {"x5t#S256": x5t_s256, "x5c": [base64.b64encode(der).decode()]}
        return jwt.encode(claims, self._private_key_pem, algorithm="PS256", headers=headers)


def _not_utf8(label: str, exc: UnicodeDecodeError) -> str:
    return f"{label}: not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8"


def _read_secret_file(path: Path, key: str) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key}: " + _not_utf8(str(path), exc)) from None
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot read {path} ({exc.strerror}); create it with only the secret "
            f"value in it and `chmod 600 {path}`"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: %s is readable by other users; run `chmod 600 %s`", key, path, path)
    if not text:
        raise ConfigError(f"{key}: {path} is empty; put the client secret value in it")
    return text


def _load_certificate(path: Path, password: str | None, key: str) -> ClientCredential:
    # Lazy on purpose: cryptography (~15 ms) serves certificate credentials only.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot read {path} ({exc.strerror}); expected a PEM file holding the "
            "app's private key and its certificate"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigError(
            f"{key}: {path} holds no PEM certificate; expected the private key and the "
            "certificate in one file (cat key.pem cert.pem > app.pem)"
        ) from None
    try:
        private_key = serialization.load_pem_private_key(
            data, password=password.encode() if password else None
        )
    except TypeError:
        raise ConfigError(
            f"{key}: the private key in {path} is encrypted; set certificate_password_env "
            "to the name of an environment variable holding its password"
        ) from None
    except ValueError:
        raise ConfigError(
            f"{key}: {path} holds no usable private key (or the password is wrong); expected "
            "the private key and the certificate in one PEM file"
        ) from None
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ClientCredential(
        kind="certificate",
        _private_key_pem=pem,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
    )


# -- the loaded configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerIdentity:
    """One region's partner tenant and partner-managed app, as the token layer uses it."""

    region: str
    partner_tenant: str
    client_id: str
    settings: RegionConfig = field(repr=False, compare=False)
    base_dir: Path = field(repr=False, compare=False, default=Path("."))
    env: Mapping[str, str] = field(repr=False, compare=False, default_factory=lambda: os.environ)

    @property
    def scopes(self) -> frozenset[str]:
        """The `tenant_region_scope` values this identity serves."""
        return frozenset(s.upper() for s in [self.region, *self.settings.serves])

    @property
    def credential_source(self) -> str:
        """Where the credential comes from, for display (never the credential itself)."""
        s = self.settings
        if s.client_secret_env:
            state = "set" if self.env.get(s.client_secret_env) else "NOT SET"
            return f"secret from ${s.client_secret_env} ({state})"
        if s.client_secret_file:
            return f"secret from file {self._path(s.client_secret_file)}"
        return f"certificate from {self._path(s.certificate_file or '')}"

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def credential(self) -> ClientCredential:
        """Read the credential now (from the environment, a file, a certificate)."""
        s = self.settings
        where = f"regions.{self.region}"
        if s.client_secret_env:
            secret = self.env.get(s.client_secret_env, "")
            if not secret:
                raise ConfigError(
                    f"{where}.client_secret_env: the environment variable "
                    f"{s.client_secret_env} is not set; export it with the client secret "
                    "value of the partner-managed app"
                )
            remember_secret(secret)  # masked in every log line from now on
            return ClientCredential(kind="secret", _secret=secret)
        if s.client_secret_file:
            secret = _read_secret_file(
                self._path(s.client_secret_file), f"{where}.client_secret_file"
            )
            remember_secret(secret)  # masked in every log line from now on
            return ClientCredential(kind="secret", _secret=secret)
        password = None
        if s.certificate_password_env:
            password = self.env.get(s.certificate_password_env)
            if not password:
                raise ConfigError(
                    f"{where}.certificate_password_env: the environment variable "
                    f"{s.certificate_password_env} is not set; export it with the password of "
                    "the private key"
                )
        assert s.certificate_file is not None
        return _load_certificate(
            self._path(s.certificate_file), password, f"{where}.certificate_file"
        )


@dataclass(frozen=True)
class Config:
    """A validated configuration and what it resolves to."""

    model: ConfigModel
    source: Path | None = None  # the file it came from, if any
    origin: str = "given"  # how that file was named: see config_origin()
    env: Mapping[str, str] = field(repr=False, default_factory=lambda: os.environ)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def path(self, value: str) -> Path:
        """A path from the file: `~` expanded, relative to the file's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def identities(self) -> dict[str, PartnerIdentity]:
        return {
            name: PartnerIdentity(
                region=name,
                partner_tenant=r.partner_tenant,
                client_id=r.client_id,
                settings=r,
                base_dir=self.base_dir,
                env=self.env,
            )
            for name, r in self.model.regions.items()
        }

    def identity_for_scope(self, region_scope: str) -> PartnerIdentity | None:
        """The partner identity serving a `tenant_region_scope`, if one is configured."""
        wanted = region_scope.upper()
        for identity in self.identities.values():
            if wanted in identity.scopes:
                return identity
        return None

    def region_identity(self, region: str | None = None) -> PartnerIdentity:
        """The partner identity of a configured region (any case); ``None``: the only one."""
        identities = self.identities
        if region is None:
            if len(identities) == 1:
                return next(iter(identities.values()))
            raise ConfigError(
                f"several regions are configured ({', '.join(sorted(identities))}); pick one "
                "with --region"
            )
        for name, identity in identities.items():
            if name.lower() == region.lower():
                return identity
        raise ConfigError(
            f"regions.{region}: not configured (configured: {', '.join(sorted(identities))}); "
            f"run `cspgraph setup --region {region}` first"
        )

    @property
    def token_cache_path(self) -> Path | None:
        value = self.model.token_cache
        return None if value == MEMORY else self.path(value)

    @property
    def service_account_cache_path(self) -> Path | None:
        value = self.model.service_account_cache
        return None if value is None else self.path(value)

    @property
    def discovery_cache_path(self) -> Path | None:
        value = self.model.discovery_cache
        return None if value == MEMORY else self.path(value)

    def emulator_endpoints(self) -> EmulatorEndpoints | None:
        """The running emulator's endpoints, when the configuration points at one."""
        if not self.model.emulator:
            return None
        try:
            return EmulatorEndpoints.read(self.path(self.model.emulator))
        except EndpointsFileError as exc:
            raise ConfigError(f"emulator: {exc}") from None

    def cloud(self) -> Cloud:
        """The cloud with its hosts: built-in, explicit [hosts], or a running emulator's."""
        base = cloud(self.model.cloud)
        endpoints = self.emulator_endpoints()
        if endpoints is not None:
            return base.with_hosts(**endpoints.hosts())
        hosts = self.model.hosts
        if hosts is None:
            return base
        return base.with_hosts(
            login=hosts.login,
            graph=hosts.graph,
            partner_center=hosts.partner_center,
            ca_bundle=str(self.path(hosts.ca_bundle)) if hosts.ca_bundle else None,
        )


# -- loading ---------------------------------------------------------------------------------------

_TOP_LEVEL_ENV = (
    "cloud",
    "emulator",
    "token_cache",
    "discovery_cache",
    "discovery_ttl",
    "token_timeout",
    "token_retries",
)


def env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The configuration keys set by CSPGRAPH_* variables, and which variable set each key.

    A variable names a top-level key (CSPGRAPH_CLOUD) or a nested one with `__` between levels
    (CSPGRAPH_REGIONS__EU__CLIENT_ID). Anything else with the prefix (CSPGRAPH_CONFIG, the secret
    variables a region points at) is not configuration and is left alone.
    """
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        if len(parts) == 1 and parts[0].lower() not in _TOP_LEVEL_ENV:
            continue
        keys = [p.lower() for p in parts]
        if keys[0] == "regions" and len(keys) > 1:
            keys[1] = parts[1]  # region names keep their case: NA, EU
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[keys[-1]] = env[name]
            origins[tuple(keys)] = name
    return data, origins


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        existing = _find_key(out, key) if isinstance(value, dict) else None
        if isinstance(value, dict) and existing is not None and isinstance(out[existing], dict):
            out[existing] = _merge(out[existing], value)
        else:
            out[_find_key(out, key) or key] = value
    return out


def _find_key(mapping: dict[str, Any], key: str) -> str | None:
    """The key already in the mapping that `key` means (region names match case-insensitively)."""
    if key in mapping:
        return key
    for existing in mapping:
        if existing.lower() == key.lower():
            return existing
    return None


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    required: bool = False,
) -> Config:
    """Load and validate the configuration.

    ``path`` defaults to ``$CSPGRAPH_CONFIG`` or ``~/.config/cspgraph/config.toml``. A missing
    default file is fine (the environment may say everything); a missing explicit file, or any
    missing file with ``required``, is an error that says how to create one.
    """
    env = os.environ if env is None else env
    origin = config_origin(path, env)
    explicit = origin != "default"
    file = Path(path).expanduser() if path is not None else default_config_path(env)
    label = describe_config_path(file, origin)
    data: dict[str, Any] = {}
    source: Path | None = None
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        source = file.resolve()
    except FileNotFoundError:
        if explicit or required:
            raise ConfigError(
                f"{label}: no such configuration file; create one with `cspgraph config init"
                f"{' --config ' + str(file) if origin == 'given' else ''}` (or "
                "`cspgraph setup`, which writes the region it sets up)"
            ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(_not_utf8(label, exc)) from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it: {exc.strerror}") from None
    if source is not None:
        label = describe_config_path(source, origin)
    overrides, origins = env_overrides(env)
    merged = _merge(data, overrides)
    try:
        model = ConfigModel.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, label, origins)) from None
    config = Config(model=model, source=source, env=env, origin=origin)
    if not model.regions:
        raise ConfigError(f"{label}: regions: no region is configured; {_HINTS['regions']}")
    return config


def config_from_data(
    data: dict[str, Any], *, base_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """A configuration from a dict (tests, programs that keep settings elsewhere)."""
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, None, {})) from None
    source = (base_dir / "config.toml") if base_dir else None
    return Config(model=model, source=source, env=os.environ if env is None else env)


@dataclass
class ConfigFile:
    """A configuration file as set-up reads and edits it.

    Set-up runs before the file is complete (the region it sets up may be missing or half
    written), so the file is kept as data: :meth:`cloud` validates what set-up needs first (the
    cloud, its hosts, an emulator), :meth:`region` reads one region's entry as written, and
    :meth:`with_region` validates the whole file with a region replaced before :meth:`save`
    writes it (0600, atomically)."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def read(
        cls, path: str | Path | None = None, *, env: Mapping[str, str] | None = None
    ) -> ConfigFile:
        """The file at ``path`` (default: ``$CSPGRAPH_CONFIG`` or the default path); a missing
        file is an empty one."""
        file = Path(path).expanduser() if path is not None else default_config_path(env)
        label = describe_config_path(file, config_origin(path, env))
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{label}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(_not_utf8(label, exc)) from None
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read it: {exc.strerror}") from None
        return cls(file, data)

    def settings(self) -> Config:
        """Everything the file says but its regions (the cloud, its hosts, an emulator, the
        caches), validated, whatever state its regions are in."""
        rest = {k: v for k, v in self.data.items() if k != "regions"}
        return config_from_data(rest, base_dir=self.path.parent)

    def cloud(self) -> Cloud:
        """The cloud and hosts the file names, whatever state its regions are in."""
        return self.settings().cloud()

    def region_key(self, region: str) -> str:
        """How the file spells ``region`` (any case), or ``region`` when it has no such entry."""
        regions = self.data.get("regions")
        names = regions if isinstance(regions, dict) else {}
        return next((k for k in names if k.lower() == region.lower()), region)

    def region(self, region: str) -> dict[str, Any]:
        """The region's entry as written (any case); empty when there is none."""
        regions = self.data.get("regions")
        entry = regions.get(self.region_key(region)) if isinstance(regions, dict) else None
        return dict(entry) if isinstance(entry, dict) else {}

    def with_region(self, region: str, entry: dict[str, Any]) -> ConfigFile:
        """A copy with the region's entry replaced, validated as a whole configuration."""
        data = {k: (dict(v) if k == "regions" and isinstance(v, dict) else v)
                for k, v in self.data.items()}  # fmt: skip
        regions = data.setdefault("regions", {})
        regions[self.region_key(region)] = dict(entry)
        try:
            ConfigModel.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                f"{self.path}: the configuration would not be valid with regions.{region} "
                f"({exc.errors()[0]['msg']}); fix the file and run set-up again"
            ) from None
        return ConfigFile(self.path, data)

    def save(self) -> None:
        # Lazy on purpose: only set-up writes a configuration, and tomli_w is set-up's alone.
        import tomli_w

        write_private_file(self.path, tomli_w.dumps(self.data))


def _describe(
    exc: ValidationError, source: str | None, origins: Mapping[tuple[str, ...], str]
) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"])
        key = ".".join(loc) or "(top level)"
        origin = origins.get(tuple(p.lower() if i != 1 else p for i, p in enumerate(loc)))
        where = f"{key} (from ${origin})" if origin else key
        lines.append(f"{where}: {_explain(error, loc)}")
    head = f"{source}: " if source else ""
    if len(lines) == 1:
        return head + lines[0]
    return head + f"{len(lines)} problems:\n  " + "\n  ".join(lines)


def _explain(error: Any, loc: tuple[str, ...]) -> str:
    kind = error["type"]
    leaf = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = _allowed_keys(parent)
        return f"unknown key; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        hint = _HINTS.get(leaf)
        return "required key is missing" + (f"; {hint}" if hint else "")
    if kind == "literal_error" and leaf == "cloud":
        return f"expected one of global, usgov, china; got {error.get('input')!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    hint = _HINTS.get(leaf)
    if hint and hint not in message:
        message += f"; {hint}"
    return message


def _allowed_keys(parent: tuple[str, ...]) -> list[str]:
    if not parent:
        return list(ConfigModel.model_fields)
    if parent[0] == "hosts":
        return list(HostsConfig.model_fields)
    if parent[0] == "regions":
        return list(RegionConfig.model_fields)
    return []


def write_private_file(path: Path, text: str | bytes, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path`` readable by the owner only, replacing it atomically; with
    ``exclusive``, refuse (FileExistsError) when something, even a link, is at ``path`` already.

    The temporary file is created with mode 0600 from the start (never briefly wider), and the
    parent directory is created 0700 when missing. A link at ``path`` is replaced, never
    followed: the file it points to is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A fresh name, created here or not at all (O_EXCL, never through a link): a file or link
    # somebody placed at a predictable name cannot receive the secret.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # fails when anything is at path: nothing there is overwritten
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
