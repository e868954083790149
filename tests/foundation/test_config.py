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
    Settings,
    WriterType,
    load_config,
    parse_config,
)
from sscl_daemon.config.secrets import Need

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"

RC = {"client_id": "cid", "client_secret": "csecret-value", "jwt": "jwt-value"}
LOG = {"log": {"type": "jsonl", "path": "calls.jsonl"}}


def with_writer(data: dict[str, object]) -> dict[str, object]:
    """``data`` with a jsonl writer unless it has writers or accounts (a file needs one)."""
    return data if "writers" in data or "accounts" in data else {**data, "writers": LOG}


def parse(data: dict[str, object]) -> Settings:
    return parse_config(with_writer(data), "test.toml")


def issues_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data)
    return [str(issue) for issue in info.value.issues]


@pytest.fixture
def rc_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The example's credential:rc-client-secret and credential:rc-jwt, as systemd gives them."""
    (tmp_path / "rc-client-secret").write_text("example-client-secret\n")
    (tmp_path / "rc-jwt").write_text("example-jwt")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))


@pytest.mark.usefixtures("rc_env")
def test_example_file_is_valid_and_documents_defaults() -> None:
    settings = load_config(EXAMPLE)
    assert settings.account().ringcentral.client_secret.reveal() == "example-client-secret"
    assert settings.account().ringcentral.jwt.reveal() == "example-jwt"
    assert settings.store.embedded
    assert settings.account().calls.log_abandoned is True
    assert settings.account().calls.log_internal is False
    assert [w.type for w in settings.account().writers] == [WriterType.JSONL]
    assert isinstance(settings.account().writers[0].options, JsonlOptions)
    # The example states the built-in defaults: parsing it equals parsing an almost empty file.
    defaults = parse({"ringcentral": RC})
    assert settings.daemon.log_level == defaults.daemon.log_level == LogLevel.INFO
    assert settings.store == defaults.store
    assert settings.account().calls == defaults.account().calls
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
                "wh": {
                    "type": "webhook",
                    "url": "https://h.example/x",
                    "secret": "whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
                },
                "fs": {"type": "jsonl", "path": "/tmp/calls.jsonl", "enabled": False},
            },
        }
    )
    assert {w.type for w in settings.account().writers} == set(WriterType)
    hubspot = next(w for w in settings.account().writers if w.type == WriterType.HUBSPOT)
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
    assert any(i.startswith("store.dsn: is neither 'embedded'") for i in found)


def test_a_malformed_dsn_is_never_echoed() -> None:
    """Issue 18 step 3: the DSN may hold a password; the error names the key, not the value."""
    for dsn in ("host=db user=sscl password=pg-pass-123", "postgresq://sscl:pg-pass-123@db/sscl"):
        (found,) = issues_of({"ringcentral": RC, "store": {"dsn": dsn}})
        assert found.startswith("store.dsn: ")
        assert "pg-pass-123" not in found


def test_a_non_loopback_admin_host_needs_a_token() -> None:
    """Issue 18 item 7: admin.host = "0.0.0.0" without a token is refused with the reason."""
    (found,) = issues_of({"ringcentral": RC, "admin": {"host": "0.0.0.0"}})
    assert found.startswith("admin.host: '0.0.0.0' lets other machines reach the admin endpoint")
    assert "set admin.token" in found
    with_token = parse({"ringcentral": RC, "admin": {"host": "0.0.0.0", "token": "t0ken-value"}})
    assert with_token.admin.host == "0.0.0.0"
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.53"):
        assert parse({"ringcentral": RC, "admin": {"host": host}}).admin.token is None
    off = parse({"ringcentral": RC, "admin": {"host": "10.0.0.5", "enabled": False}})
    assert not off.admin.enabled


