"""The served network as ONNX: uint8 images of any batch and size in, mask and depth out.

The graph holds the resizing and the normalisation, so ONNX Runtime alone (no PyTorch) runs it
on decoded images: inputs ``bg`` and ``bg_fg`` (``N x H x W x 3`` uint8 RGB), outputs
``mask_probability`` and, from a network that predicts depth, ``depth`` (``N x H x W`` float32 in
[0, 1], at the size of ``bg_fg``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.export import Dim

from depthseg.core.files import replaced_atomically
from depthseg.core.params import LimitsParams
from depthseg.data.image_header import ImageTooLarge
from depthseg.models.served import ServedNetwork

INPUT_NAMES = ["bg", "bg_fg"]
#: Resize with antialiasing needs opset 18.
OPSET = 18


def export_onnx(network: ServedNetwork, path: Path) -> None:
    """Write ``network`` to ``path`` (atomically) with free batch, height and width."""
    # Sizes of 0 or 1 (and equal sizes) would be fixed by tracing: the examples avoid them.
    bg = torch.zeros(2, 100, 120, 3, dtype=torch.uint8)
    bg_fg = torch.zeros(2, 90, 110, 3, dtype=torch.uint8)
    batch = Dim("batch")
    shapes = {
        "bg": {0: batch, 1: Dim("bg_height"), 2: Dim("bg_width")},
        "bg_fg": {0: batch, 1: Dim("height"), 2: Dim("width")},
    }
    with replaced_atomically(path) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))  # exporter internals
        torch.onnx.export(
            network.cpu().eval(),
            (bg, bg_fg),
            str(partial),
            dynamo=True,
            input_names=INPUT_NAMES,
            output_names=list(network.outputs),
            dynamic_shapes=shapes,
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )


def onnx_predict(
    path: Path, bg: np.ndarray, bg_fg: np.ndarray, limits: LimitsParams
) -> tuple[np.ndarray, ...]:
    """Run the exported file with ONNX Runtime on CPU: its outputs in order (mask probability,
    then depth if it has one); batches over ``limits`` (images per batch, pixels of each image
    and of all) are refused first."""
    import onnxruntime  # only where ONNX is used: training never needs it

    if refusal := limits.exceeded("request_rows", len(bg_fg), "the batch", "scenes"):
        raise ImageTooLarge(refusal)
    for name, images in (("bg", bg), ("bg_fg", bg_fg)):
        what = f"{name} ({images.shape[1]:,} x {images.shape[2]:,})"
        if refusal := limits.exceeded(
            "image_pixels", images.shape[1] * images.shape[2], what, "pixels"
        ):
            raise ImageTooLarge(refusal)
    total = (bg.size + bg_fg.size) // 3
    if refusal := limits.exceeded("request_pixels", total, "the batch's images", "pixels"):
        raise ImageTooLarge(refusal)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return tuple(session.run(None, {"bg": bg, "bg_fg": bg_fg}))
