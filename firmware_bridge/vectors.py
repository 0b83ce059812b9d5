"""Hex test vectors of the wire protocol (docs/protocol_vectors.json): build, serialise, load.

The JSON file is the contract for firmware authors: each vector names a message, its header sequence number,
its fields and the exact wire bytes (COBS frame including the trailing 0x00). Special floats are written as
the strings ``"nan"``, ``"inf"``, ``"-inf"`` so the file stays strict JSON. Regenerate (only when the protocol
version changes) with ``python -m firmware_bridge.vectors docs/protocol_vectors.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import sys
from typing import Any

from firmware_bridge import protocol as p
from sim.files import atomic_write
from sim.robots import BIPED_SPEC, KNOB_SPEC

F32_MAX = 3.4028234663852886e38


def _to_json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, tuple):
        return [_to_json(x) for x in v]
    return v


def _from_json(v: Any) -> Any:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, list):
        return tuple(_from_json(x) for x in v)
    return v


def message_to_json(msg: p.Message) -> dict[str, Any]:
    """Fields of a message as a JSON-able dict."""
    return {f.name: _to_json(getattr(msg, f.name)) for f in dataclasses.fields(msg)}


def message_from_json(type_name: str, fields: dict[str, Any]) -> p.Message:
    """Inverse of :func:`message_to_json`; ``type_name`` is a MsgType name such as ``"SENSOR"``."""
    cls = p.MESSAGES[p.MsgType[type_name]]
    return cls(**{k: _from_json(v) for k, v in fields.items()})


def _examples() -> list[tuple[str, int, p.Message]]:
    biped_sensor = p.Sensor(
        t_us=1_234_567, cmd_seq=41, faults=0, mode=p.Mode.ENABLED, contacts=0b01,
        imu_pitch_rad=0.125, imu_pitch_rate_rad_s=-0.5, vel_mps=(0.75, -0.0625),
        joint_pos_rad=(0.5, -1.0, 0.25, -0.125), joint_vel_rad_s=(1.5, -2.0, 0.0, 3.25),
        torque_nm=(30.0, -30.0, 0.0, 12.5), lidar_m=(2.5, 2.5, 2.0, 1.5, 1.0, 0.75, 0.5, 0.5, 0.25, 0.25),
    )  # fmt: skip
    knob_sensor = p.Sensor(
        t_us=20_000, cmd_seq=0, faults=p.Fault.WATCHDOG | p.Fault.CLAMP, mode=0, contacts=0b11,
        imu_pitch_rad=0.0, imu_pitch_rate_rad_s=0.0, vel_mps=(0.0, 0.0),
        joint_pos_rad=(0.125, 0.25, -0.125, -0.25), joint_vel_rad_s=(0.0, 0.0, 0.0, 0.0),
        torque_nm=(0.0, 0.0, 0.0, 0.0), aux=(3.140625, -0.5, -1.5),
    )  # fmt: skip
    edge_sensor = p.Sensor(
        t_us=2**64 - 1, cmd_seq=0xFFFF, faults=0xFFFF, mode=0xFF, contacts=0xFF,
        imu_pitch_rad=-0.0, imu_pitch_rate_rad_s=F32_MAX, vel_mps=(-F32_MAX, 1.401298464324817e-45),
        joint_pos_rad=(float("nan"),), joint_vel_rad_s=(float("inf"),), torque_nm=(float("-inf"),),
    )  # fmt: skip
    return [
        ("hello", 0, p.Hello()),
        ("ident_biped", 1, p.ident_from_spec(BIPED_SPEC)),
        ("ident_knob_lockstep", 2, p.ident_from_spec(KNOB_SPEC, watchdog_ms=250, mode=p.Mode.LOCKSTEP)),
        ("sensor_biped", 3, biped_sensor),
        ("sensor_knob", 4, knob_sensor),
        ("sensor_edge_values", 0xFFFF, edge_sensor),
        ("torque", 5, p.Torque(sensor_seq=3, torque_nm=(1.0, -2.5, 30.0, -30.0))),
        ("torque_zero_motors", 6, p.Torque(sensor_seq=0xFFFF, torque_nm=())),
        ("enable", 7, p.Enable()),
        ("disable", 8, p.Disable()),
        ("status", 9, p.Status(p.Fault.WATCHDOG | p.Fault.CRC, 0, 3, 4, 5, 1, 2, 7)),
        ("status_max_counters", 10, p.Status(0xFFFF, 0xFF, *([0xFFFFFFFF] * 6))),
        ("ping", 11, p.Ping(nonce=0xDEADBEEF, t_ns=123_456_789_012)),
        ("pong", 12, p.Pong(nonce=0xDEADBEEF, t_ns=123_456_789_012, responder_t_us=42)),
        ("zero_bytes_everywhere", 0, p.Torque(sensor_seq=0, torque_nm=(0.0,) * 4)),
        ("get_status", 13, p.GetStatus()),
        ("status_enable_refused", 14, p.Status(p.Fault.ESTOP | p.Fault.REFUSED, 0, 0, 0, 0, 0, 0, 0)),
        # 63 motors of zero-free floats: after the reserved byte, 252 float bytes + the CRC are exactly one final
        # 254-byte COBS block, encoded 0xFF + 254 bytes with no trailing code byte (seq picked for a zero-free CRC)
        ("torque_final_254_byte_block", _FF_BLOCK_SEQ, p.Torque(sensor_seq=0x0101, torque_nm=(_NO_ZERO_F32,) * 63)),
        # the largest payload, 1024 bytes: 255 motors
        ("torque_1024_byte_payload", 16, p.Torque(sensor_seq=0x1234, torque_nm=tuple(
            float(i) - 127.0 for i in range(255)))),
    ]


_NO_ZERO_F32 = struct.unpack("<f", bytes((0x01, 0x02, 0x03, 0x3F)))[0]  # 0.5079... : no zero byte
_FF_BLOCK_SEQ = next(
    s for s in range(0x0101, 0x10000)
    if 0 not in s.to_bytes(2, "little")
    and 0 not in p.CRC.pack(p.crc16(p.HEADER.pack(1, p.MsgType.TORQUE, s, 256)
                                    + p.Torque(0x0101, (_NO_ZERO_F32,) * 63).pack()))
)  # fmt: skip


def _frame(major: int, mtype: int, seq: int, payload: bytes, length: int | None = None, crc_xor: int = 0) -> bytes:
    """A hand-built wire frame (COBS + delimiter), for the negative vectors."""
    body = p.HEADER.pack(major, mtype, seq, len(payload) if length is None else length) + payload
    return p.cobs_encode(body + p.CRC.pack(p.crc16(body) ^ crc_xor)) + b"\x00"


def _negative_examples() -> list[tuple[str, bytes, str, str]]:
    """(name, wire bytes, the counter a receiver increments, why): frames a receiver must drop."""
    ping = p.Ping(1, 2).pack()
    return [
        ("bad_crc", _frame(1, p.MsgType.PING, 1, ping, crc_xor=0x0001), "crc_errors", "CRC off by one bit"),
        ("bad_cobs", bytes.fromhex("0501020300"), "length_errors", "code byte 05 runs past the end of the stretch"),
        ("too_short", bytes.fromhex("0401050700"), "length_errors", "3 decoded bytes: shorter than header + CRC"),
        ("length_mismatch", _frame(1, p.MsgType.PING, 1, ping, length=11), "length_errors",
         "length field 11, payload 12 bytes"),
        ("oversize_stretch", b"\x01" * (p.MAX_ENCODED + 1) + b"\x00", "length_errors",
         f"{p.MAX_ENCODED + 1} bytes before the delimiter: longer than any legal frame ({p.MAX_ENCODED})"),
        ("payload_1025_bytes", _frame(1, p.MsgType.TORQUE, 1, bytes(1025)), "length_errors",
         f"a consistent length field of 1025 > {p.MAX_PAYLOAD}"),
        ("unknown_type", _frame(1, 0x7F, 1, b""), "unknown_types", "type 0x7f: counted and skipped"),
        ("wrong_major", _frame(2, p.MsgType.PING, 1, ping), "version_errors", "protocol major 2"),
        ("short_payload", _frame(1, p.MsgType.PING, 1, ping[:4]), "payload_errors", "PING payload of 4 bytes, needs 12"),
    ]  # fmt: skip


def build_vectors() -> dict[str, Any]:
    """All vectors as the JSON document written to docs/protocol_vectors.json."""
    return {
        "protocol": f"{p.PROTO_MAJOR}.{p.PROTO_MINOR}",
        "crc": {"name": "CRC-16/CCITT-FALSE", "check_123456789": f"{p.crc16(b'123456789'):04x}"},
        "vectors": [
            {
                "name": name,
                "type": msg.TYPE.name,
                "seq": seq,
                "fields": message_to_json(msg),
                "payload_hex": msg.pack().hex(),
                "wire_hex": p.encode(msg, seq).hex(),
            }
            for name, seq, msg in _examples()
        ],
        "negative_vectors": [
            {"name": name, "wire_hex": wire.hex(), "counter": counter, "why": why}
            for name, wire, counter, why in _negative_examples()
        ],
    }


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "docs/protocol_vectors.json"
    text = json.dumps(build_vectors(), indent=1) + "\n"
    atomic_write(path, text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
