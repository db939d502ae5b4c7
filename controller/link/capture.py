"""Reading traffic captures written by pyserial's ``spy://PORT?file=PATH`` URL handler.

Two formats exist. The default is a hex dump, one line per 16 bytes with a timestamp and
``TX`` (written by the program that used the spy URL - the host) or ``RX`` (read by it - the
device's frames); control-line notes and ``<empty>`` reads are ignored. The ``raw`` format is
the bytes themselves, with the ``color`` option marking TX and RX by ANSI colour codes; without
colour the direction is unknown and is inferred per frame from its type. (pyserial 3.5 opens
the capture file in text mode, so ``raw`` together with ``file=`` fails there; such files come
from other tools or later pyserial versions.)
"""

from __future__ import annotations

import re
from typing import NamedTuple

TX = "TX"
RX = "RX"

_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
_HEX_LINE = re.compile(r"^(\d+\.\d+) (TX|RX)\s+[0-9A-Fa-f]{4}  (.*)$")
#: Width of the hex column in pyserial's dump: 16 × "XX " plus the gap after 8 bytes.
_HEX_WIDTH = 49
_RAW_MARKS = {b"\x1b[31m": TX, b"\x1b[32m": RX}


class Chunk(NamedTuple):
    """Bytes seen in one direction (None: unknown) at ``t`` s after capture start (if known)."""

    t: float | None
    direction: str | None
    data: bytes


def parse_capture(content: bytes) -> list[Chunk]:
    """Split a capture file into chunks of bytes with direction (and time, for hex dumps)."""
    text = _ANSI.sub(b"", content).decode("latin-1")
    chunks = _parse_hexdump(text)
    if chunks:
        return chunks
    return _parse_raw(content)


def _parse_hexdump(text: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    for line in text.splitlines():
        found = _HEX_LINE.match(line)
        if not found:
            continue
        t = float(found.group(1))
        direction = found.group(2)
        data = bytes(int(tok, 16) for tok in found.group(3)[:_HEX_WIDTH].split())
        if chunks and chunks[-1].direction == direction and chunks[-1].t == t:
            last = chunks.pop()
            chunks.append(Chunk(t, direction, last.data + data))
        else:
            chunks.append(Chunk(t, direction, data))
    return chunks


def _parse_raw(content: bytes) -> list[Chunk]:
    pattern = re.compile(b"|".join(re.escape(mark) for mark in _RAW_MARKS))
    chunks: list[Chunk] = []
    direction: str | None = None
    pos = 0
    for mark in pattern.finditer(content):
        if mark.start() > pos:
            chunks.append(Chunk(None, direction, content[pos : mark.start()]))
        direction = _RAW_MARKS[mark.group(0)]
        pos = mark.end()
    if pos < len(content):
        chunks.append(Chunk(None, direction, content[pos:]))
    return chunks
