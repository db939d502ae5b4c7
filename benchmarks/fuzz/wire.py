"""Target ``wire``: damaged byte streams through the frame decoder, in arbitrary chunks.

The controller's link (``controller.link``) and the simulated device (``simulator.firmware``)
both split the serial stream with :class:`controller.wire.FrameDecoder`, whose ``feed``
documents no exception: bad frames are dropped and counted in :class:`DropCounters`. Messages
are then read with :func:`decode_message`, which documents :class:`DecodeError` only.

Streams are built from the byte-exact frames of ``tests/data/device-interface-vectors.json``,
random valid messages and frames of random type and body with a good CRC, damaged (truncated,
bits flipped, 0x00 inserted, duplicated) and mixed with garbage, long runs without a delimiter
and stray delimiters. Invariants:

- ``feed`` never raises, and the frames and counters do not depend on how the stream is cut
  into chunks;
- ``counters.frames`` is the number of frames returned;
- an intact frame that follows a 0x00 (or starts the stream) is always decoded: corruption
  never costs more than the frame it hit (the decoder's documented promise);
- every decoded frame re-encodes to bytes that decode to the same frame, and every message
  ``decode_message`` returns re-encodes to a frame that decodes to the same message (text
  fields read with replacement characters cannot be re-encoded: counted, not failed);
- the simulated device answers every request frame that reaches it without raising, and all
  it sends decodes.
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.fuzz.mutate import case_random
from benchmarks.fuzz.runner import ROOT, Case, EscapeError, Failure
from controller.wire import (
    DecodedFrame,
    DecodeError,
    FrameDecoder,
    Handpiece,
    Hello,
    HelloReply,
    Message,
    MsgType,
    decode_message,
    encode_frame,
)
from controller.wire.codec import encode_raw
from controller.wire.constants import MAX_WIRE_RUN
from controller.wire.messages import fixed_layouts
from simulator.firmware import Firmware
from simulator.physics import Plant, SkinParams

VECTORS = ROOT / "tests" / "data" / "device-interface-vectors.json"
_FIXED = fixed_layouts()
_HELLO_REPLY_INTS = struct.Struct("<BBBBHHHHHHHIBHB")  # HELLO_REPLY without model and serial
_LIMITS = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}


def vector_frames() -> list[bytes]:
    """Every complete frame of the vectors file (good ones, refused requests, bad ones)."""
    data = json.loads(VECTORS.read_text())
    out = [bytes.fromhex(f["wire_hex"]) for f in data["frames"]]
    for refused in data.get("refused_requests", []):
        out.append(bytes.fromhex(refused["request_wire_hex"]))
        out.append(bytes.fromhex(refused["expected_reply_wire_hex"]))
    out += [bytes.fromhex(f["wire_hex"]) for f in data.get("bad_frames", [])]
    out += [bytes.fromhex(c["encoded_hex"]) + b"\0" for c in data.get("cobs", [])]
    return out


def _random_int(rnd: random.Random, code: str) -> int:
    if code == "h":
        return rnd.choice((-32768, -1, 0, 1, 32767, rnd.randint(-32768, 32767)))
    top = _LIMITS[code]
    return rnd.choice((0, 1, top, top - 1, rnd.randint(0, top)))


def _ascii(rnd: random.Random, most: int) -> str:
    return "".join(chr(rnd.randint(0x20, 0x7E)) for _ in range(rnd.randint(0, most)))


def random_message(rnd: random.Random) -> Message:
    """A valid message of any type with edge or random field values."""
    mtype = rnd.choice(list(MsgType))
    if mtype is MsgType.HELLO:
        return Hello(rnd.randint(0, 255), _ascii(rnd, 16))
    if mtype is MsgType.HELLO_REPLY:
        ints = [_random_int(rnd, c) for c in _HELLO_REPLY_INTS.format.lstrip("<")]
        return HelloReply(ints[0], _ascii(rnd, 8), _ascii(rnd, 12), *ints[1:])
    cls, layout, _ = _FIXED[int(mtype)]
    values = [_random_int(rnd, c) for c in layout.format.lstrip("<")]
    return cls._make(values)


def _frame_piece(rnd: random.Random, frames: Sequence[bytes]) -> tuple[str, bytes]:
    kind = rnd.choices(("vector", "valid", "raw"), weights=(45, 35, 20))[0]
    if kind == "vector":
        return "vector frame", rnd.choice(frames)
    if kind == "valid":
        msg = random_message(rnd)
        return f"valid {type(msg).__name__}", encode_frame(rnd.randrange(256), msg)
    body = rnd.randbytes(rnd.choice((0, 1, 2, 3, rnd.randint(0, 40), rnd.randint(240, 260))))
    mtype = rnd.choice((rnd.randrange(256), *(int(t) for t in MsgType)))
    return f"raw type 0x{mtype:02X} body {len(body)}", encode_raw(rnd.randrange(256), mtype, body)


def _damage(rnd: random.Random, frame: bytes) -> tuple[str, bytes]:
    what = rnd.choice(("truncate", "flip", "set", "zero", "delete", "twice", "code", "nodelim"))
    at = rnd.randrange(len(frame))
    if what == "truncate":
        return f"truncated to {at}", frame[:at]
    if what == "flip":
        bit = rnd.randrange(8)
        return f"bit {bit} of byte {at} flipped", _put(frame, at, frame[at] ^ (1 << bit))
    if what == "set":
        value = rnd.randrange(256)
        return f"byte {at} := 0x{value:02X}", _put(frame, at, value)
    if what == "zero":
        return f"0x00 inserted at {at}", frame[:at] + b"\0" + frame[at:]
    if what == "delete":
        return f"byte {at} deleted", frame[:at] + frame[at + 1 :]
    if what == "twice":
        return "sent twice", frame + frame
    if what == "code":
        return "COBS code byte 0xFF", _put(frame, 0, 0xFF)
    return "delimiter dropped", frame.rstrip(b"\0")


def _put(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes((value,)) + data[at + 1 :]


def _noise_piece(rnd: random.Random) -> tuple[str, bytes]:
    what = rnd.choice(("garbage", "run", "edge", "zeros", "huge"))
    if what == "garbage":
        return "garbage", rnd.randbytes(rnd.randint(1, 64))
    if what == "run":
        size = rnd.randint(MAX_WIRE_RUN + 1, 3000)
        return f"run of {size} non-zero bytes", bytes(rnd.randint(1, 255) for _ in range(size))
    if what == "edge":
        size = rnd.choice((MAX_WIRE_RUN - 1, MAX_WIRE_RUN, MAX_WIRE_RUN + 1, MAX_WIRE_RUN + 2))
        return f"run of {size} bytes then 0x00", bytes([0xFF]) * size + b"\0"
    if what == "zeros":
        return "delimiters", b"\0" * rnd.randint(1, 5)
    payload = rnd.randbytes(rnd.randint(250, 1200))
    return f"huge frame of {len(payload)} bytes", encode_raw(0, 0xC0, payload)


def chunk_sizes(rnd: random.Random, length: int) -> list[int]:
    """How the stream is cut into ``feed`` calls (their sizes add up to ``length``)."""
    style = rnd.choice(("whole", "bytes", "small", "large"))
    if style == "whole" or length == 0:
        return [length]
    if style == "bytes" and length <= 4000:
        return [1] * length
    most = 16 if style == "small" else 600
    sizes = []
    left = length
    while left:
        size = min(left, rnd.randint(1, most))
        sizes.append(size)
        left -= size
    return sizes


class WireFuzzer:
    name = "wire"
    default_count = 10_000
    batch = 1

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.frames = vector_frames()

    def __enter__(self) -> WireFuzzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def generate(self, seed: int, index: int) -> Case:
        rnd = case_random(self.name, seed, index)
        parts: list[str] = []
        stream = b""
        protected: list[str] = []  # hex of intact frames that follow a delimiter
        for _ in range(rnd.randint(1, 8)):
            if rnd.random() < 0.65:
                what, frame = _frame_piece(rnd, self.frames)
                if rnd.random() < 0.5:
                    damage, frame = _damage(rnd, frame)
                    what += f" ({damage})"
                elif not stream or stream.endswith(b"\0"):
                    protected.append(frame.hex())
            else:
                what, frame = _noise_piece(rnd)
            parts.append(what)
            stream += frame
        sizes = chunk_sizes(rnd, len(stream))
        meta = {"chunks": sizes, "protected": protected}
        description = " + ".join(parts) + f"; {len(sizes)} chunks"
        return Case(self.name, seed, index, description, stream, meta)

    def check_batch(self, cases: Sequence[Case], notes: Counter[str]) -> list[tuple[Case, Failure]]:
        return []  # every case is checked on its own

    def check(self, case: Case, notes: Counter[str]) -> list[Failure]:
        stream = case.data
        sizes: list[int] = list(case.meta.get("chunks") or [len(stream)])
        if sum(sizes) != len(stream):
            sizes = [len(stream)]
        whole = FrameDecoder()
        try:
            frames = whole.feed(stream)
        except Exception as error:
            raise EscapeError("FrameDecoder.feed (whole stream)", error) from error
        chunked = FrameDecoder()
        pieces: list[DecodedFrame] = []
        at = 0
        try:
            for size in sizes:
                pieces += chunked.feed(stream[at : at + size])
                at += size
        except Exception as error:
            raise EscapeError("FrameDecoder.feed (in chunks)", error) from error
        failures: list[Failure] = []

        def fail(signature: str, detail: str) -> None:
            failures.append(Failure("invariant", signature, detail))

        if pieces != frames or chunked.counters != whole.counters:
            fail(
                "chunking changes what is decoded",
                f"whole: {len(frames)} frames {whole.counters.as_dict()}; "
                f"{len(sizes)} chunks: {len(pieces)} frames {chunked.counters.as_dict()}",
            )
        if whole.counters.frames != len(frames):
            fail("counters.frames differs from the frames returned", repr(whole.counters))
        for name, value in whole.counters.as_dict().items():
            if value:
                notes[f"counted: {name}"] += value
        self._check_protected(case, frames, fail)
        for frame in frames:
            self._check_frame(frame, notes, fail)
        failures += self._device(stream, sizes, notes)
        return failures

    @staticmethod
    def _check_protected(case: Case, frames: list[DecodedFrame], fail: Any) -> None:
        expected: list[DecodedFrame] = []
        for hex_frame in case.meta.get("protected") or []:
            expected += FrameDecoder().feed(bytes.fromhex(hex_frame))
        it = iter(frames)
        missing = [f for f in expected if not any(f == got for got in it)]
        if missing:
            fail(
                "an intact frame after a delimiter was lost",
                f"{len(missing)} of {len(expected)} lost, first {missing[0]!r}",
            )

    @staticmethod
    def _check_frame(frame: DecodedFrame, notes: Counter[str], fail: Any) -> None:
        again = FrameDecoder().feed(encode_raw(frame.seq, frame.type, frame.body))
        if again != [frame]:
            fail("a decoded frame does not survive re-encoding", f"{frame!r} -> {again!r}")
        try:
            msg = decode_message(frame)
        except DecodeError as error:
            notes[f"decode_message: {error.kind}"] += 1
            return
        except Exception as error:
            raise EscapeError("decode_message", error) from error
        notes[f"message: {type(msg).__name__}"] += 1
        try:
            wire = encode_frame(frame.seq, msg)
        except (ValueError, struct.error) as error:
            texts = [v for v in msg if isinstance(v, str)]
            if any("\ufffd" in t for t in texts):
                notes["lossy text (not ASCII on the wire): cannot re-encode"] += 1
                return
            fail("a decoded message cannot be re-encoded", f"{msg!r}: {error!r}")
            return
        back = FrameDecoder().feed(wire)
        if len(back) != 1:
            fail("a re-encoded message is not one frame", f"{msg!r} -> {back!r}")
            return
        try:
            same = decode_message(back[0])
        except DecodeError as error:
            fail("a re-encoded message does not decode", f"{msg!r}: {error!r}")
            return
        if type(same) is not type(msg) or same != msg:
            fail("a re-encoded message decodes to another value", f"{msg!r} -> {same!r}")

    @staticmethod
    def _device(stream: bytes, sizes: list[int], notes: Counter[str]) -> list[Failure]:
        """The simulated device's side: its decoder, then every frame dispatched."""
        plant = Plant(SkinParams(), 1, Handpiece.SCALP_ROLLER)
        firmware = Firmware(
            plant, serial="SIM-FUZZ0001", boot_rng=random.Random(1), noise_rng=random.Random(2)
        )
        firmware.take_outbox()
        failures: list[Failure] = []
        link_ms = 0.0
        at = 0
        for size in sizes:
            try:
                frames = firmware.decode(stream[at : at + size])
            except Exception as error:
                raise EscapeError("Firmware.decode", error) from error
            at += size
            for frame in frames:
                link_ms += 1.0
                try:
                    firmware.receive_frame(frame, link_ms)
                except Exception as error:
                    raise EscapeError(
                        f"Firmware.receive_frame(type 0x{frame.type:02X})", error
                    ) from error
                out = firmware.take_outbox()
                notes["device replies"] += len(out)
                if not out:
                    failures.append(
                        Failure("invariant", "the device did not answer a frame", repr(frame))
                    )
                for sent in out:
                    got = FrameDecoder().feed(sent)
                    try:
                        if len(got) != 1:
                            raise DecodeError("frames", f"{len(got)} frames in one reply")
                        decode_message(got[0])
                    except DecodeError as error:
                        failures.append(
                            Failure(
                                "invariant",
                                "the device sent something that does not decode",
                                f"{sent.hex()}: {error}",
                            )
                        )
        return failures
