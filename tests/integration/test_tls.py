"""AMQP over TLS (amqps://) on the private broker, whose certificate a test CA signed.

How to trust a private CA:
- sync API, URL: pika's `ssl_options` query argument, a Python dict literal, URL-encoded:
  `amqps://user:pass@localhost:5671/?ssl_options=%7B%27ca_certs%27%3A+%27%2Fetc%2Fca.pem%27%7D`
  (`?ssl_options={'ca_certs': '/etc/ca.pem'}` before encoding; `pika_tls_url` below).
- sync API, an `ssl.SSLContext`: `pika.URLParameters("amqps://...")`, then
  `params.ssl_options = pika.SSLOptions(context)`, and pass `params` for the URL.
- async API: `aiormq.connect("amqps://...", context=context)`, or
  `aioamqp.from_url("amqps://...", ssl=context)`.
pika, aiormq and aioamqp check the host name against the certificate (`localhost` here).
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import close_async, connect_async, transport_of
from tests.brokers import PrivateBroker
from tests.integration.peers import Arith, SyncServerThread

# The private broker takes ~9 s to start: the tests that need it are `slow`.


def pika_tls_url(broker: PrivateBroker, ca_file: Path | None = None) -> str:
    """The broker's amqps URL with a CA file (its own by default) in pika's `ssl_options`."""
    ssl_options = {"ca_certs": str(ca_file or broker.ca_file)}
    return f"{broker.tls_url}?{urlencode({'ssl_options': repr(ssl_options)})}"


def new_queue() -> str:
    return f"amqprpc-tls-{uuid.uuid4().hex[:12]}"


@pytest.mark.slow
def test_sync_server_and_clients_over_amqps(private_broker: PrivateBroker) -> None:
    url, name = pika_tls_url(private_broker), new_queue()
    assert url.startswith("amqps://") and "ssl_options=%7B%27ca_certs%27%3A+%27%2F" in url
    server = SyncServerThread(url, name, amqprpc.Json, Arith()).start()  # server_codec(url)
    try:
        with amqprpc.sync.client_codec(url, name, amqprpc.Json, timeout=10) as codec:
            assert codec.client("Arith").Mul({"A": 6, "B": 7}) == 42

        params = pika.URLParameters(private_broker.tls_url)
        params.ssl_options = pika.SSLOptions(private_broker.ssl_context())
        with amqprpc.sync.client_codec(params, name, amqprpc.Json, timeout=10) as codec:
            assert codec.call("Arith.Div", {"A": 7, "B": 2}) == {"Quo": 3, "Rem": 1}

        with pika.BlockingConnection(params) as connection:  # a caller's TLS connection
            codec = amqprpc.sync.client_codec(connection, name, amqprpc.Json, timeout=10)
            assert codec.call("Arith.Echo", "über TLS") == "über TLS"
            codec.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_sync_codecs_check_the_certificate(private_broker: PrivateBroker) -> None:
    # Without our CA, pika trusts the system's CAs only: the handshake must fail, and say why.
    with amqprpc.sync.client_codec(private_broker.tls_url, new_queue(), amqprpc.Json) as codec:
        with pytest.raises(amqprpc.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
            codec.call("Arith.Mul", {"A": 1, "B": 1}, timeout=10)
    with pytest.raises(amqprpc.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
        amqprpc.sync.server_codec(private_broker.tls_url, new_queue(), amqprpc.Json)
    # The right CA, the wrong host name (the certificate is for localhost and 127.0.0.1).
    params = pika.URLParameters(private_broker.tls_url)
    params.ssl_options = pika.SSLOptions(private_broker.ssl_context(), "rabbit.example")
    with pytest.raises(amqprpc.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
        amqprpc.sync.server_codec(params, new_queue(), amqprpc.Json)


def test_unloadable_tls_files_in_the_url_are_a_usage_error(tmp_path: Path) -> None:
    # Found when the codec is made, before any connection: no broker needed.
    password = secrets.token_hex(8)
    base = f"amqps://user:{password}@localhost:5671/"
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    for ca, why in [("no-such-ca.pem", "No such file"), ("not-a-cert.pem", "")]:
        url = f"{base}?{urlencode({'ssl_options': repr({'ca_certs': str(tmp_path / ca)})})}"
        for make in (amqprpc.sync.client_codec, amqprpc.sync.server_codec):
            with pytest.raises(amqprpc.UsageError, match=f"cannot load the TLS files.*{why}") as e:
                make(url, new_queue(), amqprpc.Json)
            assert password not in str(e.value)
    bad_literal = f"{base}?ssl_options=%7B%27ca_certs%27"  # {'ca_certs'
    with pytest.raises(amqprpc.UsageError, match=r"not an AMQP URL.*\(SyntaxError\)") as err:
        amqprpc.sync.client_codec(bad_literal, new_queue(), amqprpc.Json)
    assert password not in str(err.value)


@pytest.mark.slow
async def test_async_server_and_client_over_amqps(
    private_broker: PrivateBroker, aio_backend: str
) -> None:
    name = new_queue()
    context = private_broker.ssl_context()
    protocol = await connect_async(aio_backend, private_broker.tls_url, ssl_context=context)
    try:
        async with await amqprpc.server_codec(protocol, name, amqprpc.Json) as server:
            server.register(Arith())
            await server.started()
            async with await amqprpc.client_codec(protocol, name, amqprpc.Json, timeout=10) as c:
                assert await c.client("Arith").Mul({"A": 3, "B": 4}) == 12
        assert transport_of(protocol).get_extra_info("ssl_object") is not None  # really TLS
    finally:
        await close_async(protocol)
    with pytest.raises(OSError) as refused:  # the system's CAs do not know ours
        await connect_async(aio_backend, private_broker.tls_url)
    # aiormq raises AMQPConnectionError (a ConnectionError) from the verification error
    verify_error = refused.value.__cause__ if aio_backend == "aiormq" else refused.value
    assert isinstance(verify_error, ssl.SSLCertVerificationError), repr(refused.value)
