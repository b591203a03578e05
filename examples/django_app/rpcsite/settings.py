"""Settings of a minimal Django site whose view calls a remote `Arith.mul` over amqprpc
(examples/pyserver.py serves it).

The RPC client is made once, here, at import time. It is the thread-safe sync client: it
connects on first use, serves every request thread of the process at once, and starts afresh
in each worker a pre-forking server (gunicorn) forks from this process.
"""

import os

import amqprpc
import amqprpc.sync

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
ROOT_URLCONF = "rpcsite.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

AMQPRPC_URL = os.environ.get("AMQPRPC_URL", "amqp://guest:guest@127.0.0.1:5672/")
AMQPRPC_QUEUE = os.environ.get("AMQPRPC_QUEUE", "testrpc")
RPC = amqprpc.sync.client_codec(AMQPRPC_URL, AMQPRPC_QUEUE, amqprpc.Json, timeout=5)
