"""Hostile images for tests and benchmarks: small files that would be huge if decoded."""

from __future__ import annotations

import zlib


def png_bomb(width: int = 12_000, height: int = 12_000) -> bytes:
    """A grey PNG of ``width`` x ``height`` black pixels: 140 KB at 12,000 x 12,000, which decode
    to 144 MB (432 MB as RGB); written row by row, so that making it never holds the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
