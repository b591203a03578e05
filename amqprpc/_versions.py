"""Version gates for the client-library internals that an adapter's `_compat` module uses.

Owns how an installed distribution's version is compared with the range an adapter was
tested with. Must not import a client library.
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["Range", "installed", "outside"]

Range = tuple[str, tuple[int, ...], tuple[int, ...]]
"""(distribution, lowest tested release, first release not tested)."""


def _release(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def installed(name: str) -> str:
    """The installed version of distribution `name` ("missing" when it is not installed)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def outside(ranges: tuple[Range, ...]) -> list[str]:
    """The distributions whose installed version is outside its tested range, described."""
    found = []
    for name, low, high in ranges:
        version = installed(name)
        if not low <= _release(version) < high:
            low_text, high_text = ".".join(map(str, low)), ".".join(map(str, high))
            found.append(f"{name} {version} (tested: >={low_text},<{high_text})")
    return found
