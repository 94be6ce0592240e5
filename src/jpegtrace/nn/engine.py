"""Fast inference for :class:`~jpegtrace.nn.qfnet.QFNet`: channels-last layers streamed over the image.

:func:`predict_maps` (and so :func:`jpegtrace.analyze`) runs the network through
:class:`FastNet`. Instead of cutting the image into overlapping tiles (each tile recomputes a
halo of half the receptive field, 16 pixels, on every side), the image is fed to the network
in horizontal strips and every layer keeps the last ``2 * dilation`` rows of its input for the
next strip. Each activation is then computed exactly once, whatever the image height, and a strip
of every layer stays small enough for the CPU caches. Only images wider than a band (2048 columns
on a CPU, ``tile_size ** 2 / 16`` on a GPU) are split into bands of columns, each with a halo of
16 columns on either side (under 2 % more work). A network with the grid presence input
(``NetConfig.grid_presence``) gets each strip's inputs from the strip's pixels and the rows above
and below them that the input needs (``NetConfig.input_context``: 27 and 26), and as many more
columns of halo, so its maps too equal one whole pass.

Further speed-ups over the plain eager forward (kept as :func:`eager_predict_maps`, the
reference the fast path is tested against within 1e-4):

* channels-last (NHWC) activations, the layout oneDNN's direct convolutions run fastest in;
* ``torch.inference_mode``, in-place ReLU, weights converted once per call;
* the uint8 image goes to the device as uint8 and becomes float there, one strip at a time.

Precision is fp32 by default. ``precision='bf16'`` (CPUs with AVX-512 BF16, recent GPUs; see
:func:`bf16_is_fast`: emulated on AVX2-only CPUs, many times slower than fp32) runs the five
inner convolutions in bfloat16, about twice as fast, at the
cost of small differences in the maps (see ``benchmarks/RESULTS.md``); the first layer (exact
pixels in) and the last (maps out) stay fp32. On CUDA, fp32 also turns off TF32 so that GPU
results match CPU ones.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backends import BF16_FIRST_LAYER
from .qfnet import network_input

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
#: Pixels per strip (and per batch chunk) the CPU path aims at: a layer's strip then stays in the
#: caches. Measured on a 2-core AMD EPYC (Zen 4, 32 MiB L3), 2 threads: 16-32 Ki pixels per strip
#: run at 90-97% of the fp32 matmul rate, 64 Ki at 80-95%, 128 Ki at 70%, whole 1 MP images at 85%.
CPU_STRIP_PIXELS = 32 * 1024
#: On a GPU, bigger strips keep the device busy; memory still stays bounded by ``tile_size``.
GPU_STRIP_PIXELS = 2 ** 22
#: Fewest output rows per strip; narrower strips would copy the kept rows too often.
MIN_STRIP_ROWS = 16
#: The grid inputs are computed for runs of strips at least this many times as tall as the
#: context rows they need, so that recomputing those rows adds at most about 1/4 to their cost.
CONTEXT_OVERHEAD_DIVISOR = 4
#: Smaller ``tile_size`` values count as this: tinier regions only add overhead.
MIN_TILE_SIZE = 32


def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """Whether bfloat16 arithmetic is worth asking for on ``device``: :func:`jpegtrace.nn.backends.bf16_is_fast`
    (on a CPU, native AVX-512 BF16 or AMX; other devices, GPUs, are assumed fast)."""
    from .backends import bf16_is_fast as native

    return native(device)


@dataclass(frozen=True)
class _Conv:
    weight: torch.Tensor
    bias: torch.Tensor | None
    padding: int
    dilation: int
    relu: bool


def _layers_of(model: nn.Module) -> list[tuple[nn.Conv2d, bool]] | None:
    """The (convolution, followed-by-ReLU) pairs of ``model.layers``, or None when the model is
    not a plain stack of 'same'-padded square stride-1 convolutions and ReLUs."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.Sequential) or not hasattr(getattr(model, "config", None), "input_offset"):
        return None
    pairs: list[tuple[nn.Conv2d, bool]] = []
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            k, d, p = layer.kernel_size, layer.dilation, layer.padding
            if (k[0] != k[1] or k[0] % 2 == 0 or d[0] != d[1] or p != (d[0] * (k[0] // 2),) * 2
                    or layer.stride != (1, 1) or layer.groups != 1 or layer.padding_mode != "zeros"):
                return None
            pairs.append((layer, False))
        elif isinstance(layer, nn.ReLU) and pairs and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], True)
        else:
            return None
    return pairs or None


def supports(model: nn.Module) -> bool:
    """Whether :class:`FastNet` can run ``model`` (any :class:`QFNet` shape can)."""
    return _layers_of(model) is not None


