"""Transport: a framed message link over any pyserial port (real tty, pty, ``loop://``, ``socket://``).

:class:`Link` adds sequence numbers, framing and a streaming :class:`~firmware_bridge.protocol.FrameDecoder`
to a byte port, with a timeout on every blocking call. Ports are opened only through
``serial.serial_for_url``; the one exception is the *master* end of a pseudo-terminal that the firmware
emulator creates with :func:`open_pty` (that end has no device path), wrapped in :class:`PtyPort`, which has
the same read/write/in_waiting/fileno surface.

Reads from a pty (either end), a posix serial device or a ``socket://`` port go straight to the descriptor (one
``os.read`` when bytes are waiting, ``select`` only to wait): pyserial's ``in_waiting`` + ``read`` cost an ioctl,
a second select and its Python bookkeeping per call, which at 1 kHz was a third of the host's receive time.
Writes to a posix serial device or socket likewise start with one ``os.write``; pyserial's ``write`` (with its
write timeout) only takes over for what did not fit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
import tty
from collections import deque
from typing import cast

import serial
from serial.urlhandler import protocol_socket

from firmware_bridge import protocol as p
from sim.errors import UserError
from sim.spec import RobotSpec

DEFAULT_BAUD = 1_000_000  # ignored by pty/loop/socket; a USB-serial board runs at 1 Mbaud


class PtyPort:
    """The master end of a pseudo-terminal, with pyserial's byte-port interface.

    Writes never block: if nobody drains the slave side (host disconnected) the bytes are dropped, like a UART
    with nothing attached. A write cut short (the pty buffer filled mid-frame) leaves a frame without its
    delimiter, so the next write starts with an extra ``0x00``: the receiver drops the cut frame as one length
    error and decodes the next one intact (docs/protocol.md §3). The slave end is kept open here so that a host closing and reopening the slave path
    (a reconnect) never makes the master see end-of-file.
    """

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing, no CR/LF translation: a byte pipe
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self.timeout: float | None = 0.0
        self.tx_dropped = 0  # bytes dropped because the slave side was full
        self._cut = False  # the last write was cut short: the next one starts with a delimiter

    def fileno(self) -> int:
        return self._master

    @property
    def in_waiting(self) -> int:
        r, _, _ = select.select([self._master], [], [], 0)
        return 4096 if r else 0  # a read of up to this many bytes will not block

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes, waiting at most ``self.timeout`` seconds for the first."""
        r, _, _ = select.select([self._master], [], [], self.timeout)
        if not r:
            return b""
        try:
            return os.read(self._master, size)
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO: no slave open (cannot happen while we hold it, but be safe)
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> int:
        if self._cut:
            data = b"\x00" + bytes(data)
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        self.tx_dropped += len(data) - n
        self._cut = 0 < n < len(data) or (self._cut and n == 0)
        return n

    def reset_input_buffer(self) -> None:
        while self.read(4096):
            pass

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_pty() -> tuple[PtyPort, str]:
    """Create a pseudo-terminal; return its master end and the slave path for the other side to open."""
    port = PtyPort()
    return port, port.port


def open_port(url: str, baud: int = DEFAULT_BAUD, timeout_s: float = 1.0) -> serial.SerialBase:
    """Open a port by device path or URL (``/dev/ttyUSB0``, ``/dev/pts/5``, ``loop://``, ``socket://h:p``)."""
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=timeout_s)
    except (serial.SerialException, ValueError, OverflowError) as exc:  # a huge baud rate overflows termios
        raise OSError(
            f"cannot open port '{url}': {exc}; check the path/URL, the --baud rate and that the device is present"
        ) from None
    return port


# Port classes whose ``read`` is a select + ``os.read`` on a non-blocking descriptor with no user-space buffer, so
# Link may read the descriptor itself. Anything else (``loop://``, ``spy://`` which logs every read, rfc2217 with its
# reader thread, a subclass that buffers) goes through ``port.read``. (serial.Serial is the posix class here.)
_DIRECT_PORTS = (PtyPort, serial.Serial, protocol_socket.Serial)


