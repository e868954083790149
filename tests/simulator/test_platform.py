"""REST side of the simulated platform: OAuth, extensions, call log, telephony sessions, rate limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from tests.simulator.conftest import Platform, basic

from sscl_daemon.simulator.oauth import Credentials

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def _token(
    platform: Platform, form: dict[str, str], authorization: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": authorization} if authorization else {}
    async with platform.http.post(
        platform.sim.base_url + "/restapi/oauth/token", data=form, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_jwt_login_returns_the_real_fields(platform: Platform) -> None:
    body = await platform.login()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token_expires_in"] == 604800
    assert body["owner_id"] == platform.sim.org.owner_extension_id
    for key in ("access_token", "refresh_token", "scope", "endpoint_id", "session_id"):
        assert body[key], key


async def test_token_errors_have_the_oauth_shape(make_platform: Any) -> None:
    platform: Platform = await make_platform(
        credentials=Credentials("cid", "s3cr3t-value", "the-jwt")
    )
    status, body = await _token(platform, {"grant_type": JWT_GRANT, "assertion": "the-jwt"})
    assert (status, body["error"], body["errors"][0]["errorCode"]) == (
        401,
        "invalid_client",
        "OAU-123",
    )
    status, body = await _token(
        platform, {"grant_type": JWT_GRANT, "assertion": "the-jwt"}, basic("cid", "wrong")
    )
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = await _token(
        platform, {"grant_type": JWT_GRANT, "assertion": "other"}, basic("cid", "s3cr3t-value")
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert body["error_description"] == body["errors"][0]["message"]
    status, body = await _token(platform, {"grant_type": "password"}, basic("cid", "s3cr3t-value"))
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await _token(
        platform, {"grant_type": JWT_GRANT, "assertion": "the-jwt"}, basic("cid", "s3cr3t-value")
    )
    assert status == 200
    assert "s3cr3t-value" not in repr(platform.sim.oauth.credentials)
    assert "the-jwt" not in repr(platform.sim.oauth.credentials)


async def test_refresh_token_is_single_use_and_keeps_the_session(platform: Platform) -> None:
    first = await platform.login()
    old_refresh, old_access = platform.refresh_token, platform.access_token
    second = await platform.refresh()
    assert second["session_id"] == first["session_id"]
    status, body = await _token(
        platform, {"grant_type": "refresh_token", "refresh_token": old_refresh}, basic()
    )
    assert (status, body["error"], body["errors"][0]["errorCode"]) == (
        400,
        "invalid_grant",
        "OAU-211",
    )
    status, body = await _token(
        platform, {"grant_type": "refresh_token", "refresh_token": "unknown"}, basic()
    )
    assert (status, body["errors"][0]["errorCode"]) == (400, "OAU-213")
    async with platform.http.get(
        platform.sim.base_url + "/restapi/v1.0/account/~/extension",
        headers={"Authorization": f"Bearer {old_access}"},
    ) as resp:
        assert resp.status == 401


async def test_short_access_token_ttl_expires(make_platform: Any) -> None:
    platform: Platform = await make_platform(access_token_ttl_s=0.0)
    await platform.login()
    code, _, body = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 401
    assert body["errorCode"] == "TokenExpired"


async def test_api_calls_need_a_bearer_token(platform: Platform) -> None:
    async with platform.http.get(
        platform.sim.base_url + "/restapi/v1.0/account/~/extension"
    ) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["errors"][0]["errorCode"].startswith("OAU-")


async def test_extension_list_is_paged(platform: Platform) -> None:
    await platform.login()
    records = platform.sim.org.extension_records()
    assert len(records) > 2
    code, headers, first = await platform.get("/restapi/v1.0/account/~/extension", perPage="2")
    assert code == 200
    assert headers["X-Rate-Limit-Group"] == "medium"
    assert first["records"] == records[:2]
    assert first["paging"]["totalElements"] == len(records)
    got = list(first["records"])
    page = first
    while "nextPage" in page["navigation"]:
        async with platform.http.get(
            page["navigation"]["nextPage"]["uri"], headers=platform.auth()
        ) as resp:
            page = await resp.json()
        got.extend(page["records"])
    assert got == records
    _, _, users = await platform.get("/restapi/v1.0/account/~/extension", type="User")
    assert users["records"] == [r for r in records if r["type"] == "User"]
    assert 0 < len(users["records"]) < len(records)


async def test_telephony_session_is_live_until_its_last_event(platform: Platform) -> None:
    client = await platform.subscribed_client()
    call = platform.sim.place_call()
    (first,) = await client.notifications(1)
    tsid = first[1]["body"]["telephonySessionId"]
    # the call plays in real time: right after its first event the session is live
    code, _, live = await platform.get(f"/restapi/v1.0/account/~/telephony/sessions/{tsid}")
    assert code == 200
    assert live["id"] == tsid
    acct = platform.sim.org.account_id
    assert live["parties"]
    for party in live["parties"]:
        assert "extensionId" not in party
        if "owner" in party:
            assert party["owner"]["accountId"] == acct
    ext = next(e.extension_id for e in call.events if e.body == first[1]["body"])
    if ext is not None:
        assert {p["owner"]["extensionId"] for p in live["parties"] if "owner" in p} == {ext}
    # skip ahead to the end of the call: after its last event the session is gone
    platform.sim.fast_forward()
    await platform.sim.wait_idle()
    code, _, body = await platform.get(f"/restapi/v1.0/account/~/telephony/sessions/{tsid}")
    assert code == 404
    assert body["errors"][0]["errorCode"] == body["errorCode"]


async def test_call_log_records_appear_after_the_call(platform: Platform) -> None:
    await platform.login()
    calls = [platform.sim.place_call() for _ in range(3)]
    platform.sim.fast_forward()
    await platform.sim.wait_idle()
    # Fast-forwarded calls keep their own times: a later session of a call (a warm
    # transfer's consultation) starts after "now", so the window must reach past it.
    until = platform.sim.engine.now_wall() + timedelta(hours=1)
    code, headers, page = await platform.get(
        "/restapi/v1.0/account/~/call-log",
        view="Detailed",
        perPage="100",
        dateTo=until.isoformat(),
    )
    assert code == 200
    assert headers["X-Rate-Limit-Group"] == "heavy"
    assert headers["X-Rate-Limit-Limit"] == "10"
    want = [r for c in calls for r in c.call_log_records]
    assert sorted(r["id"] for r in page["records"]) == sorted(r["id"] for r in want)
    tsid = calls[1].telephony_session_ids[0]
    _, _, one = await platform.get(
        "/restapi/v1.0/account/~/call-log", telephonySessionId=tsid, view="Detailed"
    )
    assert one["records"] == [r for r in want if r["telephonySessionId"] == tsid]
    _, _, simple = await platform.get("/restapi/v1.0/account/~/call-log", telephonySessionId=tsid)
    assert all("legs" not in r for r in simple["records"])
    for direction in ("Inbound", "Outbound"):
        _, _, some = await platform.get(
            "/restapi/v1.0/account/~/call-log", direction=direction, dateTo=until.isoformat()
        )
        assert sorted(r["id"] for r in some["records"]) == sorted(
            r["id"] for r in want if r["direction"] == direction
        )
    future = (platform.sim.engine.now_wall() + timedelta(hours=1)).isoformat()
    _, _, none = await platform.get("/restapi/v1.0/account/~/call-log", dateFrom=future)
    assert none["records"] == []


async def test_call_log_waits_for_the_publication_delay(make_platform: Any) -> None:
    platform: Platform = await make_platform(call_log_delay_s=3600.0)
    await platform.login()
    platform.sim.place_call()
    platform.sim.fast_forward(600.0)
    async with asyncio.timeout(5):
        await platform.sim.engine.wait_until(
            lambda: platform.sim.engine.published > 0 and not platform.sim.engine.live
        )
    _, _, page = await platform.get("/restapi/v1.0/account/~/call-log")
    assert page["records"] == []


async def test_call_log_paging(platform: Platform) -> None:
    await platform.login()
    for _ in range(5):
        platform.sim.place_call()
    platform.sim.fast_forward()
    await platform.sim.wait_idle()
    total = len(platform.sim.engine.call_log)
    _, _, page = await platform.get("/restapi/v1.0/account/~/call-log", perPage="2", page="2")
    assert page["paging"]["page"] == 2
    assert page["paging"]["perPage"] == 2
    assert len(page["records"]) == min(2, total - 2)
    assert "previousPage" in page["navigation"]
    code, _, bad = await platform.get("/restapi/v1.0/account/~/call-log", perPage="0")
    assert code == 400
    assert bad["errorCode"] == "CMN-101"
    code, _, bad = await platform.get("/restapi/v1.0/account/~/call-log", dateFrom="yesterday")
    assert code == 400
    assert "dateFrom" in bad["message"]


async def test_rate_limit_gives_429_with_retry_after(make_platform: Any) -> None:
    from sscl_daemon.simulator.profiles import RateGroup, RateLimit

    limits = {
        RateGroup.HEAVY: RateLimit(2, window_s=60, penalty_s=30),
        RateGroup.AUTH: RateLimit(50),
    }
    platform: Platform = await make_platform(rate_limits=limits)
    await platform.login()
    remaining = []
    for _ in range(2):
        code, headers, _ = await platform.get("/restapi/v1.0/account/~/call-log")
        assert code == 200
        remaining.append(headers["X-Rate-Limit-Remaining"])
    assert remaining == ["1", "0"]
    code, headers, body = await platform.get("/restapi/v1.0/account/~/call-log")
    assert code == 429
    assert headers["Retry-After"] == "30"
    assert headers["X-Rate-Limit-Window"] == "60"
    assert body["errorCode"] == "CMN-301"
    # other groups have their own budget
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 200


async def test_wstoken_is_in_the_auth_group(make_platform: Any) -> None:
    from sscl_daemon.simulator.profiles import RateGroup, RateLimit

    platform: Platform = await make_platform(rate_limits={RateGroup.AUTH: RateLimit(2)})
    await platform.login()  # token requests are keyed by caller address, one use
    await platform.ws_token()
    async with platform.http.post(
        platform.sim.base_url + "/restapi/oauth/wstoken", headers=platform.auth()
    ) as resp:
        assert resp.status == 429
        assert resp.headers["X-Rate-Limit-Group"] == "auth"


async def test_revoke_kills_the_session(platform: Platform) -> None:
    await platform.login()
    async with platform.http.post(
        platform.sim.base_url + "/restapi/oauth/revoke",
        data={"token": platform.access_token},
        headers={"Authorization": basic()},
    ) as resp:
        assert resp.status == 200
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 401
    status, body = await _token(
        platform, {"grant_type": "refresh_token", "refresh_token": platform.refresh_token}, basic()
    )
    assert (status, body["errors"][0]["errorCode"]) == (400, "OAU-211")


async def test_wrong_account_is_404(platform: Platform) -> None:
    await platform.login()
    code, _, body = await platform.get("/restapi/v1.0/account/1/extension")
    assert code == 404
    assert body["errorCode"] == "CMN-102"


async def test_non_json_error_never_leaks_tokens(platform: Platform) -> None:
    await platform.login()
    async with platform.http.get(
        platform.sim.base_url + "/restapi/v1.0/account/~/extension",
        headers={"Authorization": "Bearer leaked-token-xyz"},
    ) as resp:
        text = await resp.text()
    assert resp.status == 401
    assert "leaked-token-xyz" not in text


async def test_session_cap_revokes_the_oldest_login(make_platform: Any) -> None:
    platform: Platform = await make_platform(max_oauth_sessions=2)
    await platform.login()
    first_refresh = platform.refresh_token
    await platform.login()
    await platform.login()  # the third session pushes the first one out
    status, body = await _token(
        platform, {"grant_type": "refresh_token", "refresh_token": first_refresh}, basic()
    )
    assert (status, body["errors"][0]["errorCode"]) == (400, "OAU-211")
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 200
