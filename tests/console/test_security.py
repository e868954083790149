"""Console sessions and CSRF tokens (pure: the clock is passed in)."""

from __future__ import annotations

from sscl_daemon.console.security import SESSION_SECONDS, Sessions


def test_only_the_admin_token_opens_a_session_and_sessions_expire() -> None:
    sessions = Sessions("the-admin-token-0123456789")
    assert sessions.needs_login
    assert sessions.login("wrong", now=0.0) is None
    sid = sessions.login("the-admin-token-0123456789", now=0.0)
    assert sid is not None
    assert "the-admin-token" not in sid
    assert sessions.valid(sid, now=SESSION_SECONDS - 1)
    assert not sessions.valid(sid, now=SESSION_SECONDS)
    assert not sessions.valid("made-up", now=0.0)
    assert not sessions.valid(None, now=0.0)


def test_without_a_token_there_is_no_login_but_sessions_still_carry_csrf() -> None:
    sessions = Sessions(None)
    assert not sessions.needs_login
    assert sessions.login("", now=0.0) is None
    sid = sessions.open(now=0.0)
    assert sessions.csrf_ok(sid, sessions.csrf(sid), now=1.0)


def test_csrf_tokens_belong_to_one_live_session() -> None:
    sessions = Sessions("t" * 20)
    a = sessions.login("t" * 20, now=0.0)
    b = sessions.login("t" * 20, now=0.0)
    assert a is not None
    assert b is not None
    assert sessions.csrf(a) != sessions.csrf(b)
    assert sessions.csrf_ok(a, sessions.csrf(a), now=1.0)
    assert not sessions.csrf_ok(a, sessions.csrf(b), now=1.0)
    assert not sessions.csrf_ok(a, None, now=1.0)
    assert not sessions.csrf_ok(None, sessions.csrf(a), now=1.0)
    sessions.end(a)
    assert not sessions.csrf_ok(a, sessions.csrf(a), now=1.0)
    # Another process (a restart) never accepts this one's tokens.
    assert not Sessions("t" * 20).csrf_ok(b, sessions.csrf(b), now=1.0)


def test_sessions_are_bounded() -> None:
    sessions = Sessions(None, limit=3)
    first = sessions.open(now=0.0)
    for _ in range(3):
        sessions.open(now=0.0)
    assert not sessions.valid(first, now=0.0)
