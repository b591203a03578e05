"""Hypothesis settings and strategies the core's property-based tests share: JSON and msgpack
values, AMQP properties, short names and error texts (surrogates and over-long ones too)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from amqprpc._envelope import MAX_ERROR_TEXT
from amqprpc.protocol import Properties

SETTINGS = settings(max_examples=100, deadline=None)
STATEFUL = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)

msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
msgpack_keys = st.text() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.binary()
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(msgpack_keys, inner, max_size=5),
    max_leaves=20,
)

# Short strings: at most 63 characters is at most 252 UTF-8 bytes.
shortstrs = st.text(max_size=63)
names = st.text(min_size=1, max_size=63)  # st.text() has no surrogates
# Error texts, surrogates included (an OSError about an undecodable path carries them).
# (st.text() drops surrogates even from an explicit alphabet, so join characters instead.)
any_chars = st.characters() | st.characters(categories=["Cs"])
error_texts = st.lists(any_chars, max_size=40).map("".join) | st.builds(
    str.__mul__, st.characters(), st.integers(MAX_ERROR_TEXT - 5, MAX_ERROR_TEXT + 50)
)  # long texts around the truncation limit, cheaply

properties_strategy = st.builds(
    Properties,
    content_type=st.none() | shortstrs,
    content_encoding=st.none() | shortstrs,
    headers=st.none() | st.dictionaries(shortstrs, st.text(max_size=100), max_size=4),
    delivery_mode=st.none() | st.integers(0, 255),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none() | shortstrs,
    reply_to=st.none() | shortstrs,
    expiration=st.none() | shortstrs,
    message_id=st.none() | shortstrs,
    timestamp=st.none() | st.integers(0, 2**64 - 1),
    type=st.none() | shortstrs,
    user_id=st.none() | shortstrs,
    app_id=st.none() | shortstrs,
    cluster_id=st.none() | shortstrs,
)
