"""Content headers for the async client libraries that decode with pamqp (aioamqp and aiormq):
pamqp's decoder first, the core's lenient one where pamqp raises on a header RabbitMQ passed on.

Used by both `_compat` modules' frame readers, which use pamqp's private frame functions (their
version gates cover pamqp).
"""

from __future__ import annotations

import logging
from typing import Any

import pamqp.commands
import pamqp.exceptions
import pamqp.frame
import pamqp.header

from .._frames import decode_content_header
from ._base import to_wire

__all__ = ["PAMQP_FUNCS", "header_frame"]

logger = logging.getLogger(__name__.rpartition(".")[0] + "._compat")

PAMQP_FUNCS = ("_unmarshal_method_frame", "_unmarshal_header_frame", "_unmarshal_body_frame")

# What pamqp raises on a content header it cannot read: UnmarshalingException wraps struct.error
# and ValueError (UnicodeDecodeError, year out of range); the others escape it unwrapped.
_DECODE_ERRORS = (
    pamqp.exceptions.UnmarshalingException,
    ArithmeticError,
    OSError,
    RecursionError,
    ValueError,
)


def header_frame(payload: bytes) -> Any:
    """A content header frame's payload as pamqp's ContentHeader. A header pamqp cannot decode
    (a short string that is not UTF-8, a timestamp beyond year 9999, tables nested too deep)
    is read by the core's lenient decoder. Raises ProtocolViolation when neither can read it
    (never from RabbitMQ, which checks headers)."""
    try:
        return pamqp.frame._unmarshal_header_frame(payload)
    except _DECODE_ERRORS as exc:
        body_size, properties = decode_content_header(payload, lenient=True)
        logger.warning("pamqp could not decode a content header (%s); read it leniently", exc)
    props = pamqp.commands.Basic.Properties()
    for name, value in to_wire(properties).items():
        setattr(props, name, value)  # as pamqp's unmarshal does: no validation
    return pamqp.header.ContentHeader(body_size=body_size, properties=props)
