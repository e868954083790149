"""SIGHUP reload planning: live keys are applied, the rest is kept and reported."""

from __future__ import annotations

from sscl_daemon.config import LogLevel, Settings, parse_config
from sscl_daemon.daemon.reload import plan_reload


def _settings(**sections: dict[str, object]) -> Settings:
    base: dict[str, dict[str, object]] = {
        "ringcentral": {"client_id": "c", "client_secret": "s", "jwt": "j"},
        "writers": {"log": {"type": "jsonl", "path": "/tmp/calls.jsonl"}},
    }
    base.update(sections)
    return parse_config(base)


def test_unchanged_file_changes_nothing() -> None:
    plan = plan_reload(_settings(), _settings())
    assert not plan.changed
    assert plan.needs_restart == ()


def test_live_keys_are_applied() -> None:
    old = _settings()
    new = _settings(
        blocklist={"entries": ["+15105551234"]},
        scope={"mode": "exclude", "extensions": ["101"]},
        calls={"log_internal": True},
        daemon={"log_level": "debug"},
        writers={"log": {"type": "jsonl", "path": "/tmp/calls.jsonl", "concurrency": 9}},
    )
    plan = plan_reload(old, new)
    assert set(plan.applied) >= {
        "blocklist",
        "scope",
        "calls.log_internal",
        "daemon.log_level",
        "writers.log.concurrency",
    }
    assert plan.needs_restart == ()
    effective = plan.effective
    assert effective.account().blocklist.matches_number("+15105551234")
    assert effective.account().calls.log_internal
    assert effective.daemon.log_level is LogLevel.DEBUG
    assert effective.account().writers[0].concurrency == 9


def test_restart_only_keys_keep_the_running_value_and_are_reported() -> None:
    old = _settings()
    new = _settings(
        admin={"port": 9999},
        store={"dsn": "postgresql://sscl@db.example.com/sscl"},
        daemon={"shutdown_timeout": 3.0},
        writers={
            "log": {"type": "jsonl", "path": "/tmp/other.jsonl"},
            "hook": {
                "type": "webhook",
                "url": "https://h.example.com/x",
                "secret": "whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
            },
        },
    )
    plan = plan_reload(old, new)
    assert set(plan.needs_restart) == {
        "admin.port",
        "store.dsn",
        "daemon.shutdown_timeout",
        "writers.log.options",
        "writers.hook (added)",
    }
    assert plan.effective.admin.port == old.admin.port
    assert plan.effective.store.dsn == "embedded"
    assert [w.name for w in plan.effective.account().writers] == ["log"]
    assert plan.effective.account().writers[0].options == old.account().writers[0].options


def test_a_removed_writer_keeps_running_until_restart() -> None:
    old = _settings()
    # A file needs a writer: the one removed is replaced by another (added: restart too).
    new = _settings(writers={"other": {"type": "jsonl", "path": "/tmp/other.jsonl"}})
    plan = plan_reload(old, new)
    assert "writers.log (removed)" in plan.needs_restart
    assert [w.name for w in plan.effective.account().writers] == ["log"]
