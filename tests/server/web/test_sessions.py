"""Sign-in, sessions and CSRF of the web UI, over ASGI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from handrail_server.tables import web_sessions
from handrail_server.web._render import SECURITY_HEADERS
from handrail_server.web._sessions import _hash
from tests.server.conftest import Server, make_settings, running
from tests.server.web._ui import csrf_of, key_of, sign_in, signed_in


def client_of(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server.app), base_url="http://handrail.test"
    )


async def session_rows(server: Server) -> list[dict[str, object]]:
    rows = await server.hub.store.run(
        lambda c: [dict(r._mapping) for r in c.execute(select(web_sessions))], readonly=True
    )
    return rows


async def test_pages_need_a_session(server: Server) -> None:
    async with client_of(server) as client:
        page = await client.get("/queue?risk=high")
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=%2Fqueue%3Frisk%3Dhigh"
        home = await client.get("/")
        assert home.status_code == 303 and home.headers["location"].startswith("/signin")


async def test_sign_in_sets_a_safe_cookie_and_stores_only_a_hash(server: Server) -> None:
    async with client_of(server) as client:
        done = await sign_in(client, key_of(server.a.reviewer), next_="/queue")
        assert done.status_code == 303 and done.headers["location"] == "/queue"
        cookie = next(
            h for h in done.headers.get_list("set-cookie") if h.startswith("handrail_session=")
        )
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered
        assert "secure" not in lowered  # plain http in tests; https or the setting adds it
        session_id = cookie.split(";")[0].split("=", 1)[1]
        rows = await session_rows(server)
        assert len(rows) == 1
        assert rows[0]["id_hash"] == _hash(session_id) != session_id
        assert session_id not in str(rows)


async def test_the_cookie_is_secure_on_https(server: Server) -> None:
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://handrail.test") as client:
        done = await sign_in(client, key_of(server.a.reviewer))
        cookie = next(
            h for h in done.headers.get_list("set-cookie") if h.startswith("handrail_session=")
        )
        assert "; secure" in cookie.lower()


async def test_secure_cookies_can_be_turned_off_behind_a_proxy(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, web_secure_cookies=False)
    async with running(settings) as server:
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://h.test") as client:
            done = await sign_in(client, key_of(server.a.reviewer))
            cookie = next(
                h for h in done.headers.get_list("set-cookie") if h.startswith("handrail_session=")
            )
            assert "secure" not in cookie.lower()


async def test_open_redirects_are_refused(server: Server) -> None:
    async with client_of(server) as client:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil"):
            done = await sign_in(client, key_of(server.a.reviewer), next_=target)
            assert done.headers["location"] == "/"


async def test_a_wrong_key_is_refused_without_a_session(server: Server) -> None:
    async with client_of(server) as client:
        done = await sign_in(client, "hr_live_" + "x" * 32)
        assert done.status_code == 401
        assert "unknown or revoked" in done.text
        assert "handrail_session" not in client.cookies
    assert await session_rows(server) == []


async def test_sign_in_needs_the_forms_token(server: Server) -> None:
    async with client_of(server) as client:
        await client.get("/signin")
        refused = await client.post(
            "/signin", data={"api_key": key_of(server.a.reviewer), "signin_token": "forged"}
        )
        assert refused.status_code == 403
        assert await session_rows(server) == []


async def test_sign_in_attempts_are_rate_limited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, web_signin_burst=3, web_signin_per_second=0.01)
    async with running(settings) as server, client_of(server) as client:
        statuses = [(await sign_in(client, "hr_live_wrong")).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        blocked = await sign_in(client, key_of(server.a.reviewer))  # even the right key
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1


async def test_revoking_the_key_signs_out(server: Server) -> None:
    async with client_of(server) as client:
        await signed_in(client, server.a.reviewer)
        assert (await client.get("/queue")).status_code == 200
        keys = await server.client.get("/v1/keys", headers=server.a.admin)
        reviewer = next(k for k in keys.json() if k["principal"] == "acme-reviewer")
        gone = await server.client.delete(f"/v1/keys/{reviewer['id']}", headers=server.a.admin)
        assert gone.status_code in (200, 204), gone.text
        page = await client.get("/queue")
        assert page.status_code == 303 and page.headers["location"].startswith("/signin")
        assert await session_rows(server) == []


async def test_an_expired_session_signs_out(server: Server) -> None:
    async with client_of(server) as client:
        await signed_in(client, server.a.reviewer)
        past = server.hub.clock.now()
        await server.hub.store.run(
            lambda c: c.execute(web_sessions.update().values(expires_at=past))
        )
        page = await client.get("/queue")
        assert page.status_code == 303


async def test_sign_out_ends_the_session(server: Server) -> None:
    async with client_of(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        stolen = client.cookies["handrail_session"]
        out = await client.post("/signout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"].startswith("/signin")
        assert await session_rows(server) == []
    async with client_of(server) as replay:
        replay.cookies.set("handrail_session", stolen)
        assert (await replay.get("/queue")).status_code == 303


@pytest.mark.parametrize("token", [None, "", "wrong"])
async def test_unsafe_requests_need_the_csrf_token(server: Server, token: str | None) -> None:
    async with client_of(server) as client:
        await signed_in(client, server.a.reviewer)
        data = {} if token is None else {"csrf_token": token}
        refused = await client.post("/signout", data=data)
        assert refused.status_code == 403
        assert "not sent by this site" in refused.text
        count = await server.hub.store.run(
            lambda c: c.execute(select(func.count()).select_from(web_sessions)).scalar()
        )
        assert count == 1  # still signed in: nothing happened


async def test_cross_origin_requests_are_refused(server: Server) -> None:
    async with client_of(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            refused = await client.post("/signout", data={"csrf_token": csrf}, headers=headers)
            assert refused.status_code == 403, headers
        same = await client.post(
            "/signout", data={"csrf_token": csrf}, headers={"Origin": "http://handrail.test"}
        )
        assert same.status_code == 303


async def test_the_csrf_header_works_for_fetch(server: Server) -> None:
    async with client_of(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        out = await client.post("/signout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 303


async def test_pages_carry_security_headers(server: Server) -> None:
    async with client_of(server) as client:
        for page in (await client.get("/signin"), await client.get("/queue")):
            for name, value in SECURITY_HEADERS.items():
                assert page.headers[name] == value
        csp = SECURITY_HEADERS["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp


async def test_pages_use_no_inline_script_and_only_own_assets(server: Server) -> None:
    async with client_of(server) as client:
        await signed_in(client, server.a.reviewer)
        html = (await client.get("/queue")).text
        assert "<script>" not in html and " on" + "click=" not in html
        assert "http://" not in html.replace("http://handrail.test", "")
        assert "https://" not in html
        js = await client.get("/static/app.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]


async def test_the_signed_in_page_has_the_sessions_token(server: Server) -> None:
    async with client_of(server) as client:
        csrf = await signed_in(client, server.a.reviewer)
        rows = await session_rows(server)
        assert rows[0]["csrf"] == csrf
        page = await client.get("/queue")
        assert csrf_of(page.text) == csrf


def test_behind_a_tls_proxy_the_public_origin_is_our_own() -> None:
    """The app sees http://10.0.0.5:8000 while the browser is on https://review.example:
    with ``public_url`` set, that origin is ours; any other still is not."""
    from starlette.requests import Request  # noqa: PLC0415

    from handrail_server.problems import ApiProblem  # noqa: PLC0415
    from handrail_server.web._security import check_origin  # noqa: PLC0415

    def posted(origin: str) -> Request:
        headers = [(b"host", b"10.0.0.5:8000"), (b"origin", origin.encode())]
        scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/signout"}
        return Request({**scope, "headers": headers, "server": ("10.0.0.5", 8000)})

    check_origin(posted("http://10.0.0.5:8000"))
    with pytest.raises(ApiProblem):
        check_origin(posted("https://review.example"))
    check_origin(posted("https://review.example"), "https://review.example/")
    with pytest.raises(ApiProblem):
        check_origin(posted("https://evil.example"), "https://review.example")
