"""Reading a scene's encoded images from the stored archive, where the index says they lie.

The index gives each image kind three columns: ``{kind}_offset`` (of the member's local header),
``{kind}_size`` and ``{kind}_crc`` (CRC-32 of the stored bytes). The dataset, verify and the
register stage's input example read images through here alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from depthseg.data.archive import MemberReader


def range_columns(kind: str) -> list[str]:
    """The index columns that locate the images of ``kind``: offset, size, CRC-32."""
    return [f"{kind}_offset", f"{kind}_size", f"{kind}_crc"]


def image_ranges(table: pd.DataFrame, kind: str) -> np.ndarray:
    """One (offset, size, crc) row of int64 per scene of ``table``: compact, and shared by forked
    loader workers without touching Python objects."""
    return table[range_columns(kind)].to_numpy(np.int64)


def read_image(
    reader: MemberReader, image_range: np.ndarray, name: str, check: bool = True
) -> bytes:
    """The stored bytes of the image at ``image_range`` (named ``name`` in errors), their CRC-32
    checked unless ``check`` is False (a header-only look at them)."""
    offset, size, crc = (int(value) for value in image_range)
    return reader.read_checked(offset, size, crc, name) if check else reader.read(offset, size)
