"""Codec, layer 2 of the s2r wire protocol (docs/protocol.md §2–3): header, CRC, sequence numbers, and the one
validation path every received frame goes through.

:func:`encode` turns a message into wire bytes (header + payload + CRC, COBS, ``0x00``). :func:`parse_frame` is
the receiver's check of one stretch, in the order of the spec's table (COBS, size, length field, CRC, major
version); :func:`decode_frame` adds the registry lookup and the payload; :class:`FrameDecoder` runs both on a
byte stream (through :class:`~firmware_bridge.framing.Framer`), never raises, counts every error under the
counter the spec names and every gap in the sender's sequence numbers.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from typing import Generic

from firmware_bridge.framing import _USE_C, Framer, ProtocolError, _c_encode, _decode_cobs, _py_cobs_encode
from firmware_bridge.messages import MESSAGES, PROTO_MAJOR, M, Message

HEADER = struct.Struct("<BBHH")  # major version, message type, sequence number, payload length
CRC = struct.Struct("<H")
MAX_PAYLOAD = 1024  # bytes; longer frames are rejected (bounds the decoder's buffer)
MAX_FRAME = HEADER.size + MAX_PAYLOAD + CRC.size  # 1032 bytes: the largest decoded frame
# COBS adds at most 1 + floor(n / 254) bytes to n: 1037, the longest stretch between delimiters a receiver accepts
MAX_ENCODED = MAX_FRAME + 1 + MAX_FRAME // 254
_crc_hqx = binascii.crc_hqx  # the per-frame paths call it directly: one Python call less per frame


def encode(msg: Message, seq: int) -> bytes:
    """One message → wire bytes: COBS(header + payload + CRC) + 0x00. ``seq`` is taken modulo 2**16."""
    payload = msg.pack()
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"{msg.TYPE.name} payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    body = HEADER.pack(PROTO_MAJOR, msg.TYPE, seq & 0xFFFF, len(payload)) + payload
    framed = body + CRC.pack(_crc_hqx(body, 0xFFFF))
    return _c_encode(framed, True) if _USE_C else _py_cobs_encode(framed, b"\x00")


@dataclass(frozen=True)
class Frame(Generic[M]):
    """A decoded frame: the sender's sequence number and the message."""

    seq: int
    msg: M


class FrameError(ProtocolError):
    """A stretch that is not a valid frame; ``counter`` names the DecoderStats counter it goes to."""

    def __init__(self, counter: str, text: str, major: int = -1) -> None:
        super().__init__(text)
        self.counter, self.major = counter, major


def parse_frame(raw: bytes) -> tuple[int, int, bytes]:
    """The one validation path: one stretch (no delimiter) → (type, seq, payload). Raises :class:`FrameError`.

    Checks, in the order of docs/protocol.md §3: COBS decodes; at least header + CRC; the length field equals
    the payload size and is at most 1024; the CRC matches; the major version is ours."""
    try:
        data = _decode_cobs(raw)
    except ValueError:  # ProtocolError from the Python COBS, ValueError from the C one
        raise FrameError("length_errors", "COBS: zero code byte or block runs past the end") from None
    n = len(data)
    if n < HEADER.size + CRC.size:
        raise FrameError("length_errors", f"frame of {n} bytes is shorter than header + CRC")
    major, mtype, seq, length = HEADER.unpack_from(data)
    if length != n - HEADER.size - CRC.size or length > MAX_PAYLOAD:
        raise FrameError("length_errors", f"length field {length}, frame of {n} bytes (payloads ≤ {MAX_PAYLOAD})")
    if data[n - 2] | data[n - 1] << 8 != _crc_hqx(data[: n - 2], 0xFFFF):  # CRC: a little-endian u16
        raise FrameError("crc_errors", "CRC mismatch")
    if major != PROTO_MAJOR:
        raise FrameError("version_errors", f"protocol major version {major}; this side speaks {PROTO_MAJOR}", major)
    return mtype, seq, data[HEADER.size : n - CRC.size]


