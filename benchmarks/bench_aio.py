"""Async throughput: amqprpc (aioamqp) against a raw aioamqp request/reply loop.

The suite's rows `tput` and `aio-pika` alone (see run.py and peers_aio.py): 10,000 calls with
100 in flight after 1,000 warm-up calls, from a client child process to a server child
process, against a raw aioamqp client and server on the same wire protocol with mandatory,
expiration and ack-after-reply on, and against aio-pika's JsonRPC. Rows alternate A/B for
several rounds; the table shows medians and ranges. Writes no files (run.py does).

    python benchmarks/bench_aio.py [--rounds 10] [--quick] [--rows tput]
"""

from __future__ import annotations

import sys

import run

if __name__ == "__main__":
    sys.exit(run.main(["--rows", "tput,aio-pika", "--no-json", "--no-png", *sys.argv[1:]]))