def test_secrets_readable_by_everyone_are_warned_about(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 item 13: warn (not refuse, see config/files.py) at start and in check-config."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "rc-jwt").write_text("jwt-from-file")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\ncredentials_dir = "{credentials}"\n'
        '[store]\ndsn = "postgresql://sscl:pg-pass-123@db/sscl"\n'
        '[ringcentral]\nclient_id = "cid"\nclient_secret = "inline-secret-value"\n'
        'jwt = "credential:rc-jwt"\n[writers.log]\ntype = "jsonl"\npath = "calls.jsonl"\n'
    )
    config.chmod(0o644)
    (credentials / "rc-jwt").chmod(0o644)
    warnings = load_config(config).warnings
    assert len(warnings) == 2
    assert (
        f"{config} holds secrets written inline (store.dsn, ringcentral.client_secret)"
        in (warnings[0])
    )
    assert "mode 0644" in warnings[0]
    assert f"chmod o-r {config}" in warnings[0]
    assert warnings[1].startswith(f"credential file {credentials / 'rc-jwt'} can be read by")
    assert main(["check-config", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 2
    for secret in ("inline-secret-value", "pg-pass-123", "jwt-from-file"):
        assert secret not in err
    config.chmod(0o640)
    (credentials / "rc-jwt").chmod(0o600)
    assert load_config(config).warnings == ()


def test_writer_errors() -> None:
    found = issues_of(
        {
            "ringcentral": RC,
            "writers": {
                "a": {"type": "nosuchcrm"},
                "b": {"type": "webhook", "url": "https://h.example/x"},
                "c": {"type": "salesforce", "client_id": "x"},
                "d": {"type": "hubspot", "batch_size": 500},
            },
        }
    )
    assert any(i.startswith("writers.a.type: 'nosuchcrm' is not a writer type") for i in found)
    assert any(i.startswith("writers.b.secret: is required") for i in found)
    assert any(i.startswith("writers.c.instance_url: is required") for i in found)
    assert any(i.startswith("writers.c.client_secret: is required") for i in found)
    assert any(i.startswith("writers.d.access_token: give an access_token") for i in found)
    assert any(i.startswith("writers.d.batch_size: 500 is out of range") for i in found)


def test_blocklist_entries_are_validated_one_by_one() -> None:
    found = issues_of({"ringcentral": RC, "blocklist": {"entries": "+15105551234, 12ab, 101"}})
    assert len(found) == 1
    assert found[0].startswith("blocklist.entries[1]: '12ab'")


def test_blocklist_accepts_list_or_comma_string() -> None:
    a = parse({"ringcentral": RC, "blocklist": {"entries": ["+15105551234", "101"]}})
    b = parse({"ringcentral": RC, "blocklist": {"entries": "+15105551234,101"}})
    assert a.account().blocklist == b.account().blocklist


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
    settings = parse({"ringcentral": {**RC, "jwt": "env:MY_JWT"}})
    assert settings.account().ringcentral.jwt.reveal() == "jwt-from-env"
    monkeypatch.delenv("MY_JWT")
    found = issues_of({"ringcentral": {**RC, "jwt": "env:MY_JWT"}})
    assert found == ["ringcentral.jwt: environment variable MY_JWT is not set or empty"]


def test_credential_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "rc-secret").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = parse({"ringcentral": {**RC, "client_secret": "credential:rc-secret"}})
    assert settings.account().ringcentral.client_secret.reveal() == "from-credential"
    found = issues_of({"ringcentral": {**RC, "client_secret": "credential:missing"}})
    assert found[0].startswith("ringcentral.client_secret: cannot read credential 'missing'")
    assert "LoadCredential=missing:" in found[0]


def test_credentials_outside_systemd_come_from_the_credentials_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 18 item 1: from an admin shell (no $CREDENTIALS_DIRECTORY) the same files."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "rc-secret").write_text("from-the-directory\n")
    data = {
        "daemon": {"credentials_dir": str(tmp_path)},
        "ringcentral": {**RC, "client_secret": "credential:rc-secret"},
    }
    assert parse(data).account().ringcentral.client_secret.reveal() == "from-the-directory"
    missing = {**data, "daemon": {"credentials_dir": str(tmp_path / "none")}}
    (found,) = issues_of(missing)
    assert found.startswith("ringcentral.client_secret: cannot read credential 'rc-secret' from")
    assert "daemon.credentials_dir" in found
    default = parse({"ringcentral": RC}).daemon.credentials_dir
    assert default == Path("/etc/sscl-daemon/credentials")


def test_credential_names_are_file_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (found,) = issues_of({"ringcentral": {**RC, "jwt": "credential:../etc/shadow"}})
    assert found == "ringcentral.jwt: '../etc/shadow' is not a credential name (a file name)"


def test_secrets_never_show_in_repr_or_errors() -> None:
    settings = parse({"ringcentral": RC, "admin": {"token": "admin-token-value"}})
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
    assert "calls.log_internl: unknown key (did you mean 'log_internal'?)" in err
    assert "daemon.log_level: 'chatty' is not allowed" in err


def test_commands_without_credentials_ignore_unset_rc_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UNSET_RC_JWT", raising=False)
    data = {"ringcentral": {"client_id": "cid", "client_secret": "x", "jwt": "env:UNSET_RC_JWT"}}
    settings = parse_config(with_writer(data), needs=Need.STORE)
    assert settings.account().ringcentral.jwt.reveal() == ""
    assert issues_of(data) == [
        "ringcentral.jwt: environment variable UNSET_RC_JWT is not set or empty"
    ]


def test_a_command_resolves_only_the_secrets_it_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 18 item 1: status needs the database password, not the RingCentral or CRM ones."""
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "db-password").write_text("db-secret-value")
    data = {
        "ringcentral": {**RC, "jwt": "credential:rc-jwt"},
        "admin": {"token": "credential:admin-token"},
        "store": {"dsn": "postgresql://sscl@db/sscl", "password": "credential:db-password"},
        "writers": {
            "crm": {"type": "webhook", "url": "https://h.example/x", "secret": "credential:wh"}
        },
    }
    settings = parse_config(data, needs=Need.STORE)
    assert settings.store.password == Secret("db-secret-value")
    assert [w.name for w in settings.account().writers] == [
        "crm"
    ]  # still listed, its secret unread
    assert set(settings.secrets()) == {"csecret-value", "db-secret-value"}
    with pytest.raises(ConfigError) as info:
        parse_config(data, needs=Need.STORE | Need.WRITERS)
    assert [i.path for i in info.value.issues] == ["writers.crm.secret"]
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert {i.path for i in info.value.issues} == {
        "ringcentral.jwt",
        "admin.token",
        "writers.crm.secret",
    }


def test_a_config_without_writer_is_an_error() -> None:
    for data in ({"ringcentral": RC}, {"ringcentral": RC, "writers": {}}):
        with pytest.raises(ConfigError) as info:
            parse_config(data)
        (issue,) = info.value.issues
        assert issue.path == "writers"
        assert "no writer is configured" in issue.message
    # Commands that write no call (status, migrate) read such a file.
    assert parse_config({"ringcentral": RC}, needs=Need.STORE).account().writers == ()


def test_misspelt_keys_get_a_suggestion() -> None:
    found = issues_of({"ringcentral": {**RC, "heartbeat_intervall": 5}, "daemn": {}})
    assert (
        "ringcentral.heartbeat_intervall: unknown key (did you mean 'heartbeat_interval'?)" in found
    )
    assert "daemn: unknown key (did you mean 'daemon'?)" in found
    (far,) = issues_of({"ringcentral": RC, "calls": {"zzz": 1}})
    assert far == "calls.zzz: unknown key (check config.example.toml)"


def test_relative_paths_are_in_the_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 18 items 2 and 3: nothing depends on the working directory."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    settings = parse({"ringcentral": RC})
    assert settings.daemon.state_dir == Path("/var/lib/sscl-daemon")
    assert settings.account().writers[0].options == JsonlOptions(
        Path("/var/lib/sscl-daemon/calls.jsonl")
    )
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/a:{tmp_path}/b")
    settings = parse({"ringcentral": RC})
    assert settings.daemon.state_dir == tmp_path / "a"
    assert settings.account().writers[0].options == JsonlOptions(tmp_path / "a" / "calls.jsonl")
    absolute = parse({"ringcentral": RC, "writers": {"f": {"type": "jsonl", "path": "/x/c.jsonl"}}})
    assert absolute.account().writers[0].options == JsonlOptions(Path("/x/c.jsonl"))
    configured = tmp_path / "conf" / "config.toml"
    configured.parent.mkdir()
    configured.write_text(
        '[daemon]\nstate_dir = "here"\n[writers.log]\ntype = "jsonl"\npath = "c.jsonl"\n'
    )
    from_file = load_config(configured, needs=Need.NONE)
    assert from_file.daemon.state_dir == tmp_path / "conf" / "here"
    assert from_file.account().writers[0].options == JsonlOptions(
        tmp_path / "conf" / "here" / "c.jsonl"
    )


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
    names = [a.name for a in settings.accounts]
    assert names == ["acme", "globex"]
    acme, globex = settings.accounts
    assert len(acme.blocklist) == 1
    assert len(globex.blocklist) == 0
    assert globex.ringcentral.jwt.reveal() == "globex-jwt"
    assert "globex-jwt" in settings.secrets()


def test_single_account_file_is_the_default_account() -> None:
    settings = parse({"ringcentral": RC})
    (only,) = settings.accounts
    assert only.name == "default"
    assert only.ringcentral == settings.account().ringcentral


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
