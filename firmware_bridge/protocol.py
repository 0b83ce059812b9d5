"""s2r wire protocol v1: the public facade of its three layers, and the bridge to the simulator's types.

The byte-level specification is ``docs/protocol.md``; hex test vectors are in ``docs/protocol_vectors.json``.
The protocol is implemented in three small modules, each a reference a firmware author can read on its own:

* ``firmware_bridge/framing.py`` — COBS, the ``0x00`` delimiter (:class:`Framer`), CRC-16/CCITT-FALSE;
* ``firmware_bridge/codec.py`` — header, CRC check, sequence numbers and the one validation path
  (:func:`parse_frame`), :func:`encode`, :class:`FrameDecoder` (never raises on garbage; counts and resyncs);
* ``firmware_bridge/messages.py`` — the message registry: one frozen dataclass per type with ``pack()`` /
  ``unpack()``, :class:`Fault` and :class:`Mode` bits.

This module re-exports all of them (``from firmware_bridge import protocol as p``; ``p.encode``, ``p.Sensor``,
``p.FrameDecoder``...), and adds :func:`ident_from_spec` / :func:`check_ident` (IDENT derived from and checked
against the one :class:`sim.spec.RobotSpec`) and :func:`frame_to_sensor` / :func:`sensor_to_frame` (SENSOR ↔
the simulator's :class:`sim.spec.SensorFrame`, so the runtime builds observations with the same
``RobotSpec.build_obs`` as the simulator). Python + numpy, no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_bridge.codec import (
    CRC,
    HEADER,
    MAX_ENCODED,
    MAX_FRAME,
    MAX_PAYLOAD,
    DecoderStats,
    Frame,
    FrameDecoder,
    FrameError,
    decode_frame,
    encode,
    parse_frame,
    unpack_message,
)
from firmware_bridge.framing import COBS_BACKEND, Framer, ProtocolError, cobs_decode, cobs_encode, crc16
from firmware_bridge.messages import (
    MESSAGES,
    PROTO_MAJOR,
    PROTO_MINOR,
    Disable,
    Enable,
    Fault,
    GetStatus,
    Hello,
    Ident,
    M,
    Message,
    Mode,
    MsgType,
    Ping,
    Pong,
    Sensor,
    Status,
    Torque,
    _f32,
)
from sim.errors import UserError
from sim.spec import RobotSpec, SensorFrame, SensorLayout

__all__ = [
    "COBS_BACKEND", "CRC", "HEADER", "MAX_ENCODED", "MAX_FRAME", "MAX_PAYLOAD", "MESSAGES", "PROTO_MAJOR",
    "PROTO_MINOR", "DecoderStats", "Disable", "Enable", "Fault", "Frame", "FrameDecoder", "FrameError", "Framer",
    "GetStatus", "Hello", "Ident", "M", "Message", "Mode", "MsgType", "Ping", "Pong", "ProtocolError", "Sensor",
    "Status", "Torque", "check_ident", "cobs_decode", "cobs_encode", "crc16", "decode_frame", "encode",
    "frame_to_sensor", "ident_from_spec", "ident_problems", "parse_frame", "sensor_to_frame", "unpack_message",
]  # fmt: skip


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
    jp, jv, lidar, aux = msg.joint_pos_rad, msg.joint_vel_rad_s, msg.lidar_m, msg.aux
    got = (len(jp), len(lidar), len(aux))
    want = (layout.n_joints, len(layout.lidar_angles_rad), len(layout.aux_names))
    if got != want or len(jv) != len(jp):
        raise UserError(f"SENSOR has (joints, lidar rays, aux) = {got}, IDENT announced {want}")
    # one float32 array for every channel, the fields are views into it (one allocation per frame, not six)
    nj, nl = len(jp), len(lidar)
    v = np.array((*jp, *jv, *msg.vel_mps, *lidar, *aux), dtype=np.float32)
    b = 2 * nj + 2
    return SensorFrame(
        joint_pos_rad=v[:nj],
        joint_vel_rad_s=v[nj : 2 * nj],
        imu_pitch_rad=msg.imu_pitch_rad,
        imu_pitch_rate_rad_s=msg.imu_pitch_rate_rad_s,
        vel_mps=v[2 * nj : b],
        contacts=_contact_bits(layout.n_contacts, msg.contacts),
        lidar_m=v[b : b + nl],
        aux=v[b + nl :],
    )


_CONTACTS: dict[tuple[int, int], np.ndarray] = {}


def _contact_bits(n: int, bits: int) -> np.ndarray:
    """Contact bits → float32 0/1 per contact (a shared read-only array per bit pattern)."""
    arr = _CONTACTS.get((n, bits))
    if arr is None:
        arr = np.array([(bits >> i) & 1 for i in range(n)], dtype=np.float32)
        arr.flags.writeable = False
        _CONTACTS[(n, bits)] = arr
    return arr
