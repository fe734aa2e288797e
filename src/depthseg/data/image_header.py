"""What an encoded image says about itself before a pixel is decoded, and the limits it must meet.

Every image from outside passes ``checked_header`` before it is decoded: the dataset's (at index
time, the door of training and evaluation), ``predict.py``'s and the served model's. A PNG of
10,000 x 10,000 pixels is 97 KB on disk and 300 MB decoded: its size is read from the header and
refused there. JPEG and PNG headers are parsed here in a few microseconds (the index reads the
header of every image of the release); other formats through Pillow, which opens lazily.
"""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

from PIL import Image

from depthseg.core.errors import DepthsegError
from depthseg.core.params import LimitsParams


class ImageError(DepthsegError, ValueError):
    """An image cannot be used; the one-line message names it (scene and member, file, or
    request row and column).

    A DataLoader worker's error reaches the main process as ``ImageError(worker traceback)``;
    only its last line, the message itself, is kept.
    """

    def __init__(self, message: str) -> None:
        last_line = message.strip().splitlines()[-1] if message.strip() else message
        super().__init__(last_line.split("ImageError: ", 1)[-1])


class ImageTooLarge(ImageError):
    """An image over one of the limits: refused before it is decoded."""


#: What Pillow raises for a truncated file, a broken data stream or a bad PNG chunk.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
#: The formats read at all: no format that needs an outside program (EPS, PDF) or is rarely
#: a photo; JPEG and PNG are the release's.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG components and PNG colour types -> the mode Pillow decodes them to.
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
#: Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
_START_OF_FRAME = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: Start of scan: inside entropy-coded data 0xFF is always followed by 0x00 or a restart
#: marker, so every occurrence of these two bytes starts a scan.
_START_OF_SCAN = b"\xff\xda"


class ImageHeader(NamedTuple):
    format: str
    width: int
    height: int
    mode: str  # as Pillow names it: "RGB", "L", "RGBA", "P"...

    @property
    def pixels(self) -> int:
        return self.width * self.height


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG's frame header; None if ``data`` has none."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _START_OF_FRAME:
            frame = data[position + 4 : position + 10]
            if len(frame) < 6:
                return None
            return (
                int.from_bytes(frame[3:5], "big"),
                int.from_bytes(frame[1:3], "big"),
                frame[5],
            )
        position += 2 + length
    return None


def _png_header(data: bytes) -> ImageHeader | None:
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 26:
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    bits, colour = data[24], data[25]
    mode = "I;16" if colour == 0 and bits == 16 else _PNG_MODES.get(colour, "unknown")
    return ImageHeader("PNG", width, height, mode)


def read_header(data: bytes, name: str) -> ImageHeader:
    """The format and size ``data`` declares; ImageError if it is none of ACCEPTED_FORMATS."""
    if (frame := jpeg_frame(data)) is not None:
        return ImageHeader("JPEG", frame[0], frame[1], _JPEG_MODES.get(frame[2], "unknown"))
    if (png := _png_header(data)) is not None:
        return png
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                return ImageHeader(str(image.format), *image.size, image.mode)
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"{name}: {error}; refused before decoding") from None
    except DECODE_ERRORS:
        raise ImageError(
            f"{name}: not an image of an accepted format ({', '.join(ACCEPTED_FORMATS)})"
        ) from None


def checked_header(data: bytes, name: str, limits: LimitsParams) -> ImageHeader:
    """The header of ``data``, refused (ImageError naming ``name``, the size and the limit) if
    the image is too large to decode by ``limits``."""
    if refusal := limits.exceeded("image_bytes", len(data), name):
        raise ImageTooLarge(refusal)
    header = read_header(data, name)
    if header.pixels == 0:
        raise ImageError(f"{name}: the image has no pixels ({header.width} x {header.height})")
    what = f"{name} ({header.width:,} x {header.height:,})"
    if refusal := limits.exceeded("image_pixels", header.pixels, what, "pixels"):
        raise ImageTooLarge(refusal)
    if header.format == "JPEG":
        scans = data.count(_START_OF_SCAN)
        if refusal := limits.exceeded("jpeg_scans", scans, f"{name} (progressive JPEG)", "scans"):
            raise ImageTooLarge(refusal)
    return header
