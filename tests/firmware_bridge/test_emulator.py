"""Firmware emulator against a scripted host over a real pty: handshake, clamp, lockstep, watchdog, reconnect."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from firmware_bridge import protocol as p
from firmware_bridge.emulator import Emulator, EmulatorConfig
from firmware_bridge.link import Link, open_pty
from sim.robots import BIPED_SPEC, KNOB_SPEC


@pytest.fixture
def board(request):
    """An emulator serving on a fresh pty in a thread; yields (emulator, slave path)."""
    cfg = request.param if hasattr(request, "param") else EmulatorConfig(lockstep=True)
    port, path = open_pty()
    emu = Emulator(cfg, port)
    stop = threading.Event()
    thread = threading.Thread(target=emu.serve, kwargs={"should_stop": stop.is_set}, daemon=True)
    thread.start()
    yield emu, path
    stop.set()
    thread.join(5)
    emu.close()
    port.close()


def _expect(link: Link, kind: type, timeout_s: float = 2.0) -> p.Frame:
    frame = link.recv_msg(kind, timeout_s)
    assert frame is not None, f"no {kind.__name__} within {timeout_s} s"
    return frame


def test_lockstep_session_clamps_and_resends(board):
    emu, path = board
    with Link.open(path) as host:
        ident = host.handshake(BIPED_SPEC)
        assert ident.mode & p.Mode.LOCKSTEP and ident.watchdog_ms == 100
        s0 = _expect(host, p.Sensor)
        host.send(p.Enable())
        assert _expect(host, p.Status).msg.mode & p.Mode.ENABLED
        cmd = host.send(p.Torque(s0.seq, (5.0, -100.0, 30.000002, 0.0)))
        s1 = _expect(host, p.Sensor)
        assert s1.seq == (s0.seq + 2) & 0xFFFF  # IDENT, SENSOR, STATUS, SENSOR: one frame between
        assert s1.msg.cmd_seq == cmd
        assert s1.msg.torque_nm == (5.0, -30.0, 30.0, 0.0)  # board clamp to ±30 N·m
        assert s1.msg.faults & p.Fault.CLAMP and not s1.msg.faults & p.Fault.NONFINITE  # even a hair over: CLAMP
        assert emu.c["steps"] == 1 and emu.board.counters["clamped"] == 1
        host.send(p.Torque(s0.seq, (1.0, 1.0, 1.0, 1.0)))  # stale: answers the old SENSOR
        again = _expect(host, p.Sensor)
        assert again == s1 and emu.c["steps"] == 1 and emu.c["resends"] == 1
        # one NaN zeroes the whole command (docs/protocol.md §4.4) and still steps the lockstep board
        host.send(p.Torque(s1.seq, (1.0, float("nan"), 1.0, 1.0)))
        s2 = _expect(host, p.Sensor)
        assert s2.msg.torque_nm == (0.0,) * 4 and s2.msg.faults & p.Fault.NONFINITE and s2.msg.cmd_seq == cmd
        assert emu.c["steps"] == 2
        host.send(p.Torque(s2.seq, (1.0, 1.0, 1.0, 1.0)))
        s3 = _expect(host, p.Sensor)
        assert s3.msg.torque_nm == (1.0,) * 4 and s3.msg.faults & (p.Fault.CLAMP | p.Fault.NONFINITE) == 0
        assert emu.c["steps"] == 3 and host.stats()["crc_errors"] == 0
        host.send(p.GetStatus())  # read STATUS without changing anything
        st = _expect(host, p.Status).msg
        assert st.mode & p.Mode.ENABLED and st.clamped == 1 and emu.c["steps"] == 3
        assert host.ping(1.0) is not None


def test_handshake_mismatch_refused(board):
    _, path = board
    with Link.open(path) as host, pytest.raises(ValueError, match="does not match robot 'knob'"):
        host.handshake(KNOB_SPEC)


@pytest.mark.parametrize("board", [EmulatorConfig(lockstep=False, watchdog_ms=100)], indirect=True)
def test_watchdog_zeroes_torque_and_reenable_resumes(board):
    emu, path = board
    with Link.open(path) as host:
        assert not host.handshake(BIPED_SPEC).mode & p.Mode.LOCKSTEP
        host.send(p.Enable())
        _expect(host, p.Status)
        for _ in range(5):  # a few periods of control
            s = _expect(host, p.Sensor)
            host.send(p.Torque(s.seq, (2.0, 2.0, 2.0, 2.0)))
        s = _expect(host, p.Sensor)
        assert s.msg.torque_nm == (2.0,) * 4 and s.msg.mode & p.Mode.ENABLED
        t_last = time.monotonic()  # silence: the link "drops"
        status = _expect(host, p.Status, 2.0)
        assert status.msg.faults & p.Fault.WATCHDOG and status.msg.watchdog_trips == 1
        assert time.monotonic() - t_last < 1.0
        assert emu.watchdog_gap_ms[0] < 100 + 60  # trip on time (gap measured on the board)
        s = _expect(host, p.Sensor)
        assert s.msg.torque_nm == (0.0,) * 4 and s.msg.faults & p.Fault.WATCHDOG
        assert not s.msg.mode & p.Mode.ENABLED
        host.send(p.Torque(s.seq, (3.0,) * 4))  # ignored while disarmed
        s = _expect(host, p.Sensor)
        s = _expect(host, p.Sensor)
        assert s.msg.torque_nm == (0.0,) * 4
        host.send(p.Enable())
        assert not _expect(host, p.Status).msg.faults & p.Fault.WATCHDOG
        s = _expect(host, p.Sensor)
        host.send(p.Torque(s.seq, (3.0,) * 4))
        s = _expect(host, p.Sensor)
        assert s.msg.torque_nm == (3.0,) * 4 and s.msg.faults == 0
        assert emu.latency_ms and emu.c["nonfinite_commands"] == 0


def test_reconnect_after_host_closes_the_port(board):
    emu, path = board
    with Link.open(path) as host:
        host.handshake(BIPED_SPEC)
        host.send(p.Enable())
        s = _expect(host, p.Sensor)
        host.send(p.Torque(s.seq, (1.0,) * 4))
        _expect(host, p.Sensor)
    time.sleep(0.2)  # host gone: watchdog trips
    with Link.open(path) as host:
        host.handshake(BIPED_SPEC)
        s = _expect(host, p.Sensor)
        assert s.msg.faults & p.Fault.WATCHDOG and s.msg.torque_nm == (0.0,) * 4
        host.send(p.Enable())
        _expect(host, p.Status)
        host.send(p.Torque(s.seq, (4.0,) * 4))
        s = _expect(host, p.Sensor)
        assert s.msg.torque_nm == (4.0,) * 4
    assert emu.c["watchdog_trips"] == 1


def test_enable_before_hello_is_refused(board):
    """Issue #16 item 4: the emulator armed (and applied 5 N·m) on ENABLE before any HELLO."""
    emu, path = board
    with Link.open(path) as host:
        host.send(p.Enable())
        st = _expect(host, p.Status).msg
        assert st.faults & p.Fault.REFUSED and not st.mode & p.Mode.ENABLED
        host.send(p.Torque(0, (5.0,) * 4))
        time.sleep(0.1)
        assert not emu.enabled and np.all(emu.held_nm == 0) and emu.c["refused_enables"] == 1
        host.handshake(BIPED_SPEC)
        s0 = _expect(host, p.Sensor)
        host.send(p.Enable())
        st = _expect(host, p.Status).msg
        assert st.mode & p.Mode.ENABLED and not st.faults & p.Fault.REFUSED
        host.send(p.Torque(s0.seq, (5.0,) * 4))
        assert _expect(host, p.Sensor).msg.torque_nm == (5.0,) * 4


