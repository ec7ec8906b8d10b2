"""The app for ``uvicorn handrail_server.main:create_app --factory`` (settings from env)."""

from .app import create_app

__all__ = ["create_app"]
