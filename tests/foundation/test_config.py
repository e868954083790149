"""Configuration loading and validation (sscl_daemon.config, check-config)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sscl_daemon.cli import main
from sscl_daemon.config import (
    ConfigError,
    HubSpotOptions,
    JsonlOptions,
    LogLevel,
    Secret,
    WriterType,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"

RC = {"client_id": "cid", "client_secret": "csecret-value", "jwt": "jwt-value"}


def issues_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.toml")
    return [str(issue) for issue in info.value.issues]


@pytest.fixture
def rc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSCL_RC_CLIENT_SECRET", "example-client-secret")
    monkeypatch.setenv("SSCL_RC_JWT", "example-jwt")


@pytest.mark.usefixtures("rc_env")
def test_example_file_is_valid_and_documents_defaults() -> None:
    settings = load_config(EXAMPLE)
    assert settings.ringcentral.client_secret.reveal() == "example-client-secret"
    assert settings.store.embedded
    assert settings.calls.log_abandoned is True
    assert settings.calls.log_internal is False
    assert [w.type for w in settings.writers] == [WriterType.JSONL]
    assert isinstance(settings.writers[0].options, JsonlOptions)
    # The example states the built-in defaults: parsing it equals parsing an almost empty file.
    defaults = parse_config({"ringcentral": RC, "writers": {"log": {"type": "jsonl", "path": "x"}}})
    assert settings.daemon.log_level == defaults.daemon.log_level == LogLevel.INFO
    assert settings.store == defaults.store
    assert settings.calls == defaults.calls
    assert settings.admin == defaults.admin


def test_all_writer_types_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HS_TOKEN", "hubspot-token-value")
    oauth = {"client_id": "id", "client_secret": "sf-secret", "refresh_token": "sf-refresh"}
    settings = parse_config(
        {
            "ringcentral": RC,
            "writers": {
                "hs": {
                    "type": "hubspot",
                    "access_token": "env:HS_TOKEN",
                    "batch_size": 100,
                    "owners": {"101": "12345678"},
                    "no_contact": "create",
                },
                "pd": {"type": "pipedrive", "api_token": "pd-token-value"},
                "sf": {
                    "type": "salesforce",
                    "instance_url": "https://x.my.salesforce.com",
                    **oauth,
                },
                "wh": {"type": "webhook", "url": "https://h.example/x", "secret": "wh-secret"},
                "fs": {"type": "jsonl", "path": "/tmp/calls.jsonl", "enabled": False},
            },
        }
    )
    assert {w.type for w in settings.writers} == set(WriterType)
    hubspot = next(w for w in settings.writers if w.type is WriterType.HUBSPOT)
    assert isinstance(hubspot.options, HubSpotOptions)
    assert hubspot.options.access_token == Secret("hubspot-token-value")
    assert hubspot.contacts.owners == {"101": "12345678"}
    assert hubspot.batch_size == 100
    assert "sf-refresh" in settings.secrets()
    assert "pd-token-value" in settings.secrets()


def test_unknown_keys_are_errors_with_their_path() -> None:
    found = issues_of({"ringcentral": RC, "daemon": {"log_levl": "info"}, "stor": {}})
    assert any(i.startswith("daemon.log_levl: unknown key") for i in found)
    assert any(i.startswith("stor: unknown key") for i in found)


def test_wrong_types_name_key_value_and_expectation() -> None:
    found = issues_of(
        {
            "ringcentral": {**RC, "request_timeout": "fast"},
            "admin": {"enabled": "yes", "port": 70000},
            "store": {"pool_max_size": 1.5},
        }
    )
    assert "ringcentral.request_timeout: expected a number of seconds, got 'fast'" in found
    assert "admin.enabled: expected true or false, got 'yes'" in found
    assert any(i.startswith("admin.port: 70000 is out of range") for i in found)
    assert "store.pool_max_size: expected an integer, got 1.5" in found


def test_enum_values_list_what_is_allowed() -> None:
    found = issues_of({"ringcentral": RC, "daemon": {"log_level": "loud"}})
    assert found == [
        "daemon.log_level: 'loud' is not allowed; use one of 'debug', 'info', 'warning', 'error'"
    ]


def test_required_credentials_and_urls() -> None:
    found = issues_of({"ringcentral": {"server": "ftp://x"}})
    assert any(i.startswith("ringcentral.client_id: is required") for i in found)
    assert any(i.startswith("ringcentral.client_secret: is required") for i in found)
    assert any(i.startswith("ringcentral.jwt: is required") for i in found)
    assert "ringcentral.server: 'ftp://x' is not an http(s) URL" in found


def test_store_dsn_must_be_embedded_or_postgres_url() -> None:
    found = issues_of({"ringcentral": RC, "store": {"dsn": "mysql://x"}})
    assert any(i.startswith("store.dsn: 'mysql://x' is neither 'embedded'") for i in found)


def test_writer_errors() -> None:
    found = issues_of(
        {
            "ringcentral": RC,
            "writers": {
                "a": {"type": "zoho"},
                "b": {"type": "webhook", "url": "https://h.example/x"},
                "c": {"type": "salesforce", "client_id": "x"},
                "d": {"type": "hubspot", "batch_size": 500},
            },
        }
    )
    assert any(i.startswith("writers.a.type: 'zoho' is not a writer type") for i in found)
    assert any(i.startswith("writers.b.secret: is required") for i in found)
    assert any(i.startswith("writers.c.instance_url: is required") for i in found)
    assert any(i.startswith("writers.c.client_secret: is required") for i in found)
    assert any(i.startswith("writers.d.access_token: give a private-app") for i in found)
    assert any(i.startswith("writers.d.batch_size: 500 is out of range") for i in found)


def test_blocklist_entries_are_validated_one_by_one() -> None:
    found = issues_of({"ringcentral": RC, "blocklist": {"entries": "+15105551234, 12ab, 101"}})
    assert len(found) == 1
    assert found[0].startswith("blocklist.entries[1]: '12ab'")


def test_blocklist_accepts_list_or_comma_string() -> None:
    a = parse_config({"ringcentral": RC, "blocklist": {"entries": ["+15105551234", "101"]}})
    b = parse_config({"ringcentral": RC, "blocklist": {"entries": "+15105551234,101"}})
    assert a.blocklist == b.blocklist


def test_scope_and_missed_owner_rules() -> None:
    found = issues_of(
        {
            "ringcentral": RC,
            "scope": {"mode": "include", "extensions": ["10x"]},
            "calls": {"missed_attribution": "owner", "default_region": "XX"},
        }
    )
    assert "scope.extensions: '10x' is not an extension number (digits only)" in found
    assert "calls.missed_owner_extension: is required when missed_attribution = 'owner'" in found
    assert any(i.startswith("calls.default_region: 'XX' is not a known region") for i in found)
    empty = issues_of({"ringcentral": RC, "scope": {"mode": "exclude"}})
    assert empty == [
        "scope.mode: mode 'exclude' needs at least one entry in extensions or departments"
    ]


def test_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_JWT", "jwt-from-env")
    settings = parse_config({"ringcentral": {**RC, "jwt": "env:MY_JWT"}})
    assert settings.ringcentral.jwt.reveal() == "jwt-from-env"
    monkeypatch.delenv("MY_JWT")
    found = issues_of({"ringcentral": {**RC, "jwt": "env:MY_JWT"}})
    assert found == ["ringcentral.jwt: environment variable MY_JWT is not set or empty"]


def test_credential_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "rc-secret").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = parse_config({"ringcentral": {**RC, "client_secret": "credential:rc-secret"}})
    assert settings.ringcentral.client_secret.reveal() == "from-credential"
    found = issues_of({"ringcentral": {**RC, "client_secret": "credential:missing"}})
    assert found[0].startswith("ringcentral.client_secret: cannot read credential 'missing'")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    found = issues_of({"ringcentral": {**RC, "client_secret": "credential:rc-secret"}})
    assert "CREDENTIALS_DIRECTORY is not set" in found[0]


def test_secrets_never_show_in_repr_or_errors() -> None:
    settings = parse_config({"ringcentral": RC, "admin": {"token": "admin-token-value"}})
    text = repr(settings)
    for value in ("csecret-value", "jwt-value", "admin-token-value"):
        assert value not in text
    assert repr(Secret("x")) == "Secret('***')"
    assert set(settings.secrets()) == {"csecret-value", "jwt-value", "admin-token-value"}
    found = issues_of({"ringcentral": {**RC, "client_secret": 12345678}})
    assert "12345678" not in " ".join(found)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_check_config_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rc_env: None
) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "example-client-secret" not in out
    broken = tmp_path / "broken.toml"
    shutil.copy(EXAMPLE, broken)
    text = broken.read_text().replace("log_internal = false", "log_internl = false")
    broken.write_text(text.replace('log_level = "info"', 'log_level = "chatty"'))
    assert main(["check-config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "calls.log_internl: unknown key" in err
    assert "daemon.log_level: 'chatty' is not allowed" in err


def test_commands_without_credentials_ignore_unset_rc_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UNSET_RC_JWT", raising=False)
    data = {"ringcentral": {"client_id": "cid", "client_secret": "x", "jwt": "env:UNSET_RC_JWT"}}
    settings = parse_config(data, require_credentials=False)
    assert settings.ringcentral.jwt.reveal() == ""
    assert issues_of(data) == [
        "ringcentral.jwt: environment variable UNSET_RC_JWT is not set or empty"
    ]


def test_several_accounts() -> None:
    account = {"ringcentral": RC, "writers": {"log": {"type": "jsonl", "path": "x.jsonl"}}}
    settings = parse_config(
        {
            "accounts": {
                "acme": {**account, "blocklist": {"entries": ["+15105551234"]}},
                "globex": {**account, "ringcentral": {**RC, "jwt": "globex-jwt"}},
            }
        }
    )
    names = [a.name for a in settings.account_list()]
    assert names == ["acme", "globex"]
    acme, globex = settings.account_list()
    assert len(acme.blocklist) == 1
    assert len(globex.blocklist) == 0
    assert globex.ringcentral.jwt.reveal() == "globex-jwt"
    assert "globex-jwt" in settings.secrets()


def test_single_account_file_is_the_default_account() -> None:
    settings = parse_config({"ringcentral": RC})
    (only,) = settings.account_list()
    assert only.name == "default"
    assert only.ringcentral == settings.ringcentral


def test_accounts_errors_name_the_account() -> None:
    found = issues_of(
        {
            "ringcentral": RC,
            "accounts": {"a b": {"ringcentral": RC}, "c": {"ringcentral": {}, "writer": {}}},
        }
    )
    assert any(
        i.startswith("ringcentral: cannot be used together with [accounts.NAME]") for i in found
    )
    assert "accounts.a b: account names may use letters, digits, '-' and '_' only" in found
    assert any(i.startswith("accounts.c.ringcentral.client_id: is required") for i in found)
    assert any(i.startswith("accounts.c.writer: unknown key") for i in found)
    assert issues_of({"accounts": {}}) == [
        "accounts: lists no account: add an [accounts.NAME] table"
    ]
