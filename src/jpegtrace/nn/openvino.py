"""OpenVINO as a backend: the network's convolutions built as an OpenVINO graph, run in tiles with halos.

:class:`OpenVinoRunner` builds the stack of 3x3 dilated convolutions and ReLUs of a
:class:`~jpegtrace.nn.qfnet.QFNet`, or of the arrays of a weights file
(:class:`~jpegtrace.nn.weights.NetworkWeights`), directly with OpenVINO's operator set (no ONNX
file, no export step: building and compiling takes about 0.1 s). The network's input (the centred
pixels and, for the shipped network, the grid presence) is computed with numpy
(:func:`~jpegtrace.nn.inputs.network_input_array`), tile by tile with the context it needs. Nothing
here imports torch: with the shipped weights read by :func:`~jpegtrace.nn.weights.read_weights`, a
whole analysis runs without it (about 0.8 s less start-up). The maps equal the torch engine's
within float rounding in fp32 (``tests/test_backends.py``).

Precision: ``'fp32'`` runs OpenVINO in f32; ``'bf16'`` puts explicit bfloat16 conversions around the
layers from :data:`FIRST_BF16_LAYER` on (CPUs with AVX-512 BF16 or AMX), the first two layers staying f32
and the last one's bf16 products summed into f32 maps (the torch engine keeps the first and the last
layers in f32); OpenVINO's own inference precision hint stays f32, since it would convert every layer.
Weights and biases are rounded to bf16 before they become graph constants (:func:`_as_constant`).
"""

from __future__ import annotations

import numpy as np

from .backends import BF16_FIRST_LAYER, PRECISIONS, network_arrays
from .inputs import network_input_array
from .weights import NetworkWeights

#: With ``precision='bf16'``, the layers from this one to the last but one compute in bfloat16. Layer 1
#: (the first 64 -> 64 convolution) stays in f32 with layer 0, although it is 44 % of the network's time (70 of
#: 161 ms on a 544 x 544 tile, AMX Xeon, 2 threads): on the 50 val images x 8 versions of
#: ``benchmarks/check_precision.py`` the largest pixel difference to fp32 with layers 1-5 in bf16 was 2.11 QF
#: with the first quality calibration (over the tolerance of 2), and with the calibration refitted on
#: evidence-weighted means (2026-12-07) 1.74 for 4:2:0 and 1.57 for 4:4:4 JPEGs but 2.14 on a shifted grid;
#: with layers 2-5, 1.54 (4:2:0). Keeping any other single layer in f32 gave 2.07-3.12 (2026-12-04). Layer 1
#: in float16 (slower than f32 on AVX-512 FP16) or as bf16 products of split inputs (OpenVINO's conversions
#: cost what the products save) were no faster (docs/research-log.md, 2026-12-07).
FIRST_BF16_LAYER = BF16_FIRST_LAYER["openvino"]
#: Side of the output region computed at once (plus its halo): about 0.6 GiB of f32 activations.
DEFAULT_OPENVINO_TILE = 1024


def build_graph(network: NetworkWeights, *, bf16: bool = False):
    """The OpenVINO model of ``network``'s convolutions: input ``input`` ``(N, C, H, W)`` f32 (the
    network's input, :func:`~jpegtrace.nn.inputs.network_input_array`), output ``maps`` ``(N, 2, H, W)``.

    With ``bf16``, the layers from :data:`FIRST_BF16_LAYER` to the last but one compute in bfloat16, and
    the last layer's products too, summed into f32 maps to which its bias is added in f32
    (:func:`~jpegtrace.nn.backends.bf16_layers`).
    """
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter(ov.PartialShape([-1, network.config.in_channels, -1, -1]), ov.Type.f32, name="input")
    x = image.output(0)
    layers = network.convolutions()
    last = len(layers) - 1
    for i, (weight, bias, d, relu) in enumerate(layers):
        low = bf16 and FIRST_BF16_LAYER <= i  # products in bf16
        weight = ops.constant(_as_constant(weight, bf16=low))
        bias = ops.constant(_as_constant(bias, bf16=low and i < last).reshape(1, -1, 1, 1))
        if low:
            # Explicit bf16 from FIRST_BF16_LAYER on only: the first layers see the exact pixels. (OpenVINO's
            # bf16 precision hint would convert every layer, which moves a pixel's QF by up to 15.)
            if i == FIRST_BF16_LAYER:
                x = ops.convert(x, ov.Type.bf16)
            weight = ops.convert(weight, ov.Type.bf16)
            if i < last:
                bias = ops.convert(bias, ov.Type.bf16)
        x = ops.convolution(x, weight, strides=[1, 1], pads_begin=[d, d], pads_end=[d, d], dilations=[d, d])
        if low and i == last:
            # The maps in f32: OpenVINO fuses this into the convolution, whose sums are f32 (AMX), so the
            # maps are not rounded to bf16. An f32 last layer took 23 of 165 ms of a 544 x 544 tile (two
            # output channels use the f32 kernels poorly) and its input's conversion 6 more; this 4.4.
            x = ops.convert(x, ov.Type.f32)
        x = ops.add(x, bias)
        if relu:
            x = ops.relu(x)
    result = ops.result(x)
    result.output(0).get_tensor().set_names({"maps"})
    return ov.Model([result], [image], "qfnet")


