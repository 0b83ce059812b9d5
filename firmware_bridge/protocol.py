"""s2r wire protocol v1: framing (COBS + CRC-16/CCITT-FALSE), message types, streaming decoder.

The byte-level specification is ``docs/protocol.md``; hex test vectors are in ``docs/protocol_vectors.json``.
This module is the reference implementation used by both ends of the link (the controller runtime in
``deploy/`` and the firmware emulator in ``firmware_bridge/emulator.py``). Python + numpy, no I/O; COBS runs in C
(``firmware_bridge/_cobs.c``) where the install could build it, else in the pure-Python reference below, which
gives the same bytes (``S2R_COBS=python`` in the environment forces the reference; :data:`COBS_BACKEND` says
which one runs):

* :func:`encode` turns a message into wire bytes (one COBS frame ending in ``0x00``);
* :class:`FrameDecoder` takes arbitrary byte chunks and yields :class:`Frame` s; it never raises on garbage,
  rejects frames with a bad CRC, length, version or payload, resynchronises at the next ``0x00`` and counts
  every error and every gap in the sender's sequence numbers;
* :func:`ident_from_spec` / :func:`check_ident` derive and verify the board's IDENT from the one
  :class:`sim.spec.RobotSpec`; :func:`frame_to_sensor` / :func:`sensor_to_frame` convert between SENSOR
  messages and the simulator's :class:`sim.spec.SensorFrame`, so the runtime builds observations with the same
  ``RobotSpec.build_obs`` as the simulator.

Floats on the wire are IEEE-754 float32, little-endian, SI units (rad, rad/s, m, m/s, N·m, Hz).
"""

from __future__ import annotations

import binascii
import math
import os
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Generic, TypeVar

import numpy as np

from sim.errors import UserError
from sim.spec import RobotSpec, SensorFrame, SensorLayout

PROTO_MAJOR = 1  # incompatible changes; carried in every frame header, unknown majors are refused
PROTO_MINOR = 1  # compatible additions (1.1: GET_STATUS, the REFUSED fault bit; receivers ignore trailing bytes)

HEADER = struct.Struct("<BBHH")  # major version, message type, sequence number, payload length
CRC = struct.Struct("<H")
MAX_PAYLOAD = 1024  # bytes; longer frames are rejected (bounds the decoder's buffer)
MAX_FRAME = HEADER.size + MAX_PAYLOAD + CRC.size  # 1032 bytes: the largest decoded frame
# COBS adds at most 1 + floor(n / 254) bytes to n: 1037, the longest stretch between delimiters a receiver accepts
MAX_ENCODED = MAX_FRAME + 1 + MAX_FRAME // 254


class MsgType(IntEnum):
    """Message type byte (header offset 1)."""

    HELLO = 0x01  # host → board: start a session
    IDENT = 0x02  # board → host: versions, robot, sensor layout, limits
    SENSOR = 0x03  # board → host: one sample of every sensor
    TORQUE = 0x04  # host → board: motor torques, N·m
    ENABLE = 0x05  # host → board: arm the motors, clear latched faults
    DISABLE = 0x06  # host → board: zero torque, disarm
    STATUS = 0x07  # board → host: fault bits and error counters
    PING = 0x08  # either way: latency probe
    PONG = 0x09  # answer to PING, echoes its fields
    GET_STATUS = 0x0A  # host → board: answer STATUS, change nothing (protocol 1.1)


class Fault:
    """Fault bits (u16) in SENSOR and STATUS. Latched bits stay set until ENABLE."""

    WATCHDOG = 1 << 0  # latched: no TORQUE within the watchdog timeout, motors zeroed and disarmed
    CLAMP = 1 << 1  # the last TORQUE exceeded a torque limit and was clamped
    CRC = 1 << 2  # a frame with a bad CRC, COBS or length was received since the last SENSOR
    ESTOP = 1 << 3  # latched: emergency stop input active
    NONFINITE = 1 << 4  # the last TORQUE held NaN/inf; those motors got 0 N·m
    BAD_COMMAND = 1 << 5  # the last TORQUE had the wrong motor count; ignored
    REFUSED = 1 << 6  # the last ENABLE was refused: no HELLO yet, or the E-stop input is still active (1.1)

    NAMES: ClassVar[dict[int, str]] = {
        1 << 0: "watchdog", 1 << 1: "clamp", 1 << 2: "crc", 1 << 3: "estop", 1 << 4: "nonfinite",
        1 << 5: "bad_command", 1 << 6: "refused",
    }  # fmt: skip

    @staticmethod
    def names(bits: int) -> list[str]:
        """Names of the bits set in ``bits``."""
        return [name for bit, name in Fault.NAMES.items() if bits & bit]


