"""Running `async def` handlers on asyncio, the same way in both servers.

The core decides (`call_handler_async` does not start a handler past its caller's deadline,
`ServerProtocol.cancel_after` says when a running one is); this module only applies the
decision on an event loop, since the core may not import asyncio. Imports no client library.
"""

from __future__ import annotations

import asyncio
import time

from .._events import Invoke, Outcome
from .._server import ServerProtocol, call_handler_async

__all__ = ["cancel_other_tasks", "run_async_handler"]

_CANCELLED = Outcome(stale=True, cancelled=True)


async def run_async_handler(invoke: Invoke, proto: ServerProtocol, *, cancel: bool) -> Outcome:
    """Run an `async def` handler; with `cancel`, stop it once its caller's deadline (plus
    the server's clock-skew tolerance) has passed. Returns its Outcome; never raises an
    Exception."""
    handler = call_handler_async(invoke, time.time)
    limit = proto.cancel_after(invoke, time.time()) if cancel else None
    if not limit:  # no deadline to keep, or already past it: then the handler never starts
        return await handler
    try:
        return await asyncio.wait_for(handler, limit)
    except asyncio.TimeoutError:  # the handler's own TimeoutErrors are its Outcome, not this
        return _CANCELLED


async def cancel_other_tasks() -> None:
    """Cancel every other task of the running loop (a server's handlers at its close) and
    wait until they have ended."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
