"""Message registry, layer 3 of the s2r wire protocol (docs/protocol.md §4–5): every message type, its payload
layout as a frozen dataclass with ``pack()`` / ``unpack()``, and the fault and mode bits.

A firmware author's reference for the payloads: each class lists its fields in wire order, little-endian, SI
units, float32 on the wire. :data:`MESSAGES` maps the type byte to its class; adding a message is one class and
one entry. Framing is ``firmware_bridge/framing.py``, the header and CRC ``firmware_bridge/codec.py``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

import numpy as np

from firmware_bridge.framing import ProtocolError
from sim.spec import SensorLayout

PROTO_MAJOR = 1  # incompatible changes; carried in every frame header, unknown majors are refused
PROTO_MINOR = 1  # compatible additions (1.1: GET_STATUS, the REFUSED fault bit; receivers ignore trailing bytes)


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
    EPISODE_START = 1 << 2  # first SENSOR after the plant was reset (emulator: a new episode; a real board: never)



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
    # tolist() converts to Python floats in C (exact for float32), faster than float() per element (BENCHMARKS.md); the
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
