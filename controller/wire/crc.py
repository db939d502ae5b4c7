"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0).

``binascii.crc_hqx`` is exactly this CRC when seeded with 0xFFFF, implemented in C in the
standard library; we use it rather than a hand-written table.
"""

from __future__ import annotations

import binascii


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``; ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)
