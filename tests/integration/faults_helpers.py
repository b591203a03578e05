"""The service the fault tests call: `Holder`, which holds odd arguments until the server goes
away."""

from __future__ import annotations

import asyncio
from typing import Any


class Holder:
    """Even arguments come back at once; odd ones are held until the server goes away."""

    async def hold(self, arg: int) -> int:
        if arg % 2:
            await asyncio.sleep(60)
        return arg

    async def slow(self, args: dict[str, float]) -> str:
        await asyncio.sleep(args["s"])
        return "late"

    def echo(self, arg: Any) -> Any:
        return arg

    def grow(self, size: int) -> str:
        return "x" * size
