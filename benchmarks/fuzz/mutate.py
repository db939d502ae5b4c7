"""Mutation primitives on bytes and lines, and the per-case random generator.

Every function takes the case's ``random.Random`` and returns ``(description, new bytes)``; the
description is short and says exactly what was done, so an escape can be understood without
replaying it.
"""

from __future__ import annotations

import random

#: Characters that mean something to YAML (and a few that break lines or text).
SPECIAL: tuple[bytes, ...] = (
    *(c.encode() for c in ":{}[]-#&*!'\"|>%@,?`~"),
    b"\t",
    b"\n",
    b"\r",
    b"\0",
    "\u2028".encode(),
    "\x85".encode(),
    "\ufeff".encode(),
)
#: Byte sequences that are not valid UTF-8 (or are, but mean trouble).
BAD_UTF8: tuple[bytes, ...] = (
    b"\xff",
    b"\xc3",  # a lead byte with nothing after it
    b"\xc0\x80",  # overlong NUL
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xef\xbb\xbf",  # a BOM in the middle
)


def case_random(target: str, seed: int, index: int) -> random.Random:
    """The generator of case ``index`` of ``seed``: the same bytes whatever ran before it.

    A string seed is hashed with SHA-512 by ``random``, so this does not depend on
    ``PYTHONHASHSEED`` or the Python build.
    """
    return random.Random(f"epm-fuzz:{target}:{seed}:{index}")


def show(data: bytes, limit: int = 24) -> str:
    """A short printable form of inserted bytes for a description."""
    text = repr(data)[2:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flip_bit(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    if not data:
        return "flip (empty)", data
    at = rnd.randrange(len(data))
    bit = rnd.randrange(8)
    out = bytearray(data)
    out[at] ^= 1 << bit
    return f"flip bit {bit} of byte {at}", bytes(out)


def set_byte(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    if not data:
        return "set (empty)", data
    at = rnd.randrange(len(data))
    value = rnd.randrange(256)
    return f"byte {at} := 0x{value:02X}", data[:at] + bytes((value,)) + data[at + 1 :]


def insert_special(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    at = rnd.randint(0, len(data))
    piece = b"".join(rnd.choice(SPECIAL) for _ in range(rnd.randint(1, 4)))
    return f"insert {show(piece)!r} at {at}", data[:at] + piece + data[at:]


def insert_bad_utf8(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    at = rnd.randint(0, len(data))
    piece = rnd.choice(BAD_UTF8)
    return f"insert {show(piece)!r} at {at}", data[:at] + piece + data[at:]


def insert_random(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    at = rnd.randint(0, len(data))
    piece = rnd.randbytes(rnd.randint(1, 8))
    return f"insert {show(piece)!r} at {at}", data[:at] + piece + data[at:]


def delete_range(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    if not data:
        return "delete (empty)", data
    at = rnd.randrange(len(data))
    size = rnd.randint(1, 24)
    return f"delete {size} bytes at {at}", data[:at] + data[at + size :]


def duplicate_range(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    if not data:
        return "duplicate (empty)", data
    at = rnd.randrange(len(data))
    size = rnd.randint(1, 40)
    piece = data[at : at + size]
    where = rnd.randint(0, len(data))
    return f"copy {len(piece)} bytes from {at} to {where}", data[:where] + piece + data[where:]


def truncate(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    at = rnd.randint(0, len(data))
    return f"truncate to {at} bytes", data[:at]


BYTE_MUTATIONS = (
    flip_bit,
    set_byte,
    insert_special,
    insert_special,
    insert_bad_utf8,
    insert_random,
    delete_range,
    duplicate_range,
    truncate,
)


def byte_mutation(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    return rnd.choice(BYTE_MUTATIONS)(rnd, data)


# --- lines -------------------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip(b" "))


def line_mutation(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    """Duplicate, delete, swap or move a line, or change its indentation."""
    lines = _lines(data)
    i = rnd.randrange(len(lines))
    j = rnd.randrange(len(lines))
    operation = rnd.choice(
        ("duplicate", "delete", "swap", "move", "indent", "dedent", "tab", "crlf", "join")
    )
    if operation == "duplicate":
        lines.insert(j, lines[i])
        what = f"duplicate line {i + 1} before line {j + 1}"
    elif operation == "delete":
        del lines[i]
        what = f"delete line {i + 1}"
    elif operation == "swap":
        lines[i], lines[j] = lines[j], lines[i]
        what = f"swap lines {i + 1} and {j + 1}"
    elif operation == "move":
        line = lines.pop(i)
        lines.insert(j, line)
        what = f"move line {i + 1} to {j + 1}"
    elif operation == "indent":
        n = rnd.choice((1, 2, 3, 4, 8))
        lines[i] = b" " * n + lines[i]
        what = f"indent line {i + 1} by {n}"
    elif operation == "dedent":
        n = min(_indent(lines[i]), rnd.choice((1, 2, 4, 99)))
        lines[i] = lines[i][n:]
        what = f"dedent line {i + 1} by {n}"
    elif operation == "tab":
        n = _indent(lines[i])
        lines[i] = b"\t" + lines[i][min(n, 2) :]
        what = f"tab-indent line {i + 1}"
    elif operation == "crlf":
        return "all line ends CRLF", b"".join(_lines(data)).replace(b"\n", b"\r\n")
    else:
        if i + 1 < len(lines):
            lines[i] = lines[i].rstrip(b"\r\n") + b" " + lines.pop(i + 1).lstrip(b" ")
        what = f"join line {i + 1} with the next"
    return what, b"".join(lines)
