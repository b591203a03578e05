"""Sync clients: amqprpc (pika) against raw pika request/reply loops, same run, same server.

The suite's rows `seq` and `threads` alone (see run.py and peers_sync.py):
- seq: sequential calls on a BlockingConnection, p50/p99 latency; baseline: a raw pika loop
  that publishes a request and pumps the connection until its reply arrives.
- threads: 16 threads sharing one thread-safe amqprpc client, calls/s; baseline: a raw pika
  SelectConnection loop keeping 16 calls in flight on one thread.
Both call the raw aioamqp server in a child process. Rows alternate A/B for several rounds;
the table shows medians and ranges. Writes no files (run.py does).

    python benchmarks/bench_sync.py [--rounds 10] [--quick] [--rows seq]
"""

from __future__ import annotations

import sys

import run

if __name__ == "__main__":
    sys.exit(run.main(["--rows", "seq,threads", "--no-json", "--no-png", *sys.argv[1:]]))
