"""Bridge benchmark: codec cost per SENSOR frame, pty round trip (PING/PONG vs raw pyserial echo), 1 kHz stream.

Run: ``nice -n 10 python benchmarks/bridge.py [--seconds 3]``. Each figure is printed next to a baseline
measured in the same run: struct.pack/unpack of the same fields (no framing) for the codec, a raw byte echo
over the same kind of pty for the round trip.
"""

from __future__ import annotations

import argparse
import struct
import threading
import time

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.link import Link, open_pty

SENSOR = p.Sensor(
    t_us=123456, cmd_seq=7, faults=0, mode=1, contacts=1, imu_pitch_rad=0.1, imu_pitch_rate_rad_s=0.2,
    vel_mps=(0.5, 0.0), joint_pos_rad=(0.1,) * 4, joint_vel_rad_s=(0.2,) * 4, torque_nm=(1.0,) * 4,
    lidar_m=(2.0,) * 10,
)  # fmt: skip


def codec_us(n: int) -> tuple[float, float]:
    """µs per SENSOR encode+decode through the streaming decoder, and per raw struct pack+unpack."""
    dec = p.FrameDecoder()
    t0 = time.perf_counter()
    for i in range(n):
        dec.feed(p.encode(SENSOR, i))
    codec = (time.perf_counter() - t0) / n * 1e6
    raw = struct.Struct("<QHHBBffff26f")
    vals = (123456, 7, 0, 1, 1, 0.1, 0.2, 0.5, 0.0, *([0.1] * 26))
    t0 = time.perf_counter()
    for _ in range(n):
        raw.unpack(raw.pack(*vals))
    return codec, (time.perf_counter() - t0) / n * 1e6


def _serve(stop: threading.Event, port, raw: bool) -> None:
    link = Link(port)
    while not stop.is_set():
        if raw:
            data = link._read_some(0.05)
            if data:
                port.write(data)
        else:
            frame = link.recv(0.05)
            if frame is not None and isinstance(frame.msg, p.Ping):
                link.send(p.Pong(frame.msg.nonce, frame.msg.t_ns, 0))


def round_trip_us(n: int, raw: bool) -> np.ndarray:
    """Round-trip times (µs) over a pty: PING/PONG through Link, or the same bytes echoed raw."""
    master, path = open_pty()
    stop = threading.Event()
    th = threading.Thread(target=_serve, args=(stop, master, raw), daemon=True)
    th.start()
    rtt = []
    with Link.open(path) as host:
        msg = p.encode(p.Ping(1, 2), 0)
        for i in range(n):
            t0 = time.perf_counter_ns()
            if raw:
                host.write(msg)
                got = b""
                while len(got) < len(msg):
                    got += host._read_some(0.5)
            else:
                assert host.ping(0.5, nonce=i) is not None
            rtt.append((time.perf_counter_ns() - t0) / 1e3)
    stop.set()
    th.join(1)
    master.close()
    return np.array(rtt[10:])


def stream_1khz(seconds: float) -> dict[str, float]:
    """Board thread sends SENSOR at 1 kHz on an absolute schedule; host decodes. Miss = decoded > 1 ms late."""
    master, path = open_pty()
    n = int(seconds * 1000)
    period = 1e-3
    sent_at = np.zeros(n)
    tx_us = np.zeros(n)
    board = Link(master)
    host = Link.open(path)
    t_start = time.perf_counter() + 0.05

    def send() -> None:
        for i in range(n):
            due = t_start + i * period
            while time.perf_counter() < due:
                time.sleep(max(0.0, due - time.perf_counter() - 2e-4))
            t0 = time.perf_counter()
            board.send(SENSOR)
            tx_us[i] = (time.perf_counter() - t0) * 1e6
            sent_at[i] = due

    th = threading.Thread(target=send, daemon=True)
    th.start()
    late, rx_us, got = [], [], 0
    while got < n:
        data = host._read_some(0.5)
        if not data:
            break
        t0 = time.perf_counter()
        frames = host.decoder.feed(data)
        t1 = time.perf_counter()
        for _ in frames:
            late.append(t1 - (t_start + got * period))
            rx_us.append((t1 - t0) * 1e6 / len(frames))
            got += 1
    th.join()
    host.close()
    master.close()
    late_a = np.array(late)
    overhead = tx_us[: len(rx_us)] + np.array(rx_us)
    return {
        "frames": n,
        "received": got,
        "miss_rate": float(np.mean(late_a > period)) if got else 1.0,
        "latency_p50_us": float(np.percentile(late_a, 50) * 1e6),
        "latency_p99_us": float(np.percentile(late_a, 99) * 1e6),
        "overhead_p50_us": float(np.percentile(overhead, 50)),
        "overhead_p99_us": float(np.percentile(overhead, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the 1 kHz stream")
    ap.add_argument("--n", type=int, default=20000, help="codec iterations")
    ap.add_argument("--pings", type=int, default=2000)
    args = ap.parse_args()
    codec, raw = codec_us(args.n)
    print(
        f"SENSOR encode+decode: {codec:.1f} µs/frame; raw struct pack+unpack {raw:.2f} µs (ratio {codec / raw:.1f}x)"
    )
    link_rtt = round_trip_us(args.pings, raw=False)
    echo_rtt = round_trip_us(args.pings, raw=True)
    for name, x in (("PING/PONG via Link", link_rtt), ("raw pyserial echo ", echo_rtt)):
        print(f"pty round trip {name}: p50 {np.percentile(x, 50):.0f} µs, p99 {np.percentile(x, 99):.0f} µs")
    print(
        f"  ratio Link/raw: p50 {np.percentile(link_rtt, 50) / np.percentile(echo_rtt, 50):.2f}x, "
        f"p99 {np.percentile(link_rtt, 99) / np.percentile(echo_rtt, 99):.2f}x"
    )
    s = stream_1khz(args.seconds)
    print(
        f"1 kHz SENSOR stream over pty, {s['frames']} frames ({s['received']} received): deadline misses "
        f"{100 * s['miss_rate']:.3f} % (goal < 0.1 %), send→decoded p50 {s['latency_p50_us']:.0f} µs "
        f"p99 {s['latency_p99_us']:.0f} µs; bridge overhead (encode+write+decode) p50 {s['overhead_p50_us']:.0f} µs "
        f"p99 {s['overhead_p99_us']:.0f} µs (goal ≤ 100 µs)"
    )


if __name__ == "__main__":
    main()
