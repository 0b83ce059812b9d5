"""Wire protocol: test vectors, COBS/CRC reference values, decoder robustness (hypothesis), sim bridging."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import framing
from firmware_bridge import protocol as p
from firmware_bridge.link import Link
from firmware_bridge.vectors import message_from_json
from sim.robots import BIPED_SPEC, KNOB_SPEC
from sim.spec import SensorFrame

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "protocol_vectors.json").read_text())["vectors"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same(a, b) -> bool:
    """Field equality where NaN equals NaN (edge-value vectors carry NaN)."""
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def _fields_equal(m1: p.Message, m2: p.Message) -> bool:
    return type(m1) is type(m2) and all(
        _same(getattr(m1, k), getattr(m2, k)) for k in m1.__dataclass_fields__
    )


def test_vectors_cover_every_message_type():
    assert {v["type"] for v in VECTORS} == {t.name for t in p.MsgType}


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_encodes_and_decodes(vec):
    msg = message_from_json(vec["type"], vec["fields"])
    assert msg.pack().hex() == vec["payload_hex"]
    assert p.encode(msg, vec["seq"]).hex() == vec["wire_hex"]
    dec = p.FrameDecoder()
    (frame,) = dec.feed(bytes.fromhex(vec["wire_hex"]))
    assert frame.seq == vec["seq"]
    assert _fields_equal(frame.msg, msg)
    assert dec.stats.errors == 0


def test_crc_and_cobs_reference_values():
    assert p.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    wiki = {  # Wikipedia's COBS examples (without the delimiter)
        "00": "0101",
        "0000": "010101",
        "00110000": "0102110101",
        "11223344": "0511223344",
        "11000000": "0211010101",
    }
    for raw, enc in wiki.items():
        assert p.cobs_encode(bytes.fromhex(raw)).hex() == enc
        assert p.cobs_decode(bytes.fromhex(enc)).hex() == raw
    block = bytes(range(1, 255))
    assert p.cobs_encode(block) == b"\xff" + block  # canonical: no trailing code byte
    assert p.cobs_decode(b"\xff" + block + b"\x01") == block  # the non-canonical form is accepted too
    assert p.cobs_encode(b"\x00" + block) == b"\x01\xff" + block
    assert p.cobs_encode(bytes(range(1, 256))) == b"\xff" + block + b"\x02\xff"


@given(st.binary(max_size=700))
@FAST
def test_cobs_roundtrip(data):
    enc = p.cobs_encode(data)
    assert b"\x00" not in enc
    assert len(enc) <= len(data) + 1 + len(data) // 254
    assert p.cobs_decode(enc) == data


def _cobs_reference_encode(data: bytes) -> bytes:
    """Textbook byte-at-a-time COBS, canonical form (no code byte after a final full block)."""
    out, block, ended_full = bytearray(), bytearray(), False
    for b in data:
        ended_full = False
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
                ended_full = True
    if not ended_full:
        out += bytes([len(block) + 1]) + block
    return bytes(out)


def _cobs_reference_decode(enc: bytes) -> bytes | None:
    """Textbook COBS decode; None where the input is malformed."""
    out, i = bytearray(), 0
    while i < len(enc):
        code = enc[i]
        if code == 0 or i + code > len(enc):
            return None
        out += enc[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(enc):
            out.append(0)
    return bytes(out)


# bytes with many zeros, long zero-free runs (>= 254, the 0xFF blocks) and runs without 0xFF (decode fast path)
_FOUR_VALUES = bytes(
    [0, 1, 0x7F, 0xFF][i % 4] for i in range(256)
)  # translate table: zeros and 0xFF everywhere
_COBS_INPUTS = st.one_of(
    st.binary(max_size=700),
    st.binary(max_size=600).map(lambda b: b.translate(_FOUR_VALUES)),
    st.binary(min_size=240, max_size=800).map(lambda b: b.replace(b"\x00", b"\x01")),
)


@given(_COBS_INPUTS)
@FAST
def test_cobs_matches_textbook_byte_loop(data):
    """The split/join encoder and the code-byte-walking decoder equal the byte-at-a-time algorithm."""
    assert p.cobs_encode(data) == _cobs_reference_encode(data)
    assert p.cobs_decode(_cobs_reference_encode(data)) == data


@given(
    st.one_of(
        st.binary(min_size=1, max_size=300),
        st.binary(max_size=300).map(lambda b: b.replace(b"\xff", b"\x01")),
    )
)
@FAST
def test_cobs_decode_of_arbitrary_bytes_matches_textbook(enc):
    """Malformed input raises ProtocolError exactly where the textbook decoder fails; otherwise same bytes."""
    want = _cobs_reference_decode(enc)
    if want is None:
        with pytest.raises(p.ProtocolError):
            p.cobs_decode(enc)
    else:
        assert p.cobs_decode(enc) == want


# both COBS implementations, whichever protocol.py runs: the C build (where it was compiled) and the Python reference
COBS_IMPLS = {"python": (lambda d, delim=b"": framing._py_cobs_encode(d, delim), framing._py_cobs_decode)}
if framing._c_encode is not None:
    COBS_IMPLS["c"] = (lambda d, delim=b"": framing._c_encode(d, bool(delim)), framing._c_decode)


@pytest.mark.parametrize("impl", ["python", "c"])
@given(data=_COBS_INPUTS, garbage=st.binary(max_size=300))
@FAST
def test_each_cobs_implementation_matches_textbook(impl, data, garbage):
    """C and Python COBS: the textbook bytes (with and without the delimiter), the round trip, and malformed input
    rejected exactly where the textbook decoder fails."""
    if impl not in COBS_IMPLS:
        pytest.skip("the C COBS codec was not built (no C compiler or Python headers at install)")
    encode, decode = COBS_IMPLS[impl]
    want = _cobs_reference_encode(data)
    assert encode(data) == want
    assert encode(data, b"\x00") == want + b"\x00"
    assert decode(want) == data
    expected = _cobs_reference_decode(garbage)
    if expected is None:
        with pytest.raises((p.ProtocolError, ValueError)):
            decode(garbage)
    else:
        assert decode(garbage) == expected


def test_c_cobs_is_built_where_a_compiler_is():
    """`pip install -e .` compiles firmware_bridge/_cobs.c when it can; a silent fallback would cost the bridge
    half its codec speed."""
    import shutil
    import sysconfig

    if shutil.which("cc") is None or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no C compiler or Python headers here: the pure-Python COBS runs")
    assert framing._c_encode is not None, "firmware_bridge._cobs is missing: reinstall with `pip install -e .`"


def _sensor(i: int) -> p.Sensor:
    return p.Sensor(
        t_us=1000 * i, cmd_seq=i, faults=0, mode=1, contacts=i & 3, imu_pitch_rad=0.5, imu_pitch_rate_rad_s=-1.0,
        vel_mps=(0.25, 0.0), joint_pos_rad=(0.0, 1.0, 0.0, 0.0), joint_vel_rad_s=(1.0, 0.0, 0.0, 2.0),
        torque_nm=(0.0, 0.0, 3.0, 0.0), lidar_m=(1.0,) * 10,
    )  # fmt: skip


MESSAGES = [
    _sensor(3),
    p.Torque(7, (1.0, -2.0, 0.0, 30.0)),
    p.Enable(),
    p.ident_from_spec(KNOB_SPEC),
    p.Ping(1, 2),
]


def _reference(stream: bytes) -> list[p.Frame]:
    """What the streaming decoder must yield: one-shot decode of every delimited segment that is valid."""
    out = []
    for seg in stream.split(b"\x00")[:-1]:
        with contextlib.suppress(p.ProtocolError, struct.error):
            out.append(p.decode_frame(seg))
    return out


@given(st.binary(max_size=400), st.lists(st.integers(1, 64), max_size=40))
@FAST
def test_decoder_on_garbage_matches_reference_and_recovers(garbage, cuts):
    """Random bytes never crash the decoder, every frame it yields passed its CRC, and the next valid frame
    after garbage (and a delimiter) is recovered — whatever the chunking of the reads."""
    valid = p.encode(MESSAGES[0], 99)
    stream = garbage + b"\x00" + valid
    dec = p.FrameDecoder()
    frames, pos = [], 0
    for c in [*cuts, len(stream)]:
        frames += dec.feed(stream[pos : pos + c])
        pos += c
    frames += dec.feed(stream[pos:])
    assert frames == _reference(stream)
    assert frames[-1] == p.Frame(99, MESSAGES[0])


@given(st.integers(0, len(MESSAGES) - 1), st.data())
@FAST
def test_bit_flip_is_rejected_and_next_frame_recovered(k, data):
    wire = bytearray(p.encode(MESSAGES[k], 5))
    bit = data.draw(st.integers(0, 8 * (len(wire) - 1) - 1))  # any bit except in the delimiter
    wire[bit // 8] ^= 1 << (bit % 8)
    follow = p.encode(MESSAGES[1], 6)
    dec = p.FrameDecoder()
    frames = dec.feed(bytes(wire) + follow)
    assert frames[-1] == p.Frame(6, MESSAGES[1])
    assert all(f.msg == MESSAGES[1] for f in frames)  # the corrupted frame never comes out
    assert dec.stats.errors >= 1


@given(st.lists(st.integers(0, len(MESSAGES) - 1), min_size=1, max_size=12), st.data())
@FAST
def test_truncation_concatenation_and_split_reads(ks, data):
    wire, expected = b"", []
    for seq, k in enumerate(ks):
        frame = p.encode(MESSAGES[k], seq)
        if data.draw(st.booleans()):
            cut = data.draw(st.integers(1, len(frame) - 2))  # at least one byte + delimiter lost
            wire += frame[:cut] + b"\x00"  # truncated frame, then the line delimiter
        else:
            wire += frame
            expected.append(p.Frame(seq, MESSAGES[k]))
    dec = p.FrameDecoder()
    got, pos = [], 0
    while pos < len(wire):
        step = data.draw(st.integers(1, 50))
        got += dec.feed(wire[pos : pos + step])
        pos += step
    assert got == expected
    assert dec.stats.frames == len(expected)
    assert dec.stats.errors == len(ks) - len(expected)


_KINDS = st.tuples(st.integers(0, len(MESSAGES) - 1), st.sampled_from(["ok", "flip", "junk"]))


@given(st.lists(_KINDS, min_size=1, max_size=10), st.data())
@FAST
def test_decoder_fast_path_matches_general_path(kinds, data):
    """Fed one frame per chunk, FrameDecoder takes its one-whole-frame fast path; it must yield the same frames
    and counters as the general path (the same bytes in one chunk, or cut anywhere)."""
    pieces = []
    for i, (k, how) in enumerate(kinds):
        wire = bytearray(p.encode(MESSAGES[k], 3 * i))  # every other seq missing: gaps are counted
        if how == "flip":
            wire[data.draw(st.integers(0, len(wire) - 2))] ^= 0x10
        elif how == "junk":
            wire = bytearray(data.draw(st.binary(max_size=30)).replace(b"\x00", b"") + b"\x00")
        pieces.append(bytes(wire))
    stream = b"".join(pieces)
    fast, whole, cut = p.FrameDecoder(), p.FrameDecoder(), p.FrameDecoder()
    by_piece = [f for piece in pieces for f in fast.feed(piece)]
    at_once = whole.feed(stream)
    by_cut, pos = [], 0
    while pos < len(stream):
        step = data.draw(st.integers(1, 60))
        by_cut += cut.feed(stream[pos : pos + step])
        pos += step
    assert by_piece == at_once == by_cut == _reference(stream)
    assert dataclasses.asdict(fast.stats) == dataclasses.asdict(whole.stats) == dataclasses.asdict(cut.stats)


def test_decoder_fast_path_edges():
    dec = p.FrameDecoder()
    assert dec.feed(b"\x00") == [] and dec.stats.resyncs == 0  # an empty stretch is no frame and no error
    assert dec.feed(b"\x01" * (p.MAX_ENCODED + 1) + b"\x00") == []  # too long for any frame: not decoded
    assert (dec.stats.length_errors, dec.stats.resyncs) == (1, 1)
    wire = p.encode(MESSAGES[0], 1)
    assert dec.feed(wire[:4]) == []
    assert dec.feed(wire[4:]) == [p.Frame(1, MESSAGES[0])]  # one delimiter, but it completes a buffered frame
    assert dec.feed(bytearray(wire)) == [p.Frame(1, MESSAGES[0])]  # any bytes-like chunk
    assert dec.stats.frames == 2 and len(dec.framer._buf) == 0


def test_decoded_sensor_is_the_same_object_init_builds():
    """SENSOR decoding builds the frozen dataclass without __init__ (fewer calls per frame): same fields, eq,
    hash, repr, still frozen; payload checks unchanged."""
    msg = _sensor(5)
    (frame,) = p.FrameDecoder().feed(p.encode(msg, 9))
    assert frame == p.Frame(9, msg) and repr(frame) == repr(p.Frame(9, msg))
    assert hash(frame.msg) == hash(msg) and _fields_equal(frame.msg, msg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.msg.t_us = 1  # type: ignore[misc]
    payload = msg.pack()
    assert p.Sensor.unpack(payload + b"\x01\x02") == msg  # fields of a later minor version are ignored
    for cut in (0, 33, 34, len(payload) - 1):
        with pytest.raises(p.ProtocolError, match="too short"):
            p.Sensor.unpack(payload[:cut])
    other = dataclasses.replace(
        msg, joint_pos_rad=(0.5, 1.0), joint_vel_rad_s=(1.5, 2.0), lidar_m=(), aux=(2.0,)
    )
    assert p.Sensor.unpack(other.pack()) == other  # every channel-count layout has its own struct
    with pytest.raises(p.ProtocolError, match="u8"):
        dataclasses.replace(msg, lidar_m=(1.0,) * 256).pack()
    big = dataclasses.replace(msg, lidar_m=(1.0,) * 250)  # 1082-byte payload: packs, but no frame carries it
    assert len(big.pack()) == 1082
    with pytest.raises(p.ProtocolError, match="SENSOR payload is 1082 bytes; the limit is 1024"):
        p.encode(big, 0)


def test_counters_for_each_kind_of_error():
    dec = p.FrameDecoder()
    body = p.HEADER.pack(p.PROTO_MAJOR, 0x7E, 0, 1) + b"\x01"
    unknown_type = p.cobs_encode(body + p.CRC.pack(p.crc16(body))) + b"\x00"
    body2 = p.HEADER.pack(2, p.MsgType.ENABLE, 1, 0)
    other_major = p.cobs_encode(body2 + p.CRC.pack(p.crc16(body2))) + b"\x00"
    body3 = p.HEADER.pack(p.PROTO_MAJOR, p.MsgType.TORQUE, 2, 1) + b"\x05"  # TORQUE payload too short
    bad_payload = p.cobs_encode(body3 + p.CRC.pack(p.crc16(body3))) + b"\x00"
    bad_crc = bytearray(p.encode(p.Enable(), 3))
    bad_crc[-2] ^= 0x01
    stream = (
        unknown_type + other_major + bad_payload + bytes(bad_crc) + b"\x00\x00" + b"\x01" * 3000 + b"\x00"
    )
    frames = dec.feed(stream + p.encode(p.Enable(), 4) + p.encode(p.Disable(), 8))
    s = dec.stats
    assert [f.seq for f in frames] == [4, 8]
    assert (s.unknown_types, s.version_errors, s.payload_errors, s.crc_errors) == (1, 1, 1, 1)
    assert s.length_errors == 1 and s.last_bad_major == 2  # the 3000-byte run overflowed, never buffered
    assert s.seq_gaps == 5  # seq 1 (other major), 3 (bad CRC), 5, 6, 7 never arrived intact
    assert len(dec.framer._buf) == 0


def test_sensor_roundtrip_rebuilds_the_simulators_observation():
    rng = np.random.default_rng(0)
    for spec in (BIPED_SPEC, KNOB_SPEC):
        s = spec.sensors
        frame = SensorFrame(
            joint_pos_rad=rng.normal(size=4), joint_vel_rad_s=rng.normal(size=4), imu_pitch_rad=0.3,
            imu_pitch_rate_rad_s=-0.2, vel_mps=rng.normal(size=2), contacts=np.array([1.0, 0.0]),
            lidar_m=rng.uniform(0, 2.5, size=len(s.lidar_angles_rad)), aux=rng.normal(size=len(s.aux_names)),
        )  # fmt: skip
        msg = p.frame_to_sensor(frame, t_us=5, torque_nm=np.ones(4))
        (decoded,) = p.FrameDecoder().feed(p.encode(msg, 0))
        back = p.sensor_to_frame(decoded.msg, p.ident_from_spec(spec).layout())
        prev = rng.uniform(-1, 1, size=4).astype(np.float32)
        np.testing.assert_allclose(
            spec.build_obs(back, prev), spec.build_obs(frame, prev), rtol=1e-6, atol=1e-6
        )
        assert back.contacts.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="IDENT announced"):
        p.sensor_to_frame(msg, BIPED_SPEC.sensors)  # knob SENSOR against the biped layout


def test_ident_mismatch_is_refused():
    p.check_ident(p.ident_from_spec(BIPED_SPEC, watchdog_ms=50), BIPED_SPEC)
    with pytest.raises(ValueError, match="robot_id 'knob'"):
        p.check_ident(p.ident_from_spec(KNOB_SPEC), BIPED_SPEC)
    newer = p.Ident(**{**p.ident_from_spec(BIPED_SPEC).__dict__, "proto_major": 2})
    with pytest.raises(ValueError, match="protocol v2"):
        p.check_ident(newer, BIPED_SPEC)


def test_link_over_loop_url():
    with Link.open("loop://", timeout_s=0.5) as link:
        seqs = [link.send(m) for m in MESSAGES]
        got = [link.recv(0.5) for _ in MESSAGES]
        assert [(f.seq, f.msg) for f in got] == list(zip(seqs, MESSAGES, strict=True))
        assert link.recv(0.01) is None
        with pytest.raises(TimeoutError, match="no IDENT"):
            link.handshake(BIPED_SPEC, timeout_s=0.05)  # loop:// echoes our HELLO; nobody answers
        assert link.stats()["crc_errors"] == 0


NEGATIVE = json.loads((Path(__file__).parents[2] / "docs" / "protocol_vectors.json").read_text())["negative_vectors"]


@pytest.mark.parametrize("vec", NEGATIVE, ids=[v["name"] for v in NEGATIVE])
def test_negative_vector_is_counted_and_the_next_frame_recovered(vec):
    """Each negative vector of docs/protocol_vectors.json increments exactly its counter, yields no frame, and the
    valid frame right after it decodes (resynchronisation)."""
    dec = p.FrameDecoder()
    frames = dec.feed(bytes.fromhex(vec["wire_hex"]) + p.encode(p.Enable(), 2))
    assert [f.msg for f in frames] == [p.Enable()]
    counters = {k: getattr(dec.stats, k) for k in ("crc_errors", "length_errors", "version_errors",
                                                    "unknown_types", "payload_errors")}  # fmt: skip
    assert counters == {k: int(k == vec["counter"]) for k in counters}
    raw = bytes.fromhex(vec["wire_hex"])[:-1]  # one validation path: decode_frame raises for the same counter
    if vec["counter"] != "length_errors" or len(raw) <= p.MAX_ENCODED:  # (the decoder drops an oversize unread)
        with pytest.raises(p.FrameError) as info:
            p.decode_frame(raw)
        assert info.value.counter == vec["counter"]


def test_negative_vectors_cover_the_spec_checks():
    names = {v["name"] for v in NEGATIVE}
    assert {"bad_crc", "bad_cobs", "oversize_stretch", "payload_1025_bytes", "unknown_type", "wrong_major",
            "short_payload"} <= names  # fmt: skip


def test_limits_match_the_spec():
    """docs/protocol.md §2: 1037 bytes between delimiters at most, payloads of 1024 bytes at most."""
    assert p.MAX_ENCODED == 1037 and p.MAX_PAYLOAD == 1024
    assert len(p.cobs_encode(b"\x01" * p.MAX_FRAME)) == 1037  # the worst case: no zero byte anywhere
    (big,) = [v for v in VECTORS if v["name"] == "torque_1024_byte_payload"]
    assert len(bytes.fromhex(big["payload_hex"])) == 1024
    dec = p.FrameDecoder()
    assert dec.feed(b"\x01" * 1037 + b"\x00") == [] and dec.stats.length_errors == 1  # decodes, but too short
    assert dec.stats.resyncs == 1
    dec = p.FrameDecoder()
    assert dec.feed(b"\x01" * 1038 + b"\x00") == [] and dec.stats.length_errors == 1  # rejected by its length


def test_final_254_byte_block_vector_is_canonical():
    (vec,) = [v for v in VECTORS if v["name"] == "torque_final_254_byte_block"]
    wire = bytes.fromhex(vec["wire_hex"])
    assert wire[-256] == 0xFF and 0 not in wire[-255:-1] and wire[-1] == 0  # 0xFF + 254 bytes, no trailing code
    assert p.cobs_decode(wire[:-1] + b"\x01") == p.cobs_decode(wire[:-1])  # the non-canonical form decodes too


def test_ident_with_impossible_numbers_is_refused():
    """Issue #16 item 5: an IDENT announcing NaN rate, a 0 ms watchdog or a 0 m lidar range is refused."""
    good = p.ident_from_spec(BIPED_SPEC)
    for field, value, match in (
        ("sensor_rate_hz", float("nan"), "sensor_rate_hz nan"), ("sensor_rate_hz", 0.0, "sensor_rate_hz 0.0"),
        ("sensor_rate_hz", float("inf"), "sensor_rate_hz inf"), ("watchdog_ms", 0, "watchdog_ms 0"),
        ("watchdog_ms", 20, "watchdog_ms 20 is not longer than one sensor period"),
        ("lidar_max_range_m", 0.0, "lidar_max_range_m 0.0"), ("lidar_max_range_m", float("nan"), "lidar_max_range_m"),
        ("torque_limits_nm", (30.0, 30.0, float("inf"), 30.0), "torque limits"),
        ("torque_limits_nm", (30.0, 0.0, 30.0, 30.0), "torque limits"),
    ):  # fmt: skip
        bad = dataclasses.replace(good, **{field: value})
        (frame,) = p.FrameDecoder().feed(p.encode(bad, 1))  # it is a well-formed frame ...
        with pytest.raises(ValueError, match=match):  # ... that the host refuses
            p.check_ident(frame.msg, BIPED_SPEC)
    p.check_ident(good, BIPED_SPEC)
