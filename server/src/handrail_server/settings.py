"""Server configuration: the one place the environment is read (``HANDRAIL_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANDRAIL_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///handrail.db",
        description="sqlite:///path or postgresql://user@host/db (asyncpg is used)",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)
    wait_max_seconds: float = Field(default=60.0, gt=0, le=300)
    wait_backstop: float = Field(
        default=120.0,
        gt=0,
        description="seconds a waiter trusts notifications alone before re-reading its task "
        "anyway. Waiters wake on notifications within milliseconds; a long-poll ends within "
        "wait_max_seconds and its client asks again (reading afresh), so by default the "
        "backstop lies beyond it and parked long-polls cost no reads",
    )
    rate_limit_per_second: float = Field(default=20.0, gt=0, description="per API key")
    rate_limit_burst: int = Field(default=200, ge=1)
    allow_private_webhooks: bool = Field(
        default=False, description="let webhooks reach loopback and private addresses"
    )
    webhook_timeout: float = Field(default=15.0, gt=0)
    upload_dir: Path = Path("handrail-uploads")
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="request bodies other than uploads (413 over)"
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        description="a request's headers, names and values together (431 over); `handrail "
        "serve` also cuts off a request head (its line and headers) over this plus 16 KiB "
        "before it is read in full",
    )
    max_headers: int = Field(default=100, ge=10, description="headers in a request (431 over)")
    upload_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/json",
    )
    sla_interval: float = Field(default=1.0, gt=0, description="seconds between SLA sweeps")
    run_background: bool = Field(
        default=True, description="run the SLA sweep, webhook delivery and sandbox reviewers"
    )
    compat_open_registration: bool = Field(
        default=True,
        description="let anyone register a HumanOps agent: a new organisation with a "
        "sandbox key (simulated operators, sandbox credit)",
    )
    decision_token_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="signs decision tokens (email and chat links); every server process "
        "sharing a database needs the same one. Unset: a random one per process, so links "
        "die with it",
    )
    web_session_seconds: int = Field(
        default=12 * 3600, ge=60, description="how long a web sign-in lasts (the reviewer UI)"
    )
    web_secure_cookies: bool | None = Field(
        default=None,
        description="mark the UI's session cookie Secure; unset: when the request is https "
        "(set true behind a proxy that terminates TLS)",
    )
    web_signin_per_second: float = Field(
        default=0.2, gt=0, description="sign-in attempts a second per client address"
    )
    web_signin_burst: int = Field(default=10, ge=1)
    public_url: str | None = Field(
        default=None,
        description="the server's address as reviewers reach it (https://handrail.example.com): "
        "the base of the links in notifications. Unset: http://host:port",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for email notifications")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls: upgrade a plain connection (port 587); tls: TLS from the start "
        "(port 465); none: plain (a relay on a trusted network, tests)",
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="Handrail <handrail@localhost>", max_length=320)
    smtp_timeout: float = Field(default=15.0, gt=0)
    notify_link_ttl: int = Field(
        default=24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="seconds an email's Approve / Reject link lives (never past the task's "
        "deadline)",
    )
    notify_timeout: float = Field(default=15.0, gt=0, description="Slack webhook posts")

    @property
    def base_url(self) -> str:
        """Where reviewers reach this server, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