def test_estop_latches_until_enable_after_release(board):
    emu, path = board
    with Link.open(path) as host:
        host.handshake(BIPED_SPEC)
        s = _expect(host, p.Sensor)
        host.send(p.Enable())
        _expect(host, p.Status)
        host.send(p.Torque(s.seq, (4.0,) * 4))
        s = _expect(host, p.Sensor)
        emu.set_estop(True)
        st = _expect(host, p.Status).msg  # a latched fault raised: the board says so at once
        assert st.faults & p.Fault.ESTOP and not st.mode & p.Mode.ENABLED and np.all(emu.held_nm == 0)
        host.send(p.Enable())  # still pressed: refused
        st = _expect(host, p.Status).msg
        assert st.faults & p.Fault.REFUSED and st.faults & p.Fault.ESTOP and not emu.enabled
        emu.set_estop(False)
        time.sleep(0.1)
        host.send(p.Torque(s.seq, (4.0,) * 4))  # released, not re-enabled: the latch holds
        s = _expect(host, p.Sensor)
        assert s.msg.faults & p.Fault.ESTOP and s.msg.torque_nm == (0.0,) * 4 and not emu.enabled
        host.send(p.GetStatus())
        assert _expect(host, p.Status).msg.faults & p.Fault.ESTOP and not emu.enabled  # reading changes nothing
        host.send(p.Enable())
        st = _expect(host, p.Status).msg
        assert st.mode & p.Mode.ENABLED and not st.faults & p.Fault.ESTOP


def test_wrong_motor_count_gets_status_and_nan_does_not_feed_the_watchdog(board):
    emu, path = board
    with Link.open(path) as host:
        host.handshake(BIPED_SPEC)
        s = _expect(host, p.Sensor)
        host.send(p.Enable())
        _expect(host, p.Status)
        host.send(p.Torque(s.seq, (1.0,) * 3))  # wrong count: ignored, no step, answered with STATUS
        st = _expect(host, p.Status).msg
        assert st.faults & p.Fault.BAD_COMMAND and emu.c["steps"] == 0 and emu.c["bad_commands"] == 1
        for _ in range(8):  # NaN commands only, for well over the 100 ms watchdog
            host.send(p.Torque(s.seq, (float("nan"), 1.0, 1.0, 1.0)))
            s = _expect(host, p.Sensor)
            time.sleep(0.02)
        assert emu.c["watchdog_trips"] == 1 and not emu.enabled and s.msg.torque_nm == (0.0,) * 4


def test_crc_fault_bit_covers_cobs_and_length_errors(board):
    _, path = board
    with Link.open(path) as host:
        host.handshake(BIPED_SPEC)
        s = _expect(host, p.Sensor)
        host.write(b"\x05\x01\x00")  # a COBS error, not a CRC error
        host.send(p.Enable())
        assert _expect(host, p.Status).msg.crc_errors == 1
        host.send(p.Torque(s.seq, (0.0,) * 4))
        assert _expect(host, p.Sensor).msg.faults & p.Fault.CRC
