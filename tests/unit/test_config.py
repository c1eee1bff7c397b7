"""Configuration: TOML + CSPGRAPH_* variables, errors that name the key and the fix, credentials."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from csp_emulator.server import Emulator
from cspgraph.config import (
    ConfigError,
    ConfigFile,
    config_from_data,
    default_config_path,
    env_overrides,
    load_config,
    write_private_file,
)

NA_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
EU_ID = "0f4d3c2b-8a91-4f6e-b7d5-2c1e9a8b7f60"

GOOD = f"""
cloud = "global"
token_cache = "memory"

[regions.NA]
partner_tenant = "Partner.com"
client_id = "{NA_ID}"
client_secret_env = "CSPGRAPH_SECRET_NA"
serves = ["WW"]

[regions.EU]
partner_tenant = "partner-eu.com"
client_id = "{EU_ID}"
client_secret_file = "secrets/EU.secret"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {})
    return str(info.value)


def test_a_good_file_gives_one_identity_per_region(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    na, eu = config.identities["NA"], config.identities["EU"]
    assert (na.partner_tenant, na.client_id) == ("partner.com", NA_ID)
    assert na.scopes == {"NA", "WW"}
    assert config.identity_for_scope("ww") == na
    assert config.identity_for_scope("EU") == eu
    assert config.identity_for_scope("AS") is None
    assert config.token_cache_path is None  # "memory"
    assert config.cloud().login == "https://login.microsoftonline.com"


def test_a_bad_client_id_names_the_key_and_the_fix(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace(EU_ID, "not-a-guid"))
    assert "regions.EU.client_id: expected a GUID like 6731de76-" in message
    assert "set it to your partner-managed app's Application (client) ID" in message
    assert str(tmp_path / "config.toml") in message


def test_credentials_must_be_exactly_one(tmp_path: Path) -> None:
    none = GOOD.replace('client_secret_file = "secrets/EU.secret"', "")
    message = error_of(tmp_path, none)
    assert "regions.EU: exactly one credential is needed, but none is set" in message
    assert "certificate_file" in message
    both = GOOD.replace(
        'client_secret_file = "secrets/EU.secret"',
        'client_secret_file = "x"\ncertificate_file = "y.pem"',
    )
    assert "client_secret_file and certificate_file are all set" in error_of(tmp_path, both)


def test_unknown_keys_list_the_known_ones(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("serves =", "servs ="))
    assert "regions.NA.servs: unknown key; expected one of: partner_tenant, client_id" in message


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = GOOD.replace(NA_ID, "x").replace('cloud = "global"', 'cloud = "mars"')
    message = error_of(tmp_path, text)
    assert "2 problems" in message
    assert "cloud: expected one of global, usgov, china; got 'mars'" in message
    assert "regions.NA.client_id" in message


def test_a_secret_in_place_of_a_variable_name_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace('"CSPGRAPH_SECRET_NA"', '"s3cr3t~value!"'))
    assert "regions.NA.client_secret_env: expected the NAME of an environment variable" in message
    assert "s3cr3t~value!" not in message


def test_a_region_scope_served_twice_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace('serves = ["WW"]', 'serves = ["eu"]'))
    assert "region scope EU is served by both regions.NA and regions.EU" in message


def test_no_regions_says_what_to_add(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'cloud = "global"\n')
    assert "regions: no region is configured" in message
    assert "[regions.NA]" in message


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    env = {
        "CSPGRAPH_CLOUD": "usgov",
        "CSPGRAPH_REGIONS__EU__CLIENT_ID": other,
        "CSPGRAPH_REGIONS__AS__PARTNER_TENANT": "partner-as.com",
        "CSPGRAPH_REGIONS__AS__CLIENT_ID": NA_ID.replace("6", "7"),
        "CSPGRAPH_REGIONS__AS__CLIENT_SECRET_ENV": "CSPGRAPH_SECRET_AS",
        "CSPGRAPH_REGIONS__AS__SERVES": "OC, APAC",
        # not configuration: the secret variables themselves, and the config path
        "CSPGRAPH_SECRET_NA": "never-read-as-config",
        "CSPGRAPH_CONFIG": "/nowhere",
    }
    config = load_config(write(tmp_path, GOOD), env=env)
    assert config.model.cloud == "usgov"
    assert config.identities["EU"].client_id == other
    assert config.identities["AS"].scopes == {"AS", "OC", "APAC"}
    assert set(config.identities) == {"NA", "EU", "AS"}


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    env = {"CSPGRAPH_REGIONS__EU__CLIENT_ID": "nope"}
    message = error_of(tmp_path, GOOD, env)
    assert (
        "regions.EU.client_id (from $CSPGRAPH_REGIONS__EU__CLIENT_ID): expected a GUID" in message
    )