class Mode:
    """Board mode bits (u8) in SENSOR, STATUS and IDENT."""

    ENABLED = 1 << 0  # motors armed: TORQUE commands are applied
    LOCKSTEP = 1 << 1  # physics advances one control period per TORQUE (emulator only)


class ProtocolError(ValueError):
    """A frame or payload that does not follow docs/protocol.md."""


# --------------------------------------------------------------------------------------------- framing


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0. ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)


_crc_hqx = binascii.crc_hqx  # the per-frame paths call it directly: one Python call less per frame


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
        # assignment keeps the per-chunk work in C (4x faster than a Python loop on a SENSOR frame); the
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
        # copy and drop the first. The walk only touches code bytes (3x faster than copying block by block).
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


# -------------------------------------------------------------------------------------------- messages


def _pack_str(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 255:
        raise ProtocolError(f"string '{s[:20]}...' is {len(b)} bytes; the protocol allows 255")
    return bytes([len(b)]) + b


class _Reader:
    """Bounds-checked little-endian reader over a payload; every overrun is a ProtocolError."""

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf, self.pos, self.what = buf, 0, what

    def take(self, fmt: str) -> tuple:
        s = struct.Struct("<" + fmt)
        if self.pos + s.size > len(self.buf):
            raise ProtocolError(f"{self.what} payload too short ({len(self.buf)} bytes)")
        out = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return out

    def floats(self, n: int) -> tuple[float, ...]:
        return self.take(f"{n}f") if n else ()

    def string(self) -> str:
        (n,) = self.take("B")
        raw = self.take(f"{n}s")[0] if n else b""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{self.what}: string is not UTF-8") from None


def _f32(values) -> tuple[float, ...]:
    """Round to float32 so a message compares equal to its decoded copy."""
    # tolist() converts to Python floats in C (exact for float32), 2-3x faster than float() per element; the
    # emulator calls this eight times per SENSOR
    return tuple(np.asarray(values, dtype=np.float32).reshape(-1).tolist())


@dataclass(frozen=True)
class Hello:
    """HELLO (host → board): open a session; the board answers IDENT."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    proto_major: int = PROTO_MAJOR
    proto_minor: int = PROTO_MINOR

    def pack(self) -> bytes:
        return struct.pack("<BB", self.proto_major, self.proto_minor)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        return cls(*_Reader(payload, "HELLO").take("BB"))


@dataclass(frozen=True)
class Ident:
    """IDENT (board → host): versions, robot, motor limits and sensor layout. See docs/protocol.md §4.2."""

    TYPE: ClassVar[MsgType] = MsgType.IDENT
    robot_id: str
    motor_names: tuple[str, ...]
    torque_limits_nm: tuple[float, ...]
    n_joints: int
    n_contacts: int
    lidar_angles_rad: tuple[float, ...]
    lidar_max_range_m: float
    aux_names: tuple[str, ...]
    aux_units: tuple[str, ...]
    sensor_rate_hz: float
    watchdog_ms: int = 100
    mode: int = 0  # Mode bits (LOCKSTEP)
    fw_version: tuple[int, int, int] = (0, 1, 0)
    proto_major: int = PROTO_MAJOR
    proto_minor: int = PROTO_MINOR

    _FIXED: ClassVar[str] = "BBBBBBHffBBBBB"

    def pack(self) -> bytes:
        nm, nl, na = len(self.motor_names), len(self.lidar_angles_rad), len(self.aux_names)
        if len(self.torque_limits_nm) != nm or len(self.aux_units) != na:
            raise ProtocolError("IDENT: one torque limit per motor and one unit per aux channel are required")
        head = struct.pack(
            "<" + self._FIXED, self.proto_major, self.proto_minor, *self.fw_version, self.mode, self.watchdog_ms,
            self.sensor_rate_hz, self.lidar_max_range_m, nm, self.n_joints, self.n_contacts, nl, na,
        )  # fmt: skip
        body = struct.pack(f"<{nm}f{nl}f", *self.torque_limits_nm, *self.lidar_angles_rad)
        strings = b"".join(
            _pack_str(s) for s in (self.robot_id, *self.motor_names, *self.aux_names, *self.aux_units)
        )
        return head + body + strings

    @classmethod
    def unpack(cls, payload: bytes) -> Ident:
        r = _Reader(payload, "IDENT")
        major, minor, fw0, fw1, fw2, mode, wd, rate, rng, nm, nj, nc, nl, na = r.take(cls._FIXED)
        limits, angles = r.floats(nm), r.floats(nl)
        robot_id = r.string()
        motors = tuple(r.string() for _ in range(nm))
        aux_names = tuple(r.string() for _ in range(na))
        aux_units = tuple(r.string() for _ in range(na))
        return cls(
            robot_id, motors, limits, nj, nc, angles, rng, aux_names, aux_units, rate, wd, mode, (fw0, fw1, fw2),
            major, minor,
        )  # fmt: skip

    def layout(self) -> SensorLayout:
        """The sensor layout this board announces, as the simulator's SensorLayout."""
        return SensorLayout(
            n_joints=self.n_joints,
            n_contacts=self.n_contacts,
            lidar_angles_rad=self.lidar_angles_rad,
            lidar_max_range_m=self.lidar_max_range_m,
            aux_names=self.aux_names,
            aux_units=self.aux_units,
            sensor_rate_hz=self.sensor_rate_hz,
        )


@dataclass(frozen=True)
class Sensor:
    """SENSOR (board → host): one sample of every sensor, SI units. See docs/protocol.md §4.3."""

    TYPE: ClassVar[MsgType] = MsgType.SENSOR
    t_us: int  # board clock, µs since boot
    cmd_seq: int  # header seq of the last TORQUE applied (0 before the first)
    faults: int  # Fault bits
    mode: int  # Mode bits
    contacts: int  # bit i = contact i
    imu_pitch_rad: float
    imu_pitch_rate_rad_s: float
    vel_mps: tuple[float, float]  # (vx, vz) state estimate
    joint_pos_rad: tuple[float, ...]
    joint_vel_rad_s: tuple[float, ...]
    torque_nm: tuple[float, ...]  # torque currently applied per motor (after clamp/watchdog)
    lidar_m: tuple[float, ...] = ()
    aux: tuple[float, ...] = ()

    _FIXED: ClassVar[str] = "<QHHBBBBBBffff"  # the fields up to vel_mps; the channel counts are bytes 14-17
    _FIXED_SIZE: ClassVar[int] = struct.calcsize(_FIXED)  # 34 bytes
    # One struct for the whole payload per channel-count layout, and where each float group starts in its
    # unpacked tuple (after the 13 fixed values): packing or unpacking a SENSOR is a single struct call.
    _LAYOUTS: ClassVar[dict[bytes, tuple[struct.Struct, int, int, int, int]]] = {}

    @classmethod
    def _layout(cls, counts: bytes) -> tuple[struct.Struct, int, int, int, int]:
        """Struct and float-group offsets for ``counts`` = bytes (n_joints, n_motors, n_lidar, n_aux)."""
        lay = cls._LAYOUTS.get(counts)
        if lay is None:
            nj, nm, nl, na = counts
            a = 13 + nj
            s = struct.Struct(f"{cls._FIXED}{2 * nj + nm + nl + na}f")
            lay = cls._LAYOUTS[counts] = (s, a, a + nj, a + nj + nm, a + nj + nm + nl)
        return lay

    def pack(self) -> bytes:
        jp, jv, tq = self.joint_pos_rad, self.joint_vel_rad_s, self.torque_nm
        lidar, aux = self.lidar_m, self.aux
        nj, nm, nl, na = len(jp), len(tq), len(lidar), len(aux)
        if len(jv) != nj or len(self.vel_mps) != 2:
            raise ProtocolError(
                "SENSOR: joint positions and speeds must have the same length; vel_mps is (vx, vz)"
            )
        if max(nj, nm, nl, na) > 255:
            raise ProtocolError(f"SENSOR: channel counts {(nj, nm, nl, na)} do not fit their u8 fields")
        counts = bytes((nj, nm, nl, na))
        return (self._LAYOUTS.get(counts) or self._layout(counts))[0].pack(
            self.t_us, self.cmd_seq, self.faults, self.mode, self.contacts, nj, nm, nl, na,
            self.imu_pitch_rad, self.imu_pitch_rate_rad_s, *self.vel_mps, *jp, *jv, *tq, *lidar, *aux,
        )  # fmt: skip

    @classmethod
    def unpack(cls, payload: bytes) -> Sensor:
        n = len(payload)
        if n < cls._FIXED_SIZE:
            raise ProtocolError(f"SENSOR payload too short ({n} bytes)")
        counts = bytes(payload[14:18])
        s, a, b, c, d = cls._LAYOUTS.get(counts) or cls._layout(counts)
        if n < s.size:
            raise ProtocolError(f"SENSOR payload too short ({n} bytes) for its channel counts")
        v = s.unpack_from(payload)  # trailing bytes (fields of a later minor version) are ignored
        return cls(
            v[0], v[1], v[2], v[3], v[4], v[9], v[10], v[11:13], v[13:a], v[a:b], v[b:c], v[c:d], v[d:]
        )


@dataclass(frozen=True)
class Torque:
    """TORQUE (host → board): torque per motor in N·m, answering SENSOR ``sensor_seq``."""

    TYPE: ClassVar[MsgType] = MsgType.TORQUE
    sensor_seq: int  # header seq of the SENSOR this command was computed from
    torque_nm: tuple[float, ...]

    def pack(self) -> bytes:
        n = len(self.torque_nm)
        return struct.pack(f"<HBx{n}f", self.sensor_seq, n, *self.torque_nm)

    @classmethod
    def unpack(cls, payload: bytes) -> Torque:
        r = _Reader(payload, "TORQUE")
        seq, n = r.take("HBx")
        return cls(seq, r.floats(n))


@dataclass(frozen=True)
class Enable:
    """ENABLE (host → board): arm the motors and clear latched faults; the board answers STATUS."""

    TYPE: ClassVar[MsgType] = MsgType.ENABLE

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Enable:
        return cls()


@dataclass(frozen=True)
class Disable:
    """DISABLE (host → board): zero torque and disarm; the board answers STATUS."""

    TYPE: ClassVar[MsgType] = MsgType.DISABLE

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Disable:
        return cls()


@dataclass(frozen=True)
class GetStatus:
    """GET_STATUS (host → board): the board answers STATUS and changes nothing (protocol 1.1)."""

    TYPE: ClassVar[MsgType] = MsgType.GET_STATUS

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> GetStatus:
        return cls()


@dataclass(frozen=True)
class Status:
    """STATUS (board → host): fault bits, mode and the board's error counters (since boot, wrapping u32)."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS
    faults: int
    mode: int
    crc_errors: int = 0
    resyncs: int = 0
    seq_gaps: int = 0
    watchdog_trips: int = 0
    unknown_types: int = 0
    clamped: int = 0

    _S: ClassVar[struct.Struct] = struct.Struct("<HBx6I")

    def pack(self) -> bytes:
        return self._S.pack(
            self.faults, self.mode, self.crc_errors, self.resyncs, self.seq_gaps, self.watchdog_trips,
            self.unknown_types, self.clamped,
        )  # fmt: skip

    @classmethod
    def unpack(cls, payload: bytes) -> Status:
        if len(payload) < cls._S.size:
            raise ProtocolError(f"STATUS payload too short ({len(payload)} bytes)")
        return cls(*cls._S.unpack_from(payload))


@dataclass(frozen=True)
class Ping:
    """PING: latency probe; the receiver answers PONG with the same nonce and t_ns."""

    TYPE: ClassVar[MsgType] = MsgType.PING
    nonce: int
    t_ns: int  # sender's monotonic clock, ns

    def pack(self) -> bytes:
        return struct.pack("<IQ", self.nonce, self.t_ns)

    @classmethod
    def unpack(cls, payload: bytes) -> Ping:
        return cls(*_Reader(payload, "PING").take("IQ"))


@dataclass(frozen=True)
class Pong:
    """PONG: answer to PING (nonce and t_ns echoed) with the responder's clock in µs."""

    TYPE: ClassVar[MsgType] = MsgType.PONG
    nonce: int
    t_ns: int
    responder_t_us: int

    def pack(self) -> bytes:
        return struct.pack("<IQQ", self.nonce, self.t_ns, self.responder_t_us)

    @classmethod
    def unpack(cls, payload: bytes) -> Pong:
        return cls(*_Reader(payload, "PONG").take("IQQ"))


Message = Hello | Ident | Sensor | Torque | Enable | Disable | Status | Ping | Pong | GetStatus
MESSAGES: dict[int, type[Message]] = {
    m.TYPE: m for m in (Hello, Ident, Sensor, Torque, Enable, Disable, Status, Ping, Pong, GetStatus)
}  # fmt: skip
M = TypeVar("M", bound=Message)  # the message class a Frame carries, e.g. Frame[Ident] from Link.recv_msg


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


def decode_frame(raw: bytes) -> Frame[Message]:
    """One COBS frame without its 0x00 delimiter → Frame. Raises ProtocolError (see FrameDecoder for counting)."""
    data = cobs_decode(raw)
    if len(data) < HEADER.size + CRC.size:
        raise ProtocolError(f"frame of {len(data)} bytes is shorter than header + CRC")
    major, mtype, seq, length = HEADER.unpack_from(data)
    if length != len(data) - HEADER.size - CRC.size or length > MAX_PAYLOAD:
        raise ProtocolError(f"length field {length} does not match the frame ({len(data)} bytes) or exceeds {MAX_PAYLOAD}")
    if CRC.unpack_from(data, len(data) - CRC.size)[0] != crc16(data[: -CRC.size]):
        raise ProtocolError("CRC mismatch")
    if major != PROTO_MAJOR:
        raise ProtocolError(f"protocol major version {major}; this side speaks {PROTO_MAJOR}")
    cls = MESSAGES.get(mtype)
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{mtype:02x}")
    return Frame(seq, cls.unpack(data[HEADER.size : -CRC.size]))


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

    Bytes accumulate until a 0x00 delimiter; each delimited stretch is decoded as one frame. Anything invalid is
    counted in :attr:`stats` and dropped, and decoding resumes after the delimiter (resync). A stretch longer than
    any legal frame is dropped without buffering it. Sequence gaps count frames lost between consecutive valid
    frames (a jump backwards, e.g. a sender restart or a retransmission, is not a gap).
    """

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._overflow = False
        self._last_seq: int | None = None

    def feed(self, chunk: bytes) -> list[Frame[Message]]:
        """Consume bytes; return the valid frames completed by them, in order."""
        s = self.stats
        n = len(chunk)
        s.bytes += n
        chunk = bytes(chunk)
        if 1 < n <= MAX_ENCODED + 1 and chunk.find(0) == n - 1 and not self._buf and not self._overflow:
            # Fast path, what a read returns at 1 kHz: exactly one whole frame and nothing buffered. Same result
            # as the general path below (one stretch, empty tail) without building the lists.
            frame = self._decode(chunk[:-1])
            return [] if frame is None else [frame]
        # One split per chunk: every piece but the last ends at a delimiter; the last is the start of a frame
        # still arriving and waits in the buffer for the next chunk.
        *stretches, tail = chunk.split(b"\x00")
        out: list[Frame[Message]] = []
        for i, raw in enumerate(stretches):
            if i == 0 and (self._buf or self._overflow):  # completes the stretch buffered from earlier chunks
                too_long = self._overflow or len(self._buf) + len(raw) > MAX_ENCODED
                raw = bytes(self._buf) + raw
                self._buf, self._overflow = bytearray(), False
            else:
                too_long = len(raw) > MAX_ENCODED
            if too_long:
                s.length_errors += 1
                s.resyncs += 1
            elif raw:
                frame = self._decode(raw)
                if frame is not None:
                    out.append(frame)
        if tail and not self._overflow:
            self._buf += tail
            if len(self._buf) > MAX_ENCODED:  # longer than any legal frame: stop buffering, count it at 0x00
                self._overflow, self._buf = True, bytearray()
        return out

    def _decode(self, raw: bytes) -> Frame[Message] | None:
        s = self.stats
        try:
            data = _decode_cobs(raw)
        except (ProtocolError, ValueError):
            data = b""
        n = len(data)
        if n < HEADER.size + CRC.size:
            s.length_errors += 1
            s.resyncs += 1
            return None
        major, mtype, seq, length = HEADER.unpack_from(data)
        if length != n - HEADER.size - CRC.size or length > MAX_PAYLOAD:
            s.length_errors += 1
            s.resyncs += 1
            return None
        if data[n - 2] | data[n - 1] << 8 != _crc_hqx(data[: n - 2], 0xFFFF):  # CRC: a little-endian u16
            s.crc_errors += 1
            s.resyncs += 1
            return None
        if major != PROTO_MAJOR:
            s.version_errors += 1
            s.last_bad_major = major
            return None
        last, self._last_seq = self._last_seq, seq  # sequence gaps (inline: this runs for every frame)
        if last is not None:
            ahead = (seq - last - 1) & 0xFFFF
            if 0 < ahead < 0x8000:
                s.seq_gaps += ahead
        cls = MESSAGES.get(mtype)
        if cls is None:
            s.unknown_types += 1
            return None
        try:
            msg = cls.unpack(data[HEADER.size : n - CRC.size])
        except (ProtocolError, struct.error, ValueError):
            s.payload_errors += 1
            return None
        s.frames += 1
        return Frame(seq, msg)


# ----------------------------------------------------------------------- bridge to the simulator's types


def ident_from_spec(
    spec: RobotSpec,
    *,
    watchdog_ms: int = 100,
    mode: int = 0,
    fw_version: tuple[int, int, int] = (0, 1, 0),
    torque_limit_scale: float = 1.0,
) -> Ident:
    """The IDENT a board running ``spec`` announces (limits scaled by the board's ``torque_limit_scale``)."""
    s = spec.sensors
    return Ident(
        robot_id=spec.robot_id,
        motor_names=spec.action.names,
        torque_limits_nm=_f32(spec.action.limits_nm * torque_limit_scale),
        n_joints=s.n_joints,
        n_contacts=s.n_contacts,
        lidar_angles_rad=_f32(s.lidar_angles_rad),
        lidar_max_range_m=_f32([s.lidar_max_range_m])[0],
        aux_names=s.aux_names,
        aux_units=s.aux_units,
        sensor_rate_hz=_f32([s.sensor_rate_hz])[0],
        watchdog_ms=int(watchdog_ms),
        mode=mode,
        fw_version=fw_version,
    )


def check_ident(ident: Ident, spec: RobotSpec) -> None:
    """Refuse a board whose IDENT does not match the RobotSpec the policy was trained for (ValueError)."""
    if ident.proto_major != PROTO_MAJOR:
        raise UserError(
            f"board speaks protocol v{ident.proto_major}.{ident.proto_minor}, this host v{PROTO_MAJOR}.x; "
            "update the firmware or s2r"
        )
    expected = ident_from_spec(
        spec, watchdog_ms=ident.watchdog_ms, mode=ident.mode, fw_version=ident.fw_version
    )
    problems = []
    for name in ("robot_id", "motor_names", "n_joints", "n_contacts", "lidar_angles_rad", "aux_names"):
        got, want = getattr(ident, name), getattr(expected, name)
        if got != want:
            problems.append(f"{name} {got!r} (expected {want!r})")
    problems += ident_problems(ident)
    if problems:
        raise UserError(f"board does not match robot '{spec.robot_id}': {'; '.join(problems)}")


MAX_SENSOR_RATE_HZ = 10_000.0  # IDENT sanity bounds (the host refuses a board announcing more)
MAX_LIDAR_RANGE_M = 1_000.0


def ident_problems(ident: Ident) -> list[str]:
    """What is physically impossible in an IDENT's numbers (empty if nothing): every field finite, positive and
    within sane bounds, and a watchdog longer than one sensor period."""
    problems = []
    rate, wd, rng = ident.sensor_rate_hz, ident.watchdog_ms, ident.lidar_max_range_m
    if not (math.isfinite(rate) and 0 < rate <= MAX_SENSOR_RATE_HZ):
        problems.append(f"sensor_rate_hz {rate!r} is not in (0, {MAX_SENSOR_RATE_HZ:g}]")
    elif not wd * 1e-3 > 1.0 / rate:
        problems.append(f"watchdog_ms {wd} is not longer than one sensor period ({1e3 / rate:g} ms)")
    if not (math.isfinite(rng) and 0 < rng <= MAX_LIDAR_RANGE_M):
        problems.append(f"lidar_max_range_m {rng!r} is not in (0, {MAX_LIDAR_RANGE_M:g}]")
    if not all(math.isfinite(a) for a in ident.lidar_angles_rad):
        problems.append(f"lidar angles {ident.lidar_angles_rad} are not all finite")
    limits = ident.torque_limits_nm  # the host clamps to min(own, board) limits
    if not all(math.isfinite(x) and x > 0 for x in limits):
        problems.append(f"torque limits {limits} N·m are not all finite and positive")
    return problems


def frame_to_sensor(
    frame: SensorFrame,
    *,
    t_us: int,
    cmd_seq: int = 0,
    faults: int = 0,
    mode: int = 0,
    torque_nm: np.ndarray | tuple[float, ...] = (),
) -> Sensor:
    """Simulator sensor frame → SENSOR message (float32 on the wire; contacts > 0.5 become bits)."""
    contacts = np.asarray(frame.contacts).reshape(-1) > 0.5
    vel = _f32(frame.vel_mps)
    return Sensor(
        t_us=int(t_us) & 0xFFFFFFFFFFFFFFFF,
        cmd_seq=cmd_seq & 0xFFFF,
        faults=faults,
        mode=mode,
        contacts=int(sum(1 << i for i, c in enumerate(contacts) if c)),
        imu_pitch_rad=_f32([frame.imu_pitch_rad])[0],
        imu_pitch_rate_rad_s=_f32([frame.imu_pitch_rate_rad_s])[0],
        vel_mps=(vel[0], vel[1]),
        joint_pos_rad=_f32(frame.joint_pos_rad),
        joint_vel_rad_s=_f32(frame.joint_vel_rad_s),
        torque_nm=_f32(torque_nm),
        lidar_m=_f32(frame.lidar_m),
        aux=_f32(frame.aux),
    )


def sensor_to_frame(msg: Sensor, layout: SensorLayout) -> SensorFrame:
    """SENSOR message → simulator SensorFrame, checked against the layout announced in IDENT (ValueError)."""
    got = (len(msg.joint_pos_rad), len(msg.lidar_m), len(msg.aux))
    want = (layout.n_joints, len(layout.lidar_angles_rad), len(layout.aux_names))
    if got != want:
        raise UserError(f"SENSOR has (joints, lidar rays, aux) = {got}, IDENT announced {want}")
    f32 = np.float32
    return SensorFrame(
        joint_pos_rad=np.array(msg.joint_pos_rad, dtype=f32),
        joint_vel_rad_s=np.array(msg.joint_vel_rad_s, dtype=f32),
        imu_pitch_rad=msg.imu_pitch_rad,
        imu_pitch_rate_rad_s=msg.imu_pitch_rate_rad_s,
        vel_mps=np.array(msg.vel_mps, dtype=f32),
        contacts=np.array([(msg.contacts >> i) & 1 for i in range(layout.n_contacts)], dtype=f32),
        lidar_m=np.array(msg.lidar_m, dtype=f32),
        aux=np.array(msg.aux, dtype=f32),
    )
