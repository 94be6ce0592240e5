"""The 8x8 DCT of JPEG, the decoder's luma and the per-block statistic every grid tool builds on.

A JPEG decoder rebuilds each 8x8 block of the luma from integer multiples of the quantisation
steps and rounds the result to 8-bit pixels. Taking the DCT of the same blocks again gives back
those integers up to the rounding, whatever the quality factor; off the JPEG's grid, and in a
never-compressed image, the fractional parts of the coefficients are spread evenly.

The definitions here are frozen: :func:`block_scores` and :data:`MIN_ABS_COEFFICIENT` feed the
shipped network's grid-presence input (:mod:`jpegtrace.grid.presence`), so changing them changes
what the trained weights see; ``tests/test_grid.py`` pins the presence channel's values on a fixed
image, and a change there means retraining.
"""

from __future__ import annotations

import functools

import numpy as np

#: Coefficients at most this far from zero are left out for the same reason. An integer cut
#: keeps the statistic unbiased: a JPEG's coefficient n + e (rounding error e) near the cut is
#: kept for e > 0 as often as for e < 0, and cos(2 pi e) is even; a cut at 0.5 would keep only
#: zeros pushed past it by their rounding, which count against the grid.
MIN_ABS_COEFFICIENT = 1.0

_JFIF_LUMA = np.array([0.299, 0.587, 0.114])


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    matrix = np.sqrt(2 / 8) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16)
    matrix[0] /= np.sqrt(2)
    return matrix  # orthonormal DCT-II, the transform of JPEG


#: The 2-D DCT of a block flattened row by row: ``block.reshape(64) @ _DCT_2D``. float32 keeps the
#: coefficients within about 1e-3 of exact.
_DCT_2D = np.kron(_dct_matrix(), _dct_matrix()).T.astype(np.float32)
#: Blocks per offset transformed at once by the grid check: bounds its memory (about 1 MiB per offset
#: in flight), whatever the image size. 4,096 rather than 256 halves the per-call overhead of a 1 MP
#: check (229 -> 184 ms on one core; the float32 products of longer chunks move scores by at most 7e-5).
CHUNK_BLOCKS = 4096


