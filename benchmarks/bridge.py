"""Bridge benchmark: codec cost per SENSOR frame, pty round trip (PING/PONG vs raw pyserial echo), 1 kHz stream.

Run: ``python benchmarks/bridge.py [--seconds 5] [--stream-runs 3] [--rt]``. Each figure is printed next to a
baseline measured in the same run: struct pack+unpack of the same fields (no framing) for the codec, a raw byte echo
over the same kind of pty for the round trip, and for the 1 kHz stream the same board and host code over a named
pipe (no tty layer: Linux hands pty bytes to the reader from a kernel worker thread at normal priority, which on a
loaded box is the main source of late frames). ``--rt`` runs the round trips and streams under SCHED_FIFO (needs
root or CAP_SYS_NICE), as a robot's control computer would run the bridge; without it they compete with every
other job on the box at normal priority.

The board side (PING/PONG responder, echo, 1 kHz SENSOR sender) always runs in its own process (multiprocessing,
spawn), holding the master end of a pseudo-terminal from :func:`firmware_bridge.link.open_pty`; the host opens the
slave path with pyserial through :class:`~firmware_bridge.link.Link`, as ``s2r run`` does against ``s2r emulate``.
All times are ``time.monotonic_ns()``, one clock for every process on the machine.

1 kHz stream: the board schedules frame i at ``t0 + i·1 ms`` (absolute deadlines, so lateness never accumulates),
sleeps until ~0.3 ms before the deadline, then spins; the SENSOR it sends carries that scheduled time in ``t_us``.
A **deadline miss** is a frame that the host has not decoded by the next frame's scheduled time (arrival more
than one period after its own), or a frame that never arrives. The **bridge overhead** of a frame is the board's
encode + write time plus the host's read + decode time for the read that delivered it (the whole read is
charged to every frame in it), in wall time and in the two threads' CPU time (which excludes preemption and the
CPU the hypervisor steals). Each wall-clock window holds only that work: the thread CPU clock is read outside it
(``time.thread_time_ns`` is a system call: BENCHMARKS.md, Serial bridge; until 2026-11-23 one such read per
side sat inside the window and was charged to the bridge).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import select
import struct
import tempfile
import time
from dataclasses import replace
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.link import Link, open_pty

SENSOR = p.Sensor(
    t_us=123456, cmd_seq=7, faults=0, mode=1, contacts=1, imu_pitch_rad=0.1, imu_pitch_rate_rad_s=0.2,
    vel_mps=(0.5, 0.0), joint_pos_rad=(0.1,) * 4, joint_vel_rad_s=(0.2,) * 4, torque_nm=(1.0,) * 4,
    lidar_m=(2.0,) * 10,
)  # fmt: skip
# the board sleeps until this long before a deadline, then spins (sleep wakes up late: BENCHMARKS.md)
SPIN_S = 3e-4


# ------------------------------------------------------------------------------------------------ codec


def codec_us(n: int, rounds: int = 5) -> dict[str, float]:
    """CPU µs per SENSOR encode, streaming decode, and per raw struct pack+unpack of the same fields.

    Rounds are interleaved and the best round is kept: process CPU time, so other jobs on the box inflate it
    less than wall time would.
    """
    raw = struct.Struct("<QHHBBBBBBffff22f")
    vals = (123456, 7, 0, 1, 1, 4, 4, 10, 0, 0.1, 0.2, 0.5, 0.0, *([0.1] * 22))
    wire = p.encode(SENSOR, 0)
    dec = p.FrameDecoder()
    best = {"encode": np.inf, "decode": np.inf, "raw": np.inf}
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(n):
            p.encode(SENSOR, i)
        t1 = time.process_time()
        for _ in range(n):
            dec.feed(wire)
        t2 = time.process_time()
        for _ in range(n):
            raw.unpack(raw.pack(*vals))
        t3 = time.process_time()
        for k, dt in (("encode", t1 - t0), ("decode", t2 - t1), ("raw", t3 - t2)):
            best[k] = min(best[k], dt / n * 1e6)
    assert dec.stats.frames == n * rounds and dec.stats.errors == 0
    return best


# ------------------------------------------------------------------------------------------- round trip


def _responder(conn: Connection, raw: bool) -> None:
    """Board process: PONG every PING (through Link), or echo every byte (raw); stop when the host says so."""
    port, path = open_pty()
    link = Link(port)
    conn.send(path)
    while not conn.poll():
        if raw:
            data = link._read_some(0.05)
            if data:
                port.write(data)
        else:
            frame = link.recv(0.05)
            if frame is not None and isinstance(frame.msg, p.Ping):
                link.send(p.Pong(frame.msg.nonce, frame.msg.t_ns, time.monotonic_ns() // 1000))
    port.close()


def _start_board(target, *args) -> tuple[mp.process.BaseProcess, Connection, str]:
    """Spawn a board process; return it, the control pipe and the pty slave path it opened."""
    ctx = mp.get_context("spawn")
    host_end, board_end = ctx.Pipe()
    proc = ctx.Process(target=target, args=(board_end, *args), daemon=True)
    proc.start()
    if not host_end.poll(30):
        proc.kill()
        raise TimeoutError("board process did not start within 30 s")
    return proc, host_end, host_end.recv()


def round_trip_us(n: int, raw: bool) -> np.ndarray:
    """Round-trip times (µs) over a pty to a board process: PING/PONG through Link, or the same bytes echoed raw."""
    proc, conn, path = _start_board(_responder, raw)
    rtt = []
    with Link.open(path) as host:
        msg = p.encode(p.Ping(1, 2), 0)
        for i in range(n):
            t0 = time.monotonic_ns()
            if raw:
                host.write(msg)
                got = b""
                while len(got) < len(msg):
                    data = host._read_some(0.5)
                    if not data:
                        raise TimeoutError("raw echo: no answer within 0.5 s")
                    got += data
            elif host.ping(0.5, nonce=i) is None:
                raise TimeoutError("PING: no PONG within 0.5 s")
            rtt.append((time.monotonic_ns() - t0) / 1e3)
    conn.send("stop")
    proc.join(5)
    return np.array(rtt[10:])  # the first few include page faults and first-call costs


# ------------------------------------------------------------------------------------------- 1 kHz stream


def _sensor_board(conn: Connection, n: int, period_ns: int, fifo_path: str | None) -> None:
    """Board process: send ``n`` SENSOR frames at absolute deadlines; report pacing and encode+write times.

    Over a pty (``fifo_path`` None) it writes through :class:`Link` on the master end, as the emulator does;
    over a named pipe it writes the same encoded frames with ``os.write`` (transport baseline, no tty layer).
    """
    if fifo_path is None:
        port, path = open_pty()
        send = Link(port).send
        conn.send(path)
        conn.recv()  # the host has opened the slave end
    else:
        conn.send(fifo_path)
        conn.recv()  # the host has opened the read end, so this open does not block
        fd = os.open(fifo_path, os.O_WRONLY)
        seq = itertools.count()

        def send(msg: p.Message) -> int:
            return os.write(fd, p.encode(msg, next(seq)))

    t0 = (time.monotonic_ns() // 1000 + 100_000) * 1000  # 0.1 s from now, on a whole µs
    conn.send(t0)
    send_late_ns = np.zeros(n, np.int64)
    tx_ns = np.zeros(n, np.int64)
    tx_cpu_ns = np.zeros(n, np.int64)
    for i in range(n):
        due = t0 + i * period_ns
        left = due - time.monotonic_ns()
        if left > SPIN_S * 1e9:
            time.sleep(left * 1e-9 - SPIN_S)
        while time.monotonic_ns() < due:
            pass
        msg = replace(SENSOR, t_us=due // 1000)  # "sampled" at the scheduled time
        # the CPU clock is read outside the wall-clock window: it is a system call, not bridge work
        c1 = time.thread_time_ns()
        t1 = time.monotonic_ns()
        send(msg)
        t2 = time.monotonic_ns()
        tx_ns[i], tx_cpu_ns[i] = t2 - t1, time.thread_time_ns() - c1
        send_late_ns[i] = t1 - due
    conn.send((send_late_ns, tx_ns, tx_cpu_ns, port.tx_dropped if fifo_path is None else 0))
    conn.recv()  # keep the line open until the host has read everything
    if fifo_path is None:
        port.close()
    else:
        os.close(fd)


def steal_ms() -> float:
    """CPU time the hypervisor took from this VM since boot, ms, all CPUs (0 where /proc/stat has no steal)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stream_1khz(seconds: float, transport: str = "pty", rate_hz: float = 1000.0) -> dict[str, float]:
    """A board process streams SENSOR at ``rate_hz``; this (host) process reads and decodes every frame.

    ``transport``: "pty" (the emulator's link: pty master on the board, pyserial + :class:`Link` on the host) or
    "fifo" (a named pipe read with ``os.read``: the same codec work without the tty layer, as a baseline).
    """
    n, period_ns = int(seconds * rate_hz), int(round(1e9 / rate_hz))
    with tempfile.TemporaryDirectory() as tmp:
        fifo_path = None
        if transport == "fifo":
            fifo_path = os.path.join(tmp, "line")
            os.mkfifo(fifo_path)
        proc, conn, path = _start_board(_sensor_board, n, period_ns, fifo_path)
        if fifo_path is None:
            host = Link.open(path)
            fd, decoder = host.port.fileno(), host.decoder
            read = partial(host._read_some, 0.0)  # the runtime's receive path
        else:
            fd, decoder = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK), p.FrameDecoder()
            read = partial(os.read, fd, 4096)
        steal0 = steal_ms()
        arrival_ns = np.full(n, -1, np.int64)  # when frame i was decoded (-1: never)
        rx_ns = np.zeros(n, np.int64)  # read + decode time of the read that delivered frame i
        rx_cpu_ns = np.zeros(n, np.int64)  # the same in this thread's CPU time (no preemption, no steal)
        conn.send("ready")
        t0 = conn.recv()
        while True:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                break  # the board has gone quiet: everything it sent has arrived
            c1 = time.thread_time_ns()  # outside the wall-clock window, as on the board
            t1 = time.monotonic_ns()
            frames = decoder.feed(read())
            t2 = time.monotonic_ns()
            c2 = time.thread_time_ns()
            for frame in frames:
                if not isinstance(frame.msg, p.Sensor):
                    continue
                i = (frame.msg.t_us * 1000 - t0) // period_ns
                if 0 <= i < n:
                    arrival_ns[i], rx_ns[i], rx_cpu_ns[i] = t2, t2 - t1, c2 - c1
        steal = steal_ms() - steal0
        send_late_ns, tx_ns, tx_cpu_ns, tx_dropped = conn.recv()
        conn.send("done")
        proc.join(5)
        if fifo_path is None:
            host.close()
        else:
            os.close(fd)
    got = arrival_ns >= 0
    late_ns = arrival_ns[got] - (t0 + np.flatnonzero(got) * period_ns)
    overhead_us = (tx_ns[got] + rx_ns[got]) / 1e3
    overhead_cpu_us = (tx_cpu_ns[got] + rx_cpu_ns[got]) / 1e3
    misses = (n - int(got.sum())) + int(np.sum(late_ns > period_ns))
    return {
        "frames": n,
        "received": int(got.sum()),
        "miss_rate": misses / n,
        "late_p50_us": float(np.percentile(late_ns, 50) / 1e3),
        "late_p99_us": float(np.percentile(late_ns, 99) / 1e3),
        "late_max_us": float(late_ns.max() / 1e3),
        "send_late_p99_us": float(np.percentile(send_late_ns, 99) / 1e3),
        "send_late_max_us": float(send_late_ns.max() / 1e3),
        "tx_p50_us": float(np.percentile(tx_ns, 50) / 1e3),
        "rx_p50_us": float(np.percentile(rx_ns[got], 50) / 1e3),
        "rx_p99_us": float(np.percentile(rx_ns[got], 99) / 1e3),
        "overhead_p50_us": float(np.percentile(overhead_us, 50)),
        "overhead_p99_us": float(np.percentile(overhead_us, 99)),
        "overhead_cpu_p50_us": float(np.percentile(overhead_cpu_us, 50)),
        "overhead_cpu_p99_us": float(np.percentile(overhead_cpu_us, 99)),
        "decoder_errors": decoder.stats.errors,
        "seq_gaps": decoder.stats.seq_gaps,
        "tx_dropped_bytes": tx_dropped,
        "steal_ms": steal,
    }


