"""Handrail adapter for langchain: arrives with its own issue."""

__all__: list[str] = []
