"""Link's receive path over real descriptors: a pty (both ends) and ``socket://``, read without pyserial's read."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import serial

from firmware_bridge import protocol as p
from firmware_bridge.link import Link, open_pty

PING = p.Ping(7, 42)


@pytest.fixture
def pty_pair():
    """(board Link on the pty master, host Link on the slave path through pyserial)."""
    port, path = open_pty()
    board, host = Link(port), Link.open(path)
    yield board, host
    host.close()
    board.close()


def test_both_pty_ends_take_the_direct_read_path(pty_pair):
    board, host = pty_pair
    assert board._lean_fd == board.port.fileno()  # PtyPort (the emulator's end)
    assert host._lean_fd == host.port.fileno()  # pyserial's posix Serial (the runtime's end)
    assert Link.open("loop://")._lean_fd is None  # no descriptor: port.read with a timeout


def test_direct_read_honours_its_timeout(pty_pair):
    _, host = pty_pair
    for timeout_s in (0.0, 0.05):
        t0 = time.monotonic()
        assert host._read_some(timeout_s) == b""
        waited = time.monotonic() - t0
        assert timeout_s <= waited < timeout_s + 0.05
    t0 = time.monotonic()
    assert host.recv(0.05) is None
    assert time.monotonic() - t0 >= 0.05


def test_direct_read_returns_partial_data_at_once_and_the_frame_when_complete(pty_pair):
    board, host = pty_pair
    board.write(b"\x05\x01\x02")
    t0 = time.monotonic()
    assert host._read_some(1.0) == b"\x05\x01\x02"  # what is there, without waiting for more or the timeout
    assert time.monotonic() - t0 < 0.5
    wire = p.encode(PING, 3)
    board.write(wire[:5])
    assert host.recv(0.02) is None  # half a frame waits in the decoder
    board.write(wire[5:])
    frame = host.recv(1.0)
    assert frame is not None and (frame.seq, frame.msg) == (3, PING)
    # a frame that arrives while recv is blocked in select is returned as soon as it lands
    t0 = time.monotonic()
    board.send(PING)
    assert host.recv(1.0) is not None and time.monotonic() - t0 < 0.5


def test_board_end_reads_what_the_host_sends(pty_pair):
    board, host = pty_pair
    seqs = [host.send(PING) for _ in range(3)]
    got = [board.recv(1.0) for _ in seqs]
    assert [f.seq for f in got if f is not None] == seqs


def test_direct_write_hands_the_rest_to_pyserial_with_its_write_timeout():
    port, path = open_pty()
    with Link.open(path, timeout_s=1.0) as host:  # 1 s: the drain thread must keep up on a loaded 2-core box
        assert host._lean_write_fd == host.port.fileno()
        big = bytes(range(1, 256)) * 4000  # ~1 MB: far more than the pty buffers hold
        got = bytearray()

        def drain() -> None:
            port.timeout = 0.5
            while len(got) < len(big) and (chunk := port.read(65536)):
                got.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        host.write(big)  # os.write takes what fits, pyserial's write the rest while the board drains it
        reader.join(10)
        assert bytes(got) == big and host.tx_bytes == len(big)
        t0 = time.monotonic()
        with pytest.raises(OSError, match="timed out"):  # nobody reads now: the write timeout still applies
            host.write(big)
        assert time.monotonic() - t0 < 3.0
    port.close()


def test_hung_up_pty_raises_oserror(pty_pair):
    board, host = pty_pair
    board.port.close()  # the master end goes away (board process gone): the slave reads EIO
    with pytest.raises(OSError):  # pyserial's SerialException is an OSError
        host.recv(0.2)


def test_socket_url_reads_chunks_and_reports_disconnect():
    server = socket.create_server(("127.0.0.1", 0))
    with server, Link.open(f"socket://127.0.0.1:{server.getsockname()[1]}") as host:
        conn, _ = server.accept()
        assert host._lean_fd is not None
        wire = p.encode(PING, 1) + p.encode(PING, 2)
        conn.sendall(wire[:7])
        assert host.recv(0.05) is None
        conn.sendall(wire[7:])
        assert [host.recv(1.0).seq, host.recv(1.0).seq] == [1, 2]  # type: ignore[union-attr]
        conn.close()
        with pytest.raises(serial.SerialException, match="disconnected"):
            host.recv(1.0)


def test_first_frame_after_line_noise_is_not_lost(pty_pair):
    """A sender starts with 0x00 (docs/protocol.md §3), so noise already on the line cannot swallow its first frame."""
    board, host = pty_pair
    board.port.write(b"\x13\x37\x42")  # line noise: no delimiter
    board.send(PING)
    frame = host.recv(1.0)
    assert frame is not None and frame.msg == PING
    assert host.stats()["length_errors"] + host.stats()["crc_errors"] == 1  # the noise, counted once


def test_frame_cut_by_a_full_pty_does_not_destroy_the_next_frame(pty_pair):
    """The emulator's pty end drops what does not fit; a frame cut in the middle must cost only itself."""
    board, host = pty_pair
    big = p.Torque(0x0101, tuple(float(i + 1) for i in range(200)))  # ~800 wire bytes
    port = board.port
    for _ in range(10_000):  # nobody reads: fill the pty until a write is cut short
        board.send(big)
        if port.tx_dropped:
            break
    assert port.tx_dropped and port._cut, "the pty never cut a frame"
    got = []
    while (frame := host.recv(0.2)) is not None:  # drain: every frame that arrives is whole
        got.append(frame.msg)
    assert got and all(m == big for m in got)
    board.send(PING)
    frame = host.recv(1.0)
    assert frame is not None and frame.msg == PING  # the frame after the cut one arrives intact
    assert host.stats()["length_errors"] + host.stats()["crc_errors"] == 1  # the cut frame, counted once
