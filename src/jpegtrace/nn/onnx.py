"""The network as an ONNX graph, and ONNX Runtime as a backend that gives the same maps.

:func:`export_onnx` writes any :class:`~jpegtrace.nn.qfnet.QFNet` (grid presence included: it is a
fixed function of the pixels inside the graph) with dynamic batch, height and width. :class:`OnnxRunner`
runs such a graph on an image in tiles with halos, so that memory stays bounded while the maps equal
one whole-image pass.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .qfnet import QFNet

#: ONNX operator set of the exported graphs.
OPSET = 17
#: Side of the region ONNX Runtime computes at once (plus its halo): about 1 GiB of activations.
DEFAULT_ONNX_TILE = 1024


def export_onnx(model: QFNet, path: str | os.PathLike | None = None, *, opset: int = OPSET) -> bytes:
    """The ONNX graph of ``model`` (input ``image``: ``(N, 3, H, W)`` float in [0, 1]; output ``maps``:
    ``(N, 2, H, W)``, the raw maps), written to ``path`` when given; returns its bytes.

    Notes
    -----
    Exported with torch's TorchScript-based exporter, dynamic in batch, height and width. The grid
    presence input is computed inside the graph from the pixels, so the graph takes RGB alone. The
    quality calibration and flag threshold are not part of the graph: callers apply them to its raw maps
    as :func:`jpegtrace.analysis.summarize` does.
    """
    model = model.eval()
    example = torch.rand(1, 3, 64, 64)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python ints in shape arithmetic
        torch.onnx.export(model, (example,), buffer, input_names=["image"], output_names=["maps"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "maps": {0: "n", 2: "h", 3: "w"}},
                          opset_version=opset, dynamo=False)
    data = buffer.getvalue()
    if path is not None:
        from ..io import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    return data


class OnnxRunner:
    """An ONNX Runtime session of a QFNet graph, run on images in tiles with halos.

    Parameters
    ----------
    model : QFNet
        The network; its graph is exported once, here.
    threads : int, optional
        Intra-op threads of ONNX Runtime; by default torch's (``torch.get_num_threads()``).
    """

    def __init__(self, model: QFNet, *, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())  # torch's, as the OpenVINO runner
        self.session = ort.InferenceSession(export_onnx(model), options, providers=["CPUExecutionProvider"])
        # Each output pixel sees this many pixels either side (convolutions and the presence's context).
        self.halo = model.receptive_field // 2 + 1

    def predict_maps(self, image: np.ndarray, *, tile_size: int = DEFAULT_ONNX_TILE) -> np.ndarray:
        """Raw maps ``(2, H, W)`` float32 of a uint8 ``(H, W, 3)`` image, equal to one whole-image pass."""
        height, width = image.shape[:2]
        out = np.empty((2, height, width), np.float32)
        h = self.halo
        for y0 in range(0, height, tile_size):
            for x0 in range(0, width, tile_size):
                y1, x1 = min(height, y0 + tile_size), min(width, x0 + tile_size)
                iy0, ix0, iy1, ix1 = max(0, y0 - h), max(0, x0 - h), min(height, y1 + h), min(width, x1 + h)
                tile = image[iy0:iy1, ix0:ix1].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
                maps = self.session.run(None, {"image": np.ascontiguousarray(tile)})[0][0]
                out[:, y0:y1, x0:x1] = maps[:, y0 - iy0:y1 - iy0, x0 - ix0:x1 - ix0]
        return out
