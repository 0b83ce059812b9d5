"""Framing, layer 1 of the s2r wire protocol (docs/protocol.md §2–3): COBS, the 0x00 delimiter, CRC-16.

A firmware author's reference: :func:`cobs_encode` / :func:`cobs_decode` (Cheshire & Baker 1999) and
:func:`crc16` are the whole byte-level transform, and :class:`Framer` is the receiving side of the delimiter:
it splits a byte stream at every ``0x00`` and never buffers more than the longest legal stretch. Message layouts
are in ``firmware_bridge/messages.py``, the header, CRC check and sequence numbers in ``firmware_bridge/codec.py``;
``firmware_bridge.protocol`` re-exports all three.

COBS runs in C (``firmware_bridge/_cobs.c``) where the install could build it, else in the pure-Python reference
below, which gives the same bytes (``S2R_COBS=python`` in the environment forces the reference;
:data:`COBS_BACKEND` says which one runs).
"""

from __future__ import annotations

import binascii
import os


class ProtocolError(ValueError):
    """A frame or payload that does not follow docs/protocol.md."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0. ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)


# COBS code byte for a block of n data bytes followed by a zero (n = 0 … 253), as 1-byte strings to join
_CODE_FOR_LEN = [bytes((n + 1,)) for n in range(254)]


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing (Cheshire & Baker 1999): the result contains no 0x00 byte."""
    return _c_encode(data, False) if _USE_C else _py_cobs_encode(data, b"")


def _py_cobs_encode(data: bytes, delimiter: bytes) -> bytes:
    """Reference :func:`cobs_encode` followed by ``delimiter`` (b"\\x00" for a frame on the wire, b"" for the bare code)."""
    chunks = data.split(b"\x00")
    if len(data) < 254 or max(map(len, chunks)) < 254:
        # Every frame the protocol sends in practice: code byte + chunk per zero. Interleaving by slice
        # assignment keeps the per-chunk work in C (faster than a Python loop: BENCHMARKS.md, Serial bridge); the
        # delimiter joins in the same pass instead of copying the frame once more.
        parts = [delimiter] * (2 * len(chunks) + 1)
        parts[0:-1:2] = map(_CODE_FOR_LEN.__getitem__, map(len, chunks))
        parts[1::2] = chunks
        return b"".join(parts)
    out = bytearray()
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        while len(chunk) >= 254:
            out.append(0xFF)
            out += chunk[:254]
            chunk = chunk[254:]
            if not chunk and i == last:  # a full block at the very end needs no trailing code byte
                return bytes(out + delimiter)
        out.append(len(chunk) + 1)
        out += chunk
    return bytes(out + delimiter)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (``data`` without the 0x00 delimiter). Raises ProtocolError if malformed."""
    if not _USE_C:
        return _py_cobs_decode(data)
    try:
        return _c_decode(data)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def _py_cobs_decode(data: bytes) -> bytes:
    """Reference :func:`cobs_decode`."""
    n = len(data)
    if 0xFF not in data:
        # No full 254-byte block, so every code byte after the first stands for a zero: overwrite them in a
        # copy and drop the first. The walk only touches code bytes (faster than copying block by block: BENCHMARKS.md, Serial bridge).
        out = bytearray(data)
        i = 0
        while i < n:
            code = data[i]
            if code == 0:
                break
            out[i] = 0
            i += code
        if i != n:
            raise ProtocolError("COBS: zero code byte or block runs past the end of the frame")
        del out[:1]
        return bytes(out)
    out = bytearray()
    i = 0
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ProtocolError("COBS: zero code byte or block runs past the end of the frame")
        out += data[i + 1 : end]
        if code != 0xFF and end < n:
            out.append(0)
        i = end
    return bytes(out)


try:  # the C build of the two functions above (same bytes, same errors as ValueError); see the module docstring
    from firmware_bridge._cobs import decode as _c_decode
    from firmware_bridge._cobs import encode as _c_encode
except ImportError:  # no compiler at install time
    _c_decode = _c_encode = None
_USE_C = _c_encode is not None and os.environ.get("S2R_COBS", "").lower() != "python"
COBS_BACKEND = "c" if _USE_C else "python"
_decode_cobs = _c_decode if _USE_C else _py_cobs_decode  # the decoder's per-frame call: ValueError or ProtocolError


class Framer:
    """Receiving side of the delimiter: feed arbitrary chunks, get the stretches between ``0x00`` bytes.

    Empty stretches (two delimiters in a row: a sender flushing the line) are dropped silently. A stretch longer
    than ``max_len`` is never buffered: it is dropped and counted in the return value when its delimiter comes.
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self._buf = bytearray()  # the start of a stretch still arriving
        self._overflow = False  # the stretch arriving is already too long

    @property
    def idle(self) -> bool:
        """Nothing is buffered: the next chunk starts a new stretch."""
        return not self._buf and not self._overflow

    def feed(self, chunk: bytes) -> tuple[list[bytes], int]:
        """(complete stretches in order, number of too-long stretches dropped) for one chunk."""
        # One split per chunk: every piece but the last ends at a delimiter; the last is the start of a stretch
        # still arriving and waits in the buffer for the next chunk.
        *pieces, tail = bytes(chunk).split(b"\x00")
        out: list[bytes] = []
        too_long = 0
        for i, raw in enumerate(pieces):
            if i == 0 and not self.idle:  # completes the stretch buffered from earlier chunks
                over = self._overflow or len(self._buf) + len(raw) > self.max_len
                raw = bytes(self._buf) + raw
                self._buf, self._overflow = bytearray(), False
            else:
                over = len(raw) > self.max_len
            if over:
                too_long += 1
            elif raw:
                out.append(raw)
        if tail and not self._overflow:
            self._buf += tail
            if len(self._buf) > self.max_len:  # longer than any legal stretch: stop buffering, count it at 0x00
                self._overflow, self._buf = True, bytearray()
        return out, too_long