def unpack_message(mtype: int, payload: bytes) -> Message:
    """Type byte and payload → message (the registry lookup). Raises :class:`FrameError`."""
    cls = MESSAGES.get(mtype)
    if cls is None:
        raise FrameError("unknown_types", f"unknown message type 0x{mtype:02x}")
    try:
        return cls.unpack(payload)
    except (ProtocolError, struct.error, ValueError) as exc:
        raise FrameError("payload_errors", str(exc)) from None


def decode_frame(raw: bytes) -> Frame[Message]:
    """One COBS frame without its 0x00 delimiter → Frame. Raises FrameError (a ProtocolError); FrameDecoder counts."""
    mtype, seq, payload = parse_frame(raw)
    return Frame(seq, unpack_message(mtype, payload))


@dataclass
class DecoderStats:
    """Counters of a FrameDecoder (since creation)."""

    frames: int = 0  # valid frames delivered
    bytes: int = 0  # bytes fed
    crc_errors: int = 0  # bad CRC
    length_errors: int = 0  # bad COBS, too short, length field mismatch, too long
    version_errors: int = 0  # valid CRC but unknown protocol major version
    unknown_types: int = 0  # valid CRC, unknown message type (skipped)
    payload_errors: int = 0  # valid CRC, known type, malformed payload
    resyncs: int = 0  # discarded stretches of bytes (each bad frame or garbage run)
    seq_gaps: int = 0  # frames missing according to the sender's sequence numbers
    last_bad_major: int = -1  # the most recent unknown major version seen (handshake diagnostics)
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.crc_errors + self.length_errors + self.version_errors + self.payload_errors



class FrameDecoder:
    """Streaming decoder: feed arbitrary byte chunks, get complete valid frames. Never raises.

    :class:`~firmware_bridge.framing.Framer` splits the stream at each 0x00; each stretch goes through
    :func:`parse_frame` and :func:`unpack_message`. Anything invalid is counted in :attr:`stats` (the counter
    its :class:`FrameError` names) and dropped; decoding resumes after the delimiter (resync). Sequence gaps count
    frames lost between consecutive frames that passed the CRC and version checks (a jump backwards, e.g. a
    sender restart or a retransmission, is not a gap).
    """

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self.framer = Framer(MAX_ENCODED)
        self._last_seq: int | None = None

    def feed(self, chunk: bytes) -> list[Frame[Message]]:
        """Consume bytes; return the valid frames completed by them, in order."""
        s = self.stats
        n = len(chunk)
        s.bytes += n
        chunk = bytes(chunk)
        if 1 < n <= MAX_ENCODED + 1 and chunk.find(0) == n - 1 and self.framer.idle:
            # Fast path, what a read returns at 1 kHz: exactly one whole frame and nothing buffered. Same result
            # as the general path below (one stretch, empty tail) without building the lists.
            frame = self._decode(chunk[:-1])
            return [] if frame is None else [frame]
        stretches, too_long = self.framer.feed(chunk)
        s.length_errors += too_long
        s.resyncs += too_long
        out = []
        for raw in stretches:
            frame = self._decode(raw)
            if frame is not None:
                out.append(frame)
        return out

    def _decode(self, raw: bytes) -> Frame[Message] | None:
        s = self.stats
        try:
            mtype, seq, payload = parse_frame(raw)
        except FrameError as exc:
            setattr(s, exc.counter, getattr(s, exc.counter) + 1)
            if exc.counter == "version_errors":
                s.last_bad_major = exc.major
            else:
                s.resyncs += 1  # the stretch is garbage: the receiver resynchronised at its delimiter
            return None
        last, self._last_seq = self._last_seq, seq  # sequence gaps (inline: this runs for every frame)
        if last is not None:
            ahead = (seq - last - 1) & 0xFFFF
            if 0 < ahead < 0x8000:
                s.seq_gaps += ahead
        try:
            msg = unpack_message(mtype, payload)
        except FrameError as exc:
            setattr(s, exc.counter, getattr(s, exc.counter) + 1)
            return None
        s.frames += 1
        return Frame(seq, msg)