def test_env_overrides_only_take_configuration_keys() -> None:
    data, origins = env_overrides(
        {"CSPGRAPH_TOKEN_CACHE": "memory", "CSPGRAPH_SECRET_NA": "x", "PATH": "/bin"}
    )
    assert data == {"token_cache": "memory"}
    assert origins == {("token_cache",): "CSPGRAPH_TOKEN_CACHE"}


def test_the_default_path_follows_cspgraph_config(tmp_path: Path) -> None:
    assert default_config_path({"CSPGRAPH_CONFIG": str(tmp_path / "c.toml")}) == tmp_path / "c.toml"
    assert default_config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/cspgraph/config.toml")


def test_a_missing_explicit_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file; create one with"):
        load_config(tmp_path / "absent.toml", env={})


ENDPOINTS = {
    "authority_host": "https://127.0.0.1:4001",
    "graph": "https://127.0.0.1:4002",
    "partner_center": "https://127.0.0.1:4003",
    "control": "https://127.0.0.1:4004",
    "ca_bundle": "/state/ca.pem",
}


def test_an_emulator_endpoints_file_gives_hosts_and_ca(tmp_path: Path) -> None:
    write(tmp_path, json.dumps(ENDPOINTS), "endpoints.json")
    config = load_config(write(tmp_path, 'emulator = "endpoints.json"\n' + GOOD), env={})
    cloud = config.cloud()
    assert (cloud.login, cloud.graph, cloud.ca_bundle) == (
        "https://127.0.0.1:4001",
        "https://127.0.0.1:4002",
        "/state/ca.pem",
    )
    assert not cloud.instance_discovery
    missing = load_config(write(tmp_path, 'emulator = "gone.json"\n' + GOOD), env={})
    with pytest.raises(
        ConfigError, match=r"emulator: no endpoints file at .*cspgraph emulator serve"
    ):
        missing.cloud()


def test_explicit_hosts_must_be_https(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD + '\n[hosts]\nlogin = "http://login.example"\n')
    assert "hosts.login: expected an https URL" in message


