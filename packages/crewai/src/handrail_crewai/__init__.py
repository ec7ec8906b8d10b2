"""Handrail adapter for crewai: arrives with its own issue."""

__all__: list[str] = []
