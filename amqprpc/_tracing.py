"""OpenTelemetry tracing of calls and requests, on when the application has set it up.

Owns every tracing decision: whether to trace at all, what the spans are called, their kind
and attributes (OpenTelemetry's RPC semantic conventions as of v1.37, the ones with
`rpc.system`/`rpc.service`/`rpc.method`, plus the messaging attributes for RabbitMQ), how a
span ends (status, `error.type`, the exception), and how the trace context travels in a
request's headers (PROTOCOL.md section 12.3: W3C `traceparent`/`tracestate`, or whatever
propagator the application configured, through `opentelemetry.propagate`).

Tracing is on when `opentelemetry.trace` is imported (by the application: this module never
imports OpenTelemetry first) and the global tracer provider is a real one, set with
`trace.set_tracer_provider`. Otherwise a call or a request costs one dictionary lookup (no
OpenTelemetry loaded) or one call to `get_tracer_provider` (loaded, no provider set). The
provider is read on every call, so one set after `import amqprpc` still counts.

Go peers ignore these headers and send none: a Go client's request starts a new trace.
Imports nothing beyond the standard library at import time. No I/O, no clock, no threads.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "RPC_SYSTEM",
    "Caller",
    "ClientSpan",
    "ServerSpan",
    "error_type",
    "server_span",
    "span_name",
    "trace_context",
]

RPC_SYSTEM = "amqprpc"
"""`rpc.system` of our spans: OpenTelemetry registers no value for net/rpc over AMQP."""

_OTHER = "_OTHER"  # the conventions' value for a method or an error type that is not known
_EXPIRED = "amqprpc.DeadlineExceeded"  # error.type of a request not run: its caller gave up


class _Api:
    """The loaded OpenTelemetry modules and amqprpc's tracer from one tracer provider."""

    __slots__ = ("client", "context", "error", "getter", "propagate", "server", "trace", "tracer")

    def __init__(self, trace: Any, provider: Any) -> None:
        import opentelemetry.context as context
        import opentelemetry.propagate as propagate
        from opentelemetry.trace.status import StatusCode

        from . import __version__

        self.trace = trace
        self.context = context
        self.propagate = propagate
        self.tracer = provider.get_tracer("amqprpc", __version__)
        self.client = trace.SpanKind.CLIENT
        self.server = trace.SpanKind.SERVER
        self.error = StatusCode.ERROR
        self.getter = _header_getter()


# (the tracer provider last seen, the _Api for it or None when it is not a real provider)
_seen: tuple[object, _Api | None] = (None, None)


def _active() -> _Api | None:
    # The hot path when tracing is off: one lookup, or one lookup and one call.
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    seen, api = _seen
    if provider is seen:
        return api
    return _load(trace, provider)


def _load(trace: Any, provider: Any) -> _Api | None:
    global _seen
    real = not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
    api = _Api(trace, provider) if real else None
    _seen = (provider, api)
    return api


def _header_getter() -> Any:
    # AMQP header values may arrive as bytes (longstr), which the default getter would turn
    # into a list of ints; a propagator gets them as str.
    from opentelemetry.propagators.textmap import Getter

    class HeaderGetter(Getter[Mapping[str, object]]):
        def get(self, carrier: Mapping[str, object], key: str) -> list[str] | None:
            value = carrier.get(key)
            if isinstance(value, (bytes, bytearray)):
                return [bytes(value).decode("utf-8", "replace")]
            return [value] if isinstance(value, str) else None

        def keys(self, carrier: Mapping[str, object]) -> list[str]:
            return [str(key) for key in carrier]

    return HeaderGetter()


def span_name(method: str) -> str:
    """A span's name for a wire method name: "Arith.Mul" -> "Arith/Mul" (`$service/$method`
    of the RPC conventions); a name with no dot is used as it is."""
    service, dot, name = method.rpartition(".")
    return f"{service}/{name}" if dot else method


def _rpc_attributes(method: str) -> dict[str, Any]:
    service, dot, name = method.rpartition(".")
    attributes: dict[str, Any] = {"rpc.system": RPC_SYSTEM, "rpc.method": name}
    if dot:
        attributes["rpc.service"] = service
    return attributes