def set_realtime(priority: int) -> None:
    """Run this process (and the board processes it spawns later, which inherit it) under SCHED_FIFO."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        raise SystemExit(f"--rt: cannot switch to SCHED_FIFO ({exc}); run as root or without --rt") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each 1 kHz stream, s")
    ap.add_argument("--stream-runs", type=int, default=3, help="how many 1 kHz streams to run")
    ap.add_argument("--n", type=int, default=4000, help="codec iterations per round (5 rounds)")
    ap.add_argument("--pings", type=int, default=2000)
    ap.add_argument("--rt", action="store_true", help="round trips and streams under SCHED_FIFO, priority 50")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs); "
          f"COBS in {p.COBS_BACKEND} (S2R_COBS=python in the environment forces the Python reference)")
    c = codec_us(args.n)
    codec = c["encode"] + c["decode"]
    print(
        f"SENSOR encode {c['encode']:.1f} + decode {c['decode']:.1f} = {codec:.1f} µs/frame (CPU, best of 5); "
        f"raw struct pack+unpack {c['raw']:.2f} µs (ratio {codec / c['raw']:.1f}x)"
    )
    if args.rt:
        set_realtime(50)  # after the codec loop, which needs no priority and would hog a core
    link_rtt = round_trip_us(args.pings, raw=False)
    echo_rtt = round_trip_us(args.pings, raw=True)
    for name, x in (("PING/PONG via Link", link_rtt), ("raw byte echo     ", echo_rtt)):
        print(f"pty round trip {name}: p50 {np.percentile(x, 50):.0f} µs, p99 {np.percentile(x, 99):.0f} µs")
    print(
        f"  ratio Link/raw: p50 {np.percentile(link_rtt, 50) / np.percentile(echo_rtt, 50):.2f}x, "
        f"p99 {np.percentile(link_rtt, 99) / np.percentile(echo_rtt, 99):.2f}x"
    )
    prio = "SCHED_FIFO" if args.rt else "normal priority"
    for run in range(args.stream_runs):
        for transport in ("pty", "fifo"):  # interleaved, so both see the same load
            s = stream_1khz(args.seconds, transport)
            line = "pty, the bridge" if transport == "pty" else "named pipe, baseline without the tty layer"
            print(
                f"1 kHz SENSOR stream #{run + 1} over a {line} ({prio}, board and host in separate processes): "
                f"{s['received']}/{s['frames']} frames received, deadline misses {100 * s['miss_rate']:.3f} % "
                f"(goal < 0.1 %)\n"
                f"  arrival after schedule p50 {s['late_p50_us']:.0f} µs, p99 {s['late_p99_us']:.0f} µs, "
                f"max {s['late_max_us']:.0f} µs (board send lateness p99 {s['send_late_p99_us']:.0f} µs, "
                f"max {s['send_late_max_us']:.0f} µs)\n"
                f"  bridge overhead (board encode+write + host read+decode) p50 {s['overhead_p50_us']:.0f} µs, "
                f"p99 {s['overhead_p99_us']:.0f} µs (goal ≤ 100 µs); host read+decode p50 {s['rx_p50_us']:.0f} "
                f"µs p99 {s['rx_p99_us']:.0f} µs, board encode+write p50 {s['tx_p50_us']:.0f} µs; as CPU time "
                f"(board + host threads) p50 {s['overhead_cpu_p50_us']:.0f} µs, p99 {s['overhead_cpu_p99_us']:.0f} µs\n"
                f"  decoder errors {s['decoder_errors']}, seq gaps {s['seq_gaps']}, bytes dropped by the board "
                f"{s['tx_dropped_bytes']}; CPU stolen by the hypervisor during the stream {s['steal_ms']:.0f} ms; "
                f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )


if __name__ == "__main__":
    main()
