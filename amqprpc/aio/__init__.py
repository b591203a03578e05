"""aio adapter (not yet implemented)."""

__all__: list[str] = []
