"""Helpers for the web UI's tests: sign in through the form, read tokens from pages."""

from __future__ import annotations

import re

import httpx

_SIGNIN = re.compile(r'name="signin_token" value="([^"]+)"')
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html[:500]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str, next_: str = "/") -> httpx.Response:
    """Submit the sign-in form as a browser would (its token, its cookie)."""
    form = await client.get("/signin")
    assert form.status_code == 200, form.text
    found = _SIGNIN.search(form.text)
    assert found is not None
    return await client.post(
        "/signin", data={"api_key": key, "signin_token": found.group(1), "next": next_}
    )


async def signed_in(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Sign in with the key in ``headers``; the session's CSRF token."""
    done = await sign_in(client, key_of(headers))
    assert done.status_code == 303, done.text
    page = await client.get("/signin")  # any page carries the token in its meta tag
    page = await client.get(done.headers["location"], follow_redirects=True)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