class FastNet:
    """A snapshot of a network's weights, laid out for fast inference.

    Parameters
    ----------
    model : QFNet
        The network; its weights are copied now (later changes to ``model`` are not seen).
        Parametrized weights (as during training) are evaluated into plain ones.
    device : str or torch.device, optional
        Where to run; the model's own device by default.
    precision : {'fp32', 'bf16'}
        Arithmetic of the convolutions; fp32 (the default) matches the eager network.
    """

    def __init__(self, model: nn.Module, device: str | torch.device | None = None, precision: str = "fp32"):
        pairs = _layers_of(model)
        if pairs is None:
            raise ValueError("FastNet runs only plain stacks of 'same' convolutions and ReLUs (a QFNet)")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.precision = precision
        self.config = model.config
        low = PRECISIONS[precision] or torch.float32
        self.convs = []
        with torch.no_grad():
            for i, (conv, relu) in enumerate(pairs):
                # The first layer sees the exact pixels and the last one writes the maps in fp32:
                # together about 1% of the work, and they keep the input and output exact.
                dtype = low if BF16_FIRST_LAYER["torch"] <= i < len(pairs) - 1 else torch.float32
                weight = conv.weight.detach().to(self.device, dtype, copy=True)
                weight = weight.contiguous(memory_format=torch.channels_last)
                bias = None if conv.bias is None else conv.bias.detach().to(self.device, dtype, copy=True)
                self.convs.append(_Conv(weight, bias, conv.padding[0], conv.dilation[0], relu))
        # The grid inputs reach this many pixels further than the convolutions.
        self.feature_context = self.config.input_context
        self.halo = sum(c.padding for c in self.convs) + max(self.feature_context)

    # ----------------------------------------------------------------------------------- context
    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.device.type == "cuda":  # fp32 means fp32: no TF32 (the lower precisions set dtypes)
            stack.enter_context(no_tf32())
        return stack

    @staticmethod
    def _conv(x: torch.Tensor, c: _Conv, vertical_padding: int) -> torch.Tensor:
        x = x.to(c.weight.dtype)
        y = F.conv2d(x, c.weight, c.bias, padding=(vertical_padding, c.padding), dilation=c.dilation)
        return y.relu_() if c.relu else y

    def _to_input(self, pixels: np.ndarray | torch.Tensor, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` pixels to the network's input (centred, and the grid presence when
        the network has it), channels-last.

        ``rows``: keep only these rows, the others being context for the grid presence.
        """
        if isinstance(pixels, np.ndarray) and not pixels.flags.writeable:
            pixels = pixels.copy()
        x = torch.as_tensor(pixels).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        y0, y1 = rows or (0, x.shape[2])
        return network_input(x, self.config)[:, :, y0:y1].contiguous(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------ whole tensors
    def forward_uint8(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Network output ``(N, 2, H, W)`` for uint8 pixels ``(N, H, W, 3)`` (as a batch of patches).

        Images much larger than a strip are streamed one by one, as :meth:`predict_maps` does.
        """
        n, height, width = pixels.shape[:3]
        if self.device.type != "cuda" and height * width > 2 * CPU_STRIP_PIXELS:
            maps = [self.predict_maps(np.asarray(pixels[i]), tile_size=max(height, width)) for i in range(n)]
            return torch.from_numpy(np.stack(maps))
        return self._batched(pixels, self._to_input, channels_last_input=True)

    def _batched(self, batch, to_input, channels_last_input: bool = False) -> torch.Tensor:
        """Run the whole network on ``batch`` a few images at a time (cache-sized on a CPU)."""
        n = batch.shape[0]
        height, width = (batch.shape[1:3] if channels_last_input else batch.shape[2:4])
        target = GPU_STRIP_PIXELS if self.device.type == "cuda" else CPU_STRIP_PIXELS
        chunk = max(1, target // max(1, height * width))
        with self._context():
            outputs = []
            for i in range(0, n, chunk):
                x = to_input(batch[i:i + chunk])
                for c in self.convs:
                    x = self._conv(x, c, c.padding)
                outputs.append(x.float())
            return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    # ------------------------------------------------------------------------------------ images
    def strip_rows(self, band_width: int, tile_size: int) -> int:
        """Output rows per strip for a band ``band_width`` columns wide."""
        target = GPU_STRIP_PIXELS if self.device.type == "cuda" else CPU_STRIP_PIXELS
        budget = max(1, tile_size * tile_size // band_width)
        return max(1, min(budget, max(MIN_STRIP_ROWS, target // band_width)))

    def predict_maps(self, image: np.ndarray, tile_size: int = 512) -> np.ndarray:
        """Raw maps ``(2, H, W)`` float32 of a uint8 ``(H, W, 3)`` image, equal to one whole pass.

        At most about ``max(tile_size, 32) ** 2`` output pixels (plus the rows each layer keeps)
        are computed at once, so memory stays bounded for any image size.
        """
        if tile_size < 1:
            raise ValueError("tile_size must be positive")
        tile_size = max(tile_size, MIN_TILE_SIZE)
        height, width = image.shape[:2]
        out = np.empty((2, height, width), dtype=np.float32)
        # Bands of columns (each with a halo) only where a strip of MIN_STRIP_ROWS rows would be too
        # big: for memory (tile_size) and, on a CPU, for the caches (2048 columns at most).
        budget = tile_size * tile_size
        if self.device.type != "cuda":
            budget = min(budget, CPU_STRIP_PIXELS)
        band = width if width * MIN_STRIP_ROWS <= budget else budget // MIN_STRIP_ROWS
        halo = self.halo
        with self._context():
            for x0 in range(0, width, band):
                x1 = min(width, x0 + band)
                ix0, ix1 = max(0, x0 - halo), min(width, x1 + halo)
                rows = self.strip_rows(ix1 - ix0, tile_size)
                for y0, maps in self._stream(image[:, ix0:ix1], rows):
                    out[:, y0:y0 + maps.shape[1], x0:x1] = maps[:, :, x0 - ix0:x1 - ix0]
        return out

    def _stream(self, columns: np.ndarray, rows: int):
        """Yield ``(first_row, maps)`` for consecutive row ranges of ``columns`` (uint8 ``(H, W, 3)``).

        Layer ``i`` keeps the last ``2 * p_i`` rows of its input between strips; the image's top
        and bottom get ``p_i`` zero rows, as 'same' zero padding would.
        """
        height = columns.shape[0]
        before, after = self.feature_context
        # The grid inputs of a run of rows need context rows before and after it: computed for
        # each strip, they would cost (rows + context) / rows times their own price (2.6x for
        # the grid presence in 32-row strips), so they are computed for several strips at once.
        chunk = rows * max(1, -(-CONTEXT_OVERHEAD_DIVISOR * (before + after) // rows))
        kept: list[torch.Tensor | None] = [None] * len(self.convs)
        produced = 0
        for chunk_y0 in range(0, height, chunk):
            chunk_y1 = min(height, chunk_y0 + chunk)
            c0, c1 = max(0, chunk_y0 - before), min(height, chunk_y1 + after)  # rows the grid inputs need
            chunk_input = self._to_input(np.array(columns[None, c0:c1]), (chunk_y0 - c0, chunk_y1 - c0))
            for y0 in range(chunk_y0, chunk_y1, rows):
                y1 = min(chunk_y1, y0 + rows)
                last = y1 == height
                maps = self._strip_through_layers(chunk_input[:, :, y0 - chunk_y0:y1 - chunk_y0], kept, last)
                if maps is not None:
                    yield produced, maps
                    produced += maps.shape[1]
        assert produced == height, (produced, height)

    def _strip_through_layers(self, x: torch.Tensor, kept: list[torch.Tensor | None], last: bool):
        """Push one strip of input rows through the layers, keeping each layer's last rows in
        ``kept``; the maps ``(2, rows, W)`` of the output rows it completes, or None."""
        for i, c in enumerate(self.convs):
            p = c.padding
            if x is None and not last:
                return None
            if x is not None:
                x = x.to(c.weight.dtype)
            parts = [kept[i] if kept[i] is not None else _zero_rows(x, p)]
            if x is not None:
                parts.append(x)
            if last:
                parts.append(_zero_rows(parts[0], p))
            buffer = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
            if buffer.shape[2] < 2 * p + 1:  # not enough rows yet for one output row
                kept[i], x = buffer, None
                continue
            if not last:
                kept[i] = buffer[:, :, buffer.shape[2] - 2 * p:].clone(memory_format=torch.channels_last)
            x = self._conv(buffer, c, 0)
        return None if x is None else x[0].float().cpu().numpy()


@contextlib.contextmanager
def no_tf32():
    """Convolutions on CUDA in true fp32 (PyTorch lets cuDNN use TF32 by default) while inside."""
    cudnn = torch.backends.cudnn
    previous = cudnn.allow_tf32
    cudnn.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32 = previous


def _zero_rows(like: torch.Tensor, rows: int) -> torch.Tensor:
    shape = (like.shape[0], like.shape[1], rows, like.shape[3])
    return torch.zeros(shape, dtype=like.dtype, device=like.device).contiguous(memory_format=torch.channels_last)


def eager_predict_maps(model: nn.Module, image: np.ndarray, tile_size: int = 512,
                       device: str | torch.device | None = None) -> np.ndarray:
    """The plain eager reference: overlapping square tiles through ``model`` in NCHW float32.

    This is jpegtrace's original implementation of :func:`jpegtrace.analysis.predict_maps`,
    kept as the baseline of ``benchmarks/bench_inference.py`` and as the reference the fast
    path is tested against.
    """
    if tile_size < 1:
        raise ValueError("tile_size must be positive")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    height, width = image.shape[:2]
    halo = model.receptive_field // 2
    out = np.empty((2, height, width), dtype=np.float32)
    with torch.inference_mode():
        for y0 in range(0, height, tile_size):
            for x0 in range(0, width, tile_size):
                y1, x1 = min(y0 + tile_size, height), min(x0 + tile_size, width)
                iy0, ix0 = max(0, y0 - halo), max(0, x0 - halo)
                iy1, ix1 = min(height, y1 + halo), min(width, x1 + halo)
                tile = torch.from_numpy(np.array(image[iy0:iy1, ix0:ix1]))  # a writable copy
                tile = tile.to(device).permute(2, 0, 1)[None].float().div_(255.0)
                pred = model(tile)[0, :, y0 - iy0:y1 - iy0, x0 - ix0:x1 - ix0]
                out[:, y0:y1, x0:x1] = pred.float().cpu().numpy()
    return out
