"""What the benchmark suite measures: the workloads, the sides (a client kind against a server
kind under a workload) and the rows, each comparing two sides (or a core measure) to a target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    calls: int
    inflight: int
    warmup: int

    def describe(self) -> str:
        if self.inflight == 1:
            return f"{self.calls:,} calls one at a time after {self.warmup:,}"
        return f"{self.calls:,} calls, {self.inflight} in flight, after {self.warmup:,}"


WORKLOADS = {
    "tput": Workload(10_000, 100, 1_000),
    "seq": Workload(2_000, 1, 200),
    "threads": Workload(4_000, 16, 400),
}
QUICK_WORKLOADS = {
    "tput": Workload(5_000, 100, 500),
    "seq": Workload(1_000, 1, 100),
    "threads": Workload(2_000, 16, 200),
}
CORE_CALLS, QUICK_CORE_CALLS = 20_000, 5_000
# Rounds of A/B runs. The machine is shared and a side's figure can swing by 30% or more from
# one run to the next: more rounds give steadier medians (a round takes about a minute).
ROUNDS, QUICK_ROUNDS = 10, 3
PENDING = 10_000  # calls in flight for the memory row


@dataclass(frozen=True)
class Side:
    """One client kind against one server kind under one workload."""

    client: str
    server: str
    workload: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.client}>{self.server}"


SIDES = {
    "aio": Side("amqprpc-aio", "amqprpc-aio", "tput", "amqprpc async -> amqprpc async server"),
    "raw-aio": Side("raw-aioamqp", "raw-aioamqp", "tput", "raw aioamqp -> raw aioamqp server"),
    "rmq": Side(
        "amqprpc-aiormq", "amqprpc-aiormq", "tput", "amqprpc async on aiormq -> same server"
    ),
    "raw-rmq": Side("raw-aiormq", "raw-aiormq", "tput", "raw aiormq -> raw aiormq server"),
    "sync-seq": Side("amqprpc-seq", "raw-aioamqp", "seq", "amqprpc sync ClientCodec"),
    "pika-seq": Side("pika-seq", "raw-aioamqp", "seq", "raw pika BlockingConnection loop"),
    "sync-threads": Side(
        "amqprpc-threads", "raw-aioamqp", "threads", "16 threads, one ThreadSafeClientCodec"
    ),
    "pika-select": Side(
        "pika-select", "raw-aioamqp", "threads", "raw pika SelectConnection, 16 in flight"
    ),
    "go-py": Side("go", "amqprpc-aio", "tput", "Go client -> amqprpc async server"),
    "py-go": Side("amqprpc-aio", "go", "tput", "amqprpc async client -> Go server"),
    "go-go": Side("go", "go", "tput", "Go client -> Go server"),
    "aio-pika": Side("aio-pika", "aio-pika", "tput", "aio-pika JsonRPC -> aio-pika JsonRPC"),
    "otel-off": Side(
        "amqprpc-aio-otel-off", "amqprpc-aio-otel-off", "tput",
        "amqprpc async, OpenTelemetry imported, no tracer provider",
    ),
    "otel-on": Side(
        "amqprpc-aio-otel-on", "amqprpc-aio-otel-on", "tput",
        "amqprpc async, tracing on (SDK provider, spans dropped)",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    baseline: str
    group: str
    metric: str  # calls_per_s or p50_us (ratios), core_us or bytes (absolute)
    op: str  # ">=" or "<="
    target: float
    stretch: float | None = None
    ours: str | None = None
    base: str | None = None
    description: str = ""

    @property
    def absolute(self) -> bool:
        return self.metric in ("core_us", "bytes")

    def met(self, value: float, limit: float | None = None) -> bool:
        limit = self.target if limit is None else limit
        return value >= limit if self.op == ">=" else value <= limit


ROWS = [
    Row(
        "tput", "async tput", "raw aioamqp", "tput", "calls_per_s", ">=", 2.3,
        ours="aio", base="raw-aio",
        description="amqprpc async client -> amqprpc async server, calls/s, against a raw "
        "aioamqp client and server on the same wire protocol with expiration, mandatory and "
        "ack-after-reply on",
    ),
    Row(
        "aiormq", "async tput on aiormq", "raw aiormq", "aiormq", "calls_per_s", ">=", 2.0,
        ours="rmq", base="raw-rmq",
        description="amqprpc async client and server on aiormq connections, calls/s, against "
        "a raw aiormq client and server (public API, confirms off) on the same wire protocol",
    ),
    Row(
        "aiormq-aioamqp", "aiormq adapter vs aioamqp's", "amqprpc on aioamqp", "aiormq",
        "calls_per_s", ">=", 1.0, ours="rmq", base="aio",
        description="amqprpc async client and server on aiormq, calls/s, against the same on "
        "aioamqp",
    ),
    Row(
        "seq", "sync seq p50", "raw pika Blocking", "seq", "p50_us", "<=", 1.05,
        ours="sync-seq", base="pika-seq",
        description="amqprpc sync ClientCodec on a BlockingConnection, p50 latency of "
        "sequential calls, against a raw pika BlockingConnection loop; both call the raw "
        "aioamqp server (ack after reply)",
    ),
    Row(
        "threads", "sync 16 threads", "raw pika Select x16", "threads", "calls_per_s", ">=",
        0.9, ours="sync-threads", base="pika-select",
        description="16 threads sharing one ThreadSafeClientCodec, calls/s, against a raw pika "
        "SelectConnection loop keeping 16 calls in flight; both call the raw aioamqp server",
    ),
    Row(
        "go-to-py", "Go client -> py server", "Go -> Go", "go", "calls_per_s", ">=", 0.85,
        ours="go-py", base="go-go",
        description="the Go client against amqprpc's async server, calls/s, against the Go "
        "client and the Go peer server",
    ),
    Row(
        "py-to-go", "py client -> Go server", "Go -> Go", "go", "calls_per_s", ">=", 0.85,
        ours="py-go", base="go-go",
        description="amqprpc's async client against the Go peer server, calls/s, against the "
        "Go client and the Go peer server",
    ),
    Row(
        "aio-pika", "async tput vs aio-pika", "aio-pika JsonRPC", "aio-pika", "calls_per_s",
        ">=", 3.0, ours="aio", base="aio-pika",
        description="amqprpc async client and server, calls/s, against aio-pika's JsonRPC "
        "pattern on both sides (publisher confirms off, prefetch as ours)",
    ),
    Row(
        "otel-off", "tracing installed, off", "tracing not loaded", "otel", "calls_per_s", ">=",
        0.97, ours="otel-off", base="aio",
        description="amqprpc async client and server with opentelemetry-api imported and no "
        "tracer provider set, calls/s, against the same with OpenTelemetry never imported",
    ),
    Row(
        "otel-on", "tracing on (report)", "tracing not loaded", "otel", "calls_per_s", ">=",
        0.0, ours="otel-on", base="aio",
        description="amqprpc async client and server with the OpenTelemetry SDK's provider set "
        "(batch processor, spans dropped), calls/s, against no tracing: reported, no target",
    ),
    Row(
        "core", "core CPU over base, Json", "encode+decode", "core", "core_us", "<=", 5.0,
        description="bench_core.py's measure: CPU us per call that the sans-IO core adds, "
        "client and server sides together, Json, over its baseline of the same round: "
        "encoding and decoding the same values only",
    ),
    Row(
        "core-msgpack", "core CPU over base, MsgPack", "encode+decode", "core-msgpack",
        "core_us", "<=", 5.0, description="as core, with the MsgPack formatter",
    ),
    Row(
        "memory", "memory/pending call", "bare dict", "memory", "bytes", "<=", 1024.0,
        description="bench_core.py's bytes per pending call with 10,000 in flight (tracemalloc)"
        "; baseline: a dict of call id -> (deadline, token)",
    ),
]  # fmt: skip
ROWS_BY_NAME = {row.name: row for row in ROWS}
