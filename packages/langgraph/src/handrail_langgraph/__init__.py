"""Handrail adapter for langgraph: arrives with its own issue."""

__all__: list[str] = []
