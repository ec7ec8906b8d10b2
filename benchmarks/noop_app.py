"""A FastAPI app that does nothing: the anchor for the server's HTTP throughput.

``bench_http`` serves it with the same uvicorn settings as the Handrail server, so that
``POST /v1/tasks`` on Handrail can be read as a fraction of what FastAPI and uvicorn
manage on this machine with no work behind the endpoint: the body is parsed as JSON and a
small JSON object is returned, nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/tasks", status_code=201)
async def create(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "noop", "kind": body.get("kind"), "status": "posted"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
