"""NUL characters are refused at the door (PostgreSQL's text cannot hold them), as a
validation error in each API's own format, never as a database error."""

from __future__ import annotations

from tests.server.conftest import Server


async def test_nul_characters_are_a_validation_error(server: Server) -> None:
    c, admin = server.client, server.a.admin
    in_query = await c.get("/v1/payouts", params={"worker_id": "a\x00b"}, headers=admin)
    assert in_query.status_code == 422
    assert in_query.json()["errors"] == [
        {"path": "query:worker_id", "message": "must not contain NUL characters"}
    ]
    in_body = await c.put("/v1/workers/w", json={"skills": ["a\u0000"]}, headers=admin)
    assert in_body.status_code == 422 and in_body.json()["errors"][0]["path"] == "$"
    in_path = await c.get("/v1/tasks/a%00b", headers=admin)
    assert in_path.status_code == 422
    dialect = await c.post(
        "/compat/humanops/api/v1/operator/register", json={"name": "a\u0000"}, headers=admin
    )
    assert dialect.status_code == 400 and dialect.json()["error"].endswith("NUL characters")
    # an escaped backslash followed by "u0000" is text, not NUL
    text = await c.put(
        "/v1/workers/w",
        content=b'{"skills": ["a\\\\u0000"]}',
        headers={**admin, "content-type": "application/json"},
    )
    assert text.status_code == 200 and text.json()["skills"] == ["a\\u0000"]
