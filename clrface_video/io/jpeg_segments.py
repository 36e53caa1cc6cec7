"""A JPEG's APPn segment written out: its marker, its length and its payload, as Pillow's writer takes extra bytes."""
from __future__ import annotations

import struct


def app_segment(number: int, payload: bytes) -> bytes:
    """The APP`number` segment (0-15) holding `payload`, whose length field counts itself and the payload."""
    return bytes([0xFF, 0xE0 + number]) + struct.pack(">H", len(payload) + 2) + payload
