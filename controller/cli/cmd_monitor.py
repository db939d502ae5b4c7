"""``epm monitor``: print the EPM-1 frames on a link, or in a pyserial spy capture, readably.

On a live URL it only listens - it never sends, not even HELLO - so it can watch a device
without changing its state. To watch while epm itself drives the device, run epm with a
``spy://PORT?file=PATH`` URL and read the file with ``--file``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="decode and print EPM-1 frames on a port or in a capture file",
        description=(
            "Print one line per EPM-1 frame: time, direction, seq, type and decoded fields; "
            "dropped frames are reported too. Listens only (sends nothing). Give a port URL, "
            "or --file with a capture written by pyserial's spy://PORT?file=PATH."
        ),
    )
    parser.add_argument(
        "url",
        nargs="?",
        help="port to listen on: /dev/ttyUSB0, /dev/serial/by-id/..., socket://HOST:PORT, ...",
    )
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--file", metavar="CAPTURE", help="read a spy:// capture file instead")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")


def run(args: argparse.Namespace) -> int:
    if (args.url is None) == (args.file is None):
        print(
            "epm monitor: give either a port URL or --file CAPTURE (one of them).", file=sys.stderr
        )
        return EXIT_USAGE
    if args.count is not None and args.count < 1:
        print("epm monitor: --count must be at least 1.", file=sys.stderr)
        return EXIT_USAGE
    if args.duration is not None and args.duration <= 0:
        print("epm monitor: --duration must be positive.", file=sys.stderr)
        return EXIT_USAGE
    out = _printer()
    if args.file is not None:
        return monitor_file(Path(args.file), out, count=args.count)
    return monitor_port(args.url, args.baud, out, count=args.count, duration=args.duration)


def _printer() -> Callable[[str], None]:
    def emit(line: str) -> None:
        print(line, flush=True)

    return emit


def monitor_file(path: Path, out: Callable[[str], None], *, count: int | None = None) -> int:
    """Print the frames of a capture file; returns the exit code."""
    from controller.link.capture import RX, TX, parse_capture
    from controller.link.describe import (
        DEVICE_TO_HOST,
        HOST_TO_DEVICE,
        direction_of,
        feed_in_order,
        format_line,
    )
    from controller.wire.codec import FrameDecoder

    try:
        content = path.read_bytes()
    except OSError as exc:
        print(f"epm monitor: cannot read capture {path}: {exc.strerror}.", file=sys.stderr)
        return EXIT_ERROR
    chunks = parse_capture(content)
    if not chunks:
        print(f"epm monitor: {path} holds no traffic.", file=sys.stderr)
        return EXIT_ERROR
    label = {TX: HOST_TO_DEVICE, RX: DEVICE_TO_HOST}
    decoders: dict[str | None, FrameDecoder] = {}
    printed = 0
    last_t = 0.0
    for chunk in chunks:
        decoder = decoders.setdefault(chunk.direction, FrameDecoder())
        t = chunk.t if chunk.t is not None else last_t
        last_t = t
        for item in feed_in_order(decoder, chunk.data):
            if isinstance(item, str):
                out(f"{t:10.3f} {label.get(chunk.direction or '', '?  ')} {item}")
                continue
            direction = label.get(chunk.direction or "", direction_of(item.type))
            out(format_line(t, direction, item))
            printed += 1
            if count is not None and printed >= count:
                return EXIT_OK
    return EXIT_OK


def monitor_port(
    url: str,
    baud: int,
    out: Callable[[str], None],
    *,
    count: int | None = None,
    duration: float | None = None,
) -> int:
    """Listen on ``url`` and print frames until ``count``/``duration`` or Ctrl-C."""
    import serial

    from controller.link.describe import direction_of, feed_in_order, format_line
    from controller.link.errors import LinkError
    from controller.link.port import open_port
    from controller.wire.codec import FrameDecoder

    try:
        port = open_port(url, baud, read_timeout=0.05)
    except LinkError as exc:
        print(f"epm monitor: {exc}", file=sys.stderr)
        return EXIT_ERROR
    decoder = FrameDecoder()
    start = time.monotonic()
    printed = 0
    try:
        while duration is None or time.monotonic() - start < duration:
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                print(f"epm monitor: the port failed ({exc}); stopped.", file=sys.stderr)
                return EXIT_ERROR
            if not data:
                continue
            now = time.monotonic() - start
            for item in feed_in_order(decoder, data):
                if isinstance(item, str):
                    out(f"{now:10.3f} ?   {item}")
                    continue
                out(format_line(now, direction_of(item.type), item))
                printed += 1
                if count is not None and printed >= count:
                    return EXIT_OK
    finally:
        port.close()
    return EXIT_OK