def blas_on_one_thread():
    """A context in which numpy's BLAS runs on one thread, for the DCTs of the grid check and the tables.

    Notes
    -----
    OpenBLAS sums a float32 matrix product in another order on two threads than on one (here 6 % of
    the coefficients of 20,000 random blocks differed, by up to 1e-4), enough to move a grid score in
    its second decimal: the same image then got another record from a 2-core ``jpegtrace analyze``
    than from a Ray worker (which runs BLAS on one thread). On one thread the coefficients, hence
    every score and table, are the same whatever the machine's core count.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def _blas_threads() -> int:
    """The threads numpy's BLAS runs on now (outside :func:`blas_on_one_thread`): the cores the
    process may use, or fewer where ``OMP_NUM_THREADS`` or a Ray worker says so."""
    counts = [c.num_threads for c in _blas_controller().lib_controllers if c.user_api == "blas"]
    return max(1, min(counts)) if counts else 1


@functools.cache
def _blas_controller():
    # threadpoolctl's own threadpool_limits scans the loaded libraries on every call (1.3 ms here, on each
    # of the per-window grid checks); a controller scans once and limits in 0.04 ms. numpy's BLAS is
    # loaded with numpy, before the first call.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def block_dct(blocks: np.ndarray) -> np.ndarray:
    """The 2-D DCT ``(n, 64)`` (natural order) of flattened 8x8 blocks ``(n, 64)``, in float32, the same
    whatever the core count (:func:`blas_on_one_thread`)."""
    with blas_on_one_thread():
        return blocks.astype(np.float32) @ _DCT_2D


def dct_basis() -> np.ndarray:
    """A copy of the ``(64, 64)`` orthonormal 8x8 DCT as a matrix, float32: ``blocks @ dct_basis()`` is
    :func:`block_dct`, and ``coefficients @ dct_basis().T`` its inverse."""
    return _DCT_2D.copy()


def luma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JFIF luma of uint8 pixels, rounded to integers as a decoder's is, and where pixels are clipped.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale.

    Returns
    -------
    luma : ndarray of float32, (H, W)
    clipped : ndarray of bool, (H, W)
        Pixels with a channel at 0 or 255.
    """
    if image.ndim == 2:
        return image.astype(np.float32), _clipped(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    # Recomputing the luma from decoded RGB undoes the colour conversion exactly up to the RGB
    # rounding (about 0.2), so rounding recovers the decoder's integer luma almost everywhere.
    y = np.rint(image @ _JFIF_LUMA.astype(np.float32))
    return y, _clipped(image)


def _clipped(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of an RGB or grayscale uint8 image with a channel at 0 or 255."""
    clipped = (image == 0) | (image == 255)
    return clipped.any(axis=2) if clipped.ndim == 3 else clipped


#: Block positions transformed at once by :func:`block_scores`: 63 coefficient maps of this many
#: pixels (4 MiB) stay in the CPU caches, about 3x faster than in one go.
SCORE_CHUNK_PIXELS = 16 * 1024


def _ac_basis():
    import torch

    # The 63 AC basis images as convolution kernels: conv2d of the luma gives at each position the
    # DCT coefficients of the 8x8 block starting there.
    return torch.from_numpy(np.ascontiguousarray(_DCT_2D.T[1:].reshape(63, 1, 8, 8)))


def luma_tensor(pixels):
    """Rounded JFIF luma ``(N, 1, H, W)`` of 8-bit RGB values ``(N, 3, H, W)`` in a float tensor.

    The float32 weighted sum in one order on every device: the green product fused into the red one (a
    float32 fused multiply-add, exact in float64 for these values), then the blue product added, as
    :func:`luma_as_torch` computes it with numpy. That is what ``torch.einsum`` computed on the Intel CPUs
    the shipped network was trained on; on an AMD EPYC (2026-12-08) its kernels summed otherwise and
    rounded 8 pixels of a 320 x 512 val photo to the other grey level, which moved the grid presence by up
    to 0.21 and that pixel's QF by up to 6.
    """
    import torch

    weights = torch.tensor(_JFIF_LUMA, dtype=torch.float32, device=pixels.device)
    with torch.autocast(pixels.device.type, enabled=False):  # bfloat16 would not round to the right level
        pixels = pixels.float()
        red, green, blue = pixels[:, 0], pixels[:, 1], pixels[:, 2]
        red_green = (green.double() * weights[1].double() + (red * weights[0]).double()).float()
        return torch.round(red_green + blue * weights[2])[:, None]


def luma_as_torch(image: np.ndarray) -> np.ndarray:
    """:func:`luma_tensor` of a uint8 ``(H, W, 3)`` image with numpy, equal to it bit for bit: ``(H, W)`` float32.

    It is not :func:`luma`: both round the same float32 weighted sum, but the sums round otherwise at 353
    of the 2^24 colours (values within float32 rounding of k + 0.5, e.g. (0, 138, 171): exactly 100.5000017
    with float32 weights, torch 100, ``luma`` 101), and a grey level moved breaks a block's integer lattice.
    The grid presence the shipped network was trained on comes from torch's sum, which on the CPU is the
    green product fused into the red one (a fused multiply-add), then the blue product added; a float32 fused
    multiply-add is exact in float64 for these values. ``tests/test_grid.py`` checks every colour.
    """
    weights = _JFIF_LUMA.astype(np.float32)
    pixels = image.astype(np.float32)
    red_green = (pixels[..., 1].astype(np.float64) * np.float64(weights[1])
                 + (pixels[..., 0] * weights[0]).astype(np.float64)).astype(np.float32)
    return np.rint(red_green + pixels[..., 2] * weights[2])


def block_scores(luma):
    """z statistic of the 8x8 block around each pixel (rows and columns -3..+4): how close to
    integers its AC coefficients lie, the per-block score that
    :func:`jpegtrace.grid.presence.grid_presence` and the clipped blocks build on.

    ``luma`` is ``(N, 1, H, W)`` integer-valued luma in 0..255 (:func:`luma_tensor`), float32; returns ``(N, 1, H, W)`` float32, 0
    where the block would leave the image. About N(0, 1) in a never-compressed image; in a
    JPEG, positive on its grid (about 2 at QF 100 in textured blocks, more at lower QFs).
    """
    import torch
    import torch.nn.functional as F

    n, _, height, width = luma.shape
    if height < 8 or width < 8:
        return luma.new_zeros((n, 1, height, width), dtype=torch.float32)
    basis = _ac_basis().to(luma.device)
    luma = luma.float()
    z = luma.new_empty((n, 1, height - 7, width - 7))
    rows = max(1, SCORE_CHUNK_PIXELS // (n * width))
    if torch.onnx.is_in_onnx_export():
        rows = height  # one chunk: an exported graph must not fix the traced image's chunking (same values)
    with torch.autocast(luma.device.type, enabled=False):  # fractional parts need fp32
        for y0 in range(0, height - 7, rows):
            y1 = min(height - 7, y0 + rows)
            coefficients = F.conv2d(luma[:, :, y0:y1 + 7], basis)
            # 'used' as float 0/1 rather than bool: multiplying by it and summing it give the same
            # values as masking and counting, at less than half the cost (bool masks and bool sums
            # are slow on the CPU).
            used = coefficients.abs().gt_(MIN_ABS_COEFFICIENT)
            squared = coefficients.sub_(torch.round(coefficients)).square_().mul_(used)
            counts = used.sum(dim=1, keepdim=True)
            z[:, :, y0:y1] = (counts - 12 * squared.sum(dim=1, keepdim=True)) / torch.sqrt(
                counts.clamp_(min=1.0) * 0.8)
    return F.pad(z, (3, 4, 3, 4))  # the value of the block covering -3..+4 around each pixel


#: The 63 AC basis images as the columns of a matrix: ``block.reshape(64) @ _AC_COLUMNS`` are the AC
#: coefficients of a block, the values :func:`block_scores`'s convolution gives.
_AC_COLUMNS = np.ascontiguousarray(_DCT_2D[:, 1:])


def block_scores_array(luma: np.ndarray) -> np.ndarray:
    """:func:`block_scores` of one ``(H, W)`` luma array, with numpy instead of torch.

    Parameters
    ----------
    luma : ndarray, (H, W)
        Integer-valued luma in 0..255 (:func:`luma`, or for the grid presence :func:`luma_as_torch`).

    Returns
    -------
    ndarray of float32, (H, W)
        The z statistic of the 8x8 block around each pixel (rows and columns -3..+4), 0 where the
        block would leave the image.

    Notes
    -----
    The same statistic as the torch function, whose values the shipped network was trained on; the
    float32 sums differ in order, so the values agree to about 1e-5 (``tests/test_backends.py``). The
    8x8 windows at every position go through the DCT as one matrix product per chunk of about
    :data:`SCORE_CHUNK_PIXELS` positions, on a thread pool as large as numpy's BLAS would be, each
    chunk's BLAS on one thread: the values do not depend on the thread count.
    """
    from concurrent.futures import ThreadPoolExecutor

    from numpy.lib.stride_tricks import sliding_window_view

    height, width = luma.shape
    z = np.zeros((height, width), np.float32)
    if height < 8 or width < 8:
        return z
    luma = np.ascontiguousarray(luma, dtype=np.float32)
    inner = z[3:height - 4, 3:width - 4]  # the value of the block covering -3..+4 around each pixel
    rows = max(1, SCORE_CHUNK_PIXELS // width)
    ones = np.ones(63, np.float32)

    def score_rows(y0: int) -> None:
        y1 = min(height - 7, y0 + rows)
        coefficients = sliding_window_view(luma[y0:y1 + 7], (8, 8)).reshape(-1, 64) @ _AC_COLUMNS
        used = np.abs(coefficients) > MIN_ABS_COEFFICIENT
        coefficients -= np.rint(coefficients)  # rint rounds half to even, as torch.round does
        coefficients *= coefficients
        coefficients *= used
        counts = np.count_nonzero(used, axis=1).astype(np.float32)
        squared = coefficients @ ones
        inner[y0:y1] = ((counts - 12 * squared) / np.sqrt(np.maximum(counts, 1.0) * np.float32(0.8))).reshape(
            y1 - y0, width - 7)

    threads = _blas_threads()
    with blas_on_one_thread(), ThreadPoolExecutor(threads) as pool:
        list(pool.map(score_rows, range(0, height - 7, rows)))
    return z