class Link:
    """Send and receive protocol messages over a byte port; every call has a timeout."""

    def __init__(self, port) -> None:
        self.port = port
        self.decoder = p.FrameDecoder()
        self.tx_frames = 0
        self.tx_bytes = 0
        self._tx_seq = 0
        self._lead = True  # the first frame starts with 0x00: it ends whatever line noise came before it
        self._pending: deque[p.Frame[p.Message]] = deque()
        try:
            self._fd: int | None = port.fileno()
            port.timeout = 0  # reads never block; we wait with select on the descriptor
        except (AttributeError, OSError, NotImplementedError):
            self._fd = None  # loop:// has no descriptor: block in port.read with a timeout instead
        # the descriptor that _read_some reads itself (see _read_fd): only where that is what port.read would do
        self._lean_fd: int | None = None
        if self._fd is not None and type(port) in _DIRECT_PORTS and not os.get_blocking(self._fd):
            self._lean_fd = self._fd
        # and the one that write() writes itself (PtyPort.write already is one os.write, counting drops)
        self._lean_write_fd = self._lean_fd if type(port) is not PtyPort else None

    @classmethod
    def open(cls, url: str, baud: int = DEFAULT_BAUD, timeout_s: float = 1.0) -> Link:
        """Open ``url`` with serial.serial_for_url and discard stale input."""
        port = open_port(url, baud, timeout_s)
        port.reset_input_buffer()
        return cls(port)

    def send(self, msg: p.Message) -> int:
        """Encode and write one message; return the header sequence number used."""
        seq = self._tx_seq
        self.send_wire(p.encode(msg, seq))
        return seq

    def send_wire(self, wire: bytes, new: bool = True) -> None:
        """Write one encoded frame. ``new``: it used the next sequence number (a lockstep re-send does not).

        The first frame of a link is preceded by ``0x00`` (docs/protocol.md §3: a sender starts with a delimiter).
        """
        if self._lead:
            wire, self._lead = b"\x00" + wire, False
        self.write(wire)
        if new:
            self._tx_seq = (self._tx_seq + 1) & 0xFFFF
        self.tx_frames += 1

    def write(self, data: bytes) -> None:
        """Write raw bytes (also used by fault injection and tests)."""
        try:
            fd = self._lean_write_fd
            if fd is None:
                self.port.write(data)
            else:
                try:
                    n = os.write(fd, data)
                except OSError:  # full (EAGAIN) or failed: the port writes it, or raises, as it always did
                    n = 0
                if n < len(data):
                    self.port.write(data[n:])
        except serial.SerialTimeoutException:
            self._lead = True  # part of a frame may have gone out: delimit it before the next one
            raise OSError(
                f"write to {getattr(self.port, 'port', '?')} timed out: is the other side reading?"
            ) from None
        self.tx_bytes += len(data)

    def _read_fd(self, fd: int) -> bytes:
        """Whatever is waiting on the non-blocking descriptor (up to 4 KiB), b"" if nothing is."""
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        # End of file or an error (device unplugged, port closed): let the port report it exactly as its own
        # read would (pyserial raises SerialException, the pty master returns b"").
        return data or self.port.read(4096)

    def _read_some(self, timeout_s: float) -> bytes:
        """Bytes that arrive within ``timeout_s`` seconds (at least one unless it times out), b"" on timeout."""
        timeout_s = max(0.0, timeout_s)
        fd = self._lean_fd
        if fd is not None:
            data = self._read_fd(fd)  # bytes already waiting cost one system call
            if data or timeout_s == 0.0:
                return data
            r, _, _ = select.select([fd], [], [], timeout_s)
            return self._read_fd(fd) if r else b""
        if self._fd is not None:
            r, _, _ = select.select([self._fd], [], [], timeout_s)
            return self.port.read(max(1, self.port.in_waiting)) if r else b""
        n = self.port.in_waiting
        if n:
            return self.port.read(n)
        if self.port.timeout != timeout_s:
            self.port.timeout = timeout_s
        return self.port.read(1)

    def recv(self, timeout_s: float) -> p.Frame[p.Message] | None:
        """Next valid frame, or None if none arrived within ``timeout_s`` seconds."""
        if self._pending:
            return self._pending.popleft()
        deadline = time.monotonic() + timeout_s
        while True:
            data = self._read_some(deadline - time.monotonic())
            if data:
                self._pending.extend(self.decoder.feed(data))
                if self._pending:
                    return self._pending.popleft()
            elif time.monotonic() >= deadline:
                return None

    def unread(self, frame: p.Frame[p.Message]) -> None:
        """Put a received frame back: the next :meth:`recv` returns it first."""
        self._pending.appendleft(frame)

    def recv_msg(self, kind: type[p.M], timeout_s: float) -> p.Frame[p.M] | None:
        """Next frame carrying a message of class ``kind`` within ``timeout_s``; other frames are discarded."""
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.recv(deadline - time.monotonic())
            if frame is None:
                return None
            if isinstance(frame.msg, kind):
                return cast("p.Frame[p.M]", frame)  # isinstance narrows frame.msg, not the frame holding it

    def handshake(self, spec: RobotSpec | None = None, timeout_s: float = 1.0, tries: int = 3) -> p.Ident:
        """HELLO → IDENT (retried ``tries`` times); check it against ``spec``. Raises ValueError / TimeoutError."""
        for _ in range(tries):
            self.send(p.Hello())
            frame = self.recv_msg(p.Ident, timeout_s / tries)
            if frame is not None:
                if spec is not None:
                    p.check_ident(frame.msg, spec)
                return frame.msg
        bad = self.decoder.stats.last_bad_major
        if bad >= 0:
            raise UserError(
                f"board speaks protocol v{bad}, this host v{p.PROTO_MAJOR}; update firmware or s2r"
            )
        raise TimeoutError(
            f"no IDENT from the board within {timeout_s:g} s: is the emulator/board on this port?"
        )

    def ping(self, timeout_s: float = 0.5, nonce: int = 0) -> float | None:
        """Round-trip time in seconds of one PING/PONG, or None on timeout."""
        t0 = time.monotonic_ns()
        self.send(p.Ping(nonce & 0xFFFFFFFF, t0))
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.recv_msg(p.Pong, deadline - time.monotonic())
            if frame is None:
                return None
            if frame.msg.nonce == nonce & 0xFFFFFFFF and frame.msg.t_ns == t0:
                return (time.monotonic_ns() - t0) * 1e-9

    def stats(self) -> dict[str, int]:
        """Receive counters (see DecoderStats) plus frames and bytes sent."""
        s = self.decoder.stats
        return {
            "rx_frames": s.frames, "rx_bytes": s.bytes, "crc_errors": s.crc_errors, "length_errors": s.length_errors,
            "version_errors": s.version_errors, "unknown_types": s.unknown_types, "payload_errors": s.payload_errors,
            "resyncs": s.resyncs, "seq_gaps": s.seq_gaps, "tx_frames": self.tx_frames, "tx_bytes": self.tx_bytes,
        }  # fmt: skip

    def close(self) -> None:
        self._fd = self._lean_fd = self._lean_write_fd = None  # never touch a number the OS may reuse
        self.port.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