def test_secret_from_an_unset_variable_says_what_to_export(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    with pytest.raises(ConfigError, match="CSPGRAPH_SECRET_NA is not set; export it"):
        config.identities["NA"].credential()
    assert "NOT SET" in config.identities["NA"].credential_source


def test_secrets_load_and_never_show_in_a_repr(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    write_private_file(tmp_path / "secrets" / "EU.secret", "eu-secret-value\n")
    config = load_config(write(tmp_path, GOOD), env={"CSPGRAPH_SECRET_NA": "na-secret-value"})
    na = config.identities["NA"].credential()
    eu = config.identities["EU"].credential()
    assert na.for_msal() == "na-secret-value"
    assert eu.for_msal() == "eu-secret-value"
    for credential in (na, eu):
        assert "secret-value" not in repr(credential)
        assert "secret-value" not in str(credential)
    assert "secret-value" not in repr(config)


def test_an_empty_or_unreadable_secret_file_is_explained(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    with pytest.raises(ConfigError, match=r"regions\.EU\.client_secret_file: cannot read"):
        config.identities["EU"].credential()
    write_private_file(tmp_path / "secrets" / "EU.secret", "")
    with pytest.raises(ConfigError, match="is empty"):
        config.identities["EU"].credential()


def _certificate(tmp_path: Path, password: bytes | None = None) -> tuple[Path, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cspgraph test app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ) + cert.public_bytes(serialization.Encoding.PEM)
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    return path, cert


CERT_REGION = f"""
[regions.NA]
partner_tenant = "partner.com"
client_id = "{NA_ID}"
certificate_file = "app.pem"
"""


def test_a_certificate_gives_msal_a_sha256_capable_credential(tmp_path: Path) -> None:
    _, cert = _certificate(tmp_path)
    config = load_config(write(tmp_path, CERT_REGION), env={})
    credential = config.identities["NA"].credential()
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    assert credential.thumbprint_sha256 == fingerprint
    assert fingerprint in repr(credential)
    msal_form = credential.for_msal()
    assert isinstance(msal_form, dict)
    # No "thumbprint" key: MSAL 1.35+ then derives SHA-256 from the certificate (PS256, x5t#S256).
    assert set(msal_form) == {"private_key", "public_certificate"}
    assert "PRIVATE KEY" not in repr(credential)
    # The v1 flow signs its own assertion the same way.
    endpoint = "https://login.example/contoso.com/oauth2/token"
    form = credential.token_form(NA_ID, endpoint)
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header["alg"] == "PS256"
    assert "x5t#S256" in header
    claims = jwt.decode(
        form["client_assertion"], cert.public_key(), algorithms=["PS256"], audience=endpoint
    )
    assert claims["iss"] == claims["sub"] == NA_ID


def test_an_encrypted_key_needs_its_password_variable(tmp_path: Path) -> None:
    _certificate(tmp_path, password=b"pem-pass")
    config = load_config(write(tmp_path, CERT_REGION), env={})
    with pytest.raises(ConfigError, match="is encrypted; set certificate_password_env"):
        config.identities["NA"].credential()
    text = CERT_REGION + 'certificate_password_env = "CSPGRAPH_CERT_PASSWORD_NA"\n'
    config = load_config(write(tmp_path, text), env={"CSPGRAPH_CERT_PASSWORD_NA": "pem-pass"})
    assert config.identities["NA"].credential().kind == "certificate"


def test_private_files_are_0600_from_the_start_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "file.json"
    write_private_file(target, "one")
    write_private_file(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]  # no temporary left over


def test_config_from_data_validates_like_a_file() -> None:
    with pytest.raises(ConfigError, match=r"regions\.NA\.partner_tenant: required key is missing"):
        config_from_data({"regions": {"NA": {"client_id": NA_ID, "client_secret_env": "X"}}})


# -- the CLI --------------------------------------------------------------------------------------


def test_config_init_writes_a_starter_that_explains_itself(tmp_path: Path) -> None:
    from cspgraph.cli.config_cmd import app

    runner = CliRunner()
    target = tmp_path / "config.toml"
    result = runner.invoke(app, ["init", "--path", str(target)])
    assert result.exit_code == 0, result.output
    assert "[regions.NA]" in target.read_text()
    again = runner.invoke(app, ["init", "--path", str(target)])
    assert again.exit_code == 2  # bad input (the file exists)
    assert "exists; use --force" in again.output
    # The placeholders are refused with the fix, so `config show` guides the first edit.
    shown = runner.invoke(app, ["show", "--path", str(target)], env={})
    assert shown.exit_code == 2
    assert "regions.NA.client_id: expected a GUID" in shown.output


def test_config_init_from_emulator_keeps_secrets_in_0600_files(
    tmp_path: Path, emulator: Emulator
) -> None:
    from cspgraph.cli.config_cmd import app

    endpoints = emulator.endpoints_file
    target = tmp_path / "cfg" / "config.toml"
    runner = CliRunner()
    result = runner.invoke(app, ["init", "--from-emulator", str(endpoints), "--path", str(target)])
    assert result.exit_code == 0, result.output
    assert "app-secret" not in result.output
    assert "app-secret" not in target.read_text()
    for region in ("NA", "EU"):
        secret = target.parent / "secrets" / f"{region}.secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    shown = runner.invoke(app, ["show", "--path", str(target), "--json"], env={})
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert summary["hosts"]["login"] == emulator.endpoints.authority_host
    assert summary["regions"]["EU"]["client_id"] == EU_ID
    assert "app-secret" not in shown.output
    config = load_config(target, env={})
    assert config.identities["NA"].credential().for_msal() == "app-secret-na"


def test_a_region_is_picked_by_name_in_any_case_or_as_the_only_one(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    assert config.region_identity("eu").region == "EU"
    with pytest.raises(ConfigError, match=r"several regions are configured \(EU, NA\)"):
        config.region_identity()
    with pytest.raises(ConfigError, match=r"regions\.AS: not configured .*cspgraph setup"):
        config.region_identity("AS")
    only = config_from_data({"regions": {"NA": config.model.regions["NA"].model_dump()}})
    assert only.region_identity().region == "NA"


def test_set_up_reads_a_half_written_file_through_the_config_module(tmp_path: Path) -> None:
    write(tmp_path, json.dumps(ENDPOINTS), "endpoints.json")
    # A region named but not set up yet: not a valid configuration, but set-up can start on it.
    path = write(tmp_path, 'emulator = "endpoints.json"\n[regions.na]\npartner_tenant = "p.com"\n')
    file = ConfigFile.read(path)
    assert file.cloud().graph == "https://127.0.0.1:4002"
    assert file.region("NA") == {"partner_tenant": "p.com"} and file.region_key("NA") == "na"
    assert file.region("EU") == {}
    with pytest.raises(ConfigError, match=r"would not be valid with regions\.NA"):
        file.with_region("NA", {"partner_tenant": "p.com", "client_id": "not-a-guid"})
    done = file.with_region(
        "NA", {"partner_tenant": "p.com", "client_id": NA_ID, "client_secret_env": "S"}
    )
    assert file.region("NA") == {"partner_tenant": "p.com"}  # the original is left alone
    done.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path, env={}).identities["na"].client_id == NA_ID
    assert ConfigFile.read(tmp_path / "absent.toml").data == {}
    with pytest.raises(ConfigError, match="not valid TOML"):
        ConfigFile.read(write(tmp_path, "regions = [", "broken.toml"))


def test_an_endpoints_file_without_every_host_is_refused_by_name(tmp_path: Path) -> None:
    write(tmp_path, json.dumps({"authority_host": "https://127.0.0.1:1"}), "endpoints.json")
    config = load_config(write(tmp_path, 'emulator = "endpoints.json"\n' + GOOD), env={})
    with pytest.raises(ConfigError, match="missing graph, partner_center, control, ca_bundle"):
        config.cloud()