def _as_constant(values: np.ndarray, *, bf16: bool) -> np.ndarray:
    """``values`` as a float32 array for a graph constant; with ``bf16``, already rounded to the nearest
    bfloat16 (ties to even, as torch and OpenVINO's runtime conversions round).

    OpenVINO folds a Convert of a constant to bf16 by truncating the mantissa: every inner weight and
    bias then lost up to a bf16 step towards zero, which moved the maps' QF systematically (the headline
    up to 0.36 QF above fp32's on val images, all in one direction). Values that are bf16 already convert
    exactly, however the conversion rounds.
    """
    value = np.ascontiguousarray(values, dtype=np.float32)
    if bf16:
        bits = value.view(np.uint32).astype(np.uint64)
        # round to nearest, ties to even, in the top 16 bits (the weights are finite: read_weights checks)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        value = bits.astype(np.uint32).view(np.float32)
    return value


class OpenVinoRunner:
    """A compiled OpenVINO model of a QFNet, run on images in tiles with halos.

    Parameters
    ----------
    model : QFNet or NetworkWeights
        The network; its weights are copied into the graph now.
    precision : {'fp32', 'bf16'}
    threads : int, optional
        Inference threads; by default torch's (``torch.get_num_threads()``) where torch is loaded, else
        numpy's BLAS's, so that a process limited to one thread (a Ray worker, ``OMP_NUM_THREADS=1``)
        stays at one here too.

    Raises
    ------
    ValueError
        When ``model`` is not a plain stack of 'same' 3x3 convolutions and ReLUs.
    """

    def __init__(self, model, *, precision: str = "fp32", threads: int | None = None):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        network = network_arrays(model)
        if network is None:
            raise ValueError("the openvino backend runs only plain stacks of 'same' convolutions and ReLUs (a QFNet)")
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads or _default_threads())}
        self.precision = precision
        self.config = network.config
        self.compiled = ov.Core().compile_model(build_graph(network, bf16=precision == "bf16"), "CPU", config)
        self.request = self.compiled.create_infer_request()
        # Output pixels see this far through the convolutions; the input itself needs more rows and
        # columns around it (the grid presence's context).
        self.conv_halo = sum(network.config.dilations)
        self.input_context = network.config.input_context

    def predict_maps(self, image: np.ndarray, *, tile_size: int = DEFAULT_OPENVINO_TILE) -> np.ndarray:
        """Raw maps ``(2, H, W)`` float32 of a uint8 ``(H, W, 3)`` image, equal to one whole-image pass."""
        if tile_size < 1:
            raise ValueError("tile_size must be positive")
        height, width = image.shape[:2]
        out = np.empty((2, height, width), np.float32)
        h, (before, after) = self.conv_halo, self.input_context
        for y0 in range(0, height, tile_size):
            for x0 in range(0, width, tile_size):
                y1, x1 = min(height, y0 + tile_size), min(width, x0 + tile_size)
                # The convolutions' input: the tile and its halo (zero padding only at the image's edges).
                iy0, ix0, iy1, ix1 = max(0, y0 - h), max(0, x0 - h), min(height, y1 + h), min(width, x1 + h)
                # The pixels that input depends on: the grid presence looks further.
                cy0, cx0 = max(0, iy0 - before), max(0, ix0 - before)
                cy1, cx1 = min(height, iy1 + after), min(width, ix1 + after)
                x = network_input_array(image[cy0:cy1, cx0:cx1], self.config)
                x = x[:, :, iy0 - cy0:iy1 - cy0, ix0 - cx0:ix1 - cx0]
                maps = self.request.infer({0: np.ascontiguousarray(x)})[0][0]
                out[:, y0:y1, x0:x1] = maps[:, y0 - iy0:y1 - iy0, x0 - ix0:x1 - ix0]
        return out


def _default_threads() -> int:
    """torch's thread count where torch is loaded (what the rest of the process runs on); else the
    threads numpy's BLAS runs on (the cores the process may use, or fewer where ``OMP_NUM_THREADS`` or
    a Ray worker says so)."""
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    from ..grid.dct import _blas_threads

    return _blas_threads()