def error_type(exc: BaseException) -> str:
    """`error.type` for an exception: `amqprpc.RemoteError` for ours, the bare name for a
    builtin, `module.QualifiedName` otherwise."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("amqprpc."):
        module = "amqprpc"
    return f"{module}.{cls.__qualname__}"


def _fail(api: _Api, span: Any, kind: str, text: str, exc: BaseException | None) -> None:
    if exc is not None and isinstance(exc, Exception):
        span.record_exception(exc)
    span.set_attribute("error.type", kind)
    span.set_status(api.trace.Status(api.error, text))


class Caller:
    """The trace context a call starts in, read where the caller runs (its thread or task)."""

    __slots__ = ("api", "context")

    def __init__(self, api: _Api, context: Any) -> None:
        self.api = api
        self.context = context


def trace_context() -> Caller | None:
    """The caller's trace context, read in the caller's own thread or task, or None when
    tracing is off (then nothing more is done for the call)."""
    api = _active()
    return None if api is None else Caller(api, api.context.get_current())


class ClientSpan:
    """The CLIENT span of one call, from its start to its end; `headers` carry its context."""

    __slots__ = ("_api", "_span", "headers")

    def __init__(self, caller: Caller, method: str, queue: str) -> None:
        api = self._api = caller.api
        attributes = _rpc_attributes(method)
        attributes["messaging.system"] = "rabbitmq"
        attributes["messaging.destination.name"] = queue
        self._span = api.tracer.start_span(
            span_name(method), context=caller.context, kind=api.client, attributes=attributes
        )
        headers: dict[str, str] = {}
        context = api.trace.set_span_in_context(self._span, caller.context)
        api.propagate.inject(headers, context=context)
        self.headers = headers

    def numbered(self, call_id: int, reply_queue: str) -> None:
        """The call got its number (message_id) and its reply queue (correlation_id)."""
        span = self._span
        span.set_attribute("messaging.message.id", str(call_id))
        span.set_attribute("messaging.message.conversation_id", reply_queue)

    def end(self, exc: BaseException | None = None) -> None:
        """The call ended: with a result, or with `exc` (then the span's status is ERROR)."""
        if exc is not None:
            _fail(self._api, self._span, error_type(exc), str(exc), exc)
        self._span.end()


class ServerSpan:
    """The SERVER span of one request, from its delivery to its reply; current while its
    handler runs (`enter`/`leave`), so the handler's own calls are its children."""

    __slots__ = ("_api", "_context", "_span", "exception")

    def __init__(self, api: _Api, span: Any, context: Any) -> None:
        self._api = api
        self._span = span
        self._context = context
        self.exception: Exception | None = None  # what the handler raised

    def enter(self) -> object:
        """Make the span current in this thread or task. Returns the token for `leave`."""
        return self._api.context.attach(self._context)

    def leave(self, token: object) -> None:
        """Undo `enter`."""
        self._api.context.detach(token)

    def handled(self, exc: Exception | None, *, stale: bool) -> None:
        """The handler returned, or raised `exc`; or (`stale`) it was not run, or stopped, at
        its caller's deadline: then there is no reply, and the span ends here."""
        if stale:
            _fail(self._api, self._span, _EXPIRED, "the caller's deadline passed", None)
            self._span.end()
        else:
            self.exception = exc

    def end(self, error: str | None = None, kind: str | None = None) -> None:
        """The reply is made: a result, or the error text and type it carries."""
        exc = self.exception
        if error is not None:
            kind = error_type(exc) if exc is not None else kind or _OTHER
            _fail(self._api, self._span, kind, error, exc)
        self._span.end()


def server_span(
    headers: Mapping[str, object] | None, method: str | None, *, call_id: str | None,
    reply_queue: str, queue: str | None,
) -> ServerSpan | None:  # fmt: skip
    """Start the SERVER span of a request, a child of the trace context its headers carry (a
    new trace when they carry none), or None when tracing is off. `method` is the handler's
    wire name, None when no handler has the requested name."""
    api = _active()
    if api is None:
        return None
    parent = api.propagate.extract(headers or {}, getter=api.getter)
    if method is None:
        name, attributes = RPC_SYSTEM, {"rpc.system": RPC_SYSTEM, "rpc.method": _OTHER}
    else:
        name, attributes = span_name(method), _rpc_attributes(method)
    attributes["messaging.system"] = "rabbitmq"
    if queue is not None:
        attributes["messaging.destination.name"] = queue
    if call_id is not None:
        attributes["messaging.message.id"] = call_id
    attributes["messaging.message.conversation_id"] = reply_queue
    span = api.tracer.start_span(name, context=parent, kind=api.server, attributes=attributes)
    return ServerSpan(api, span, api.trace.set_span_in_context(span, parent))
