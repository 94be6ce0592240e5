"""Binary morphology, connected components and a NaN-aware median on 2-D grids, with numpy only.

:mod:`jpegtrace.regions` cleans, fills and splits the flagged cells of the 8x8 cell lattice (128 x 128
cells for a 1 MP image) with these. They compute what ``scipy.ndimage``'s functions of the same names
compute for the 3x3 structures used here (``tests/test_morphology.py`` compares them), without its
import: ``scipy.ndimage`` takes about 0.3 s to import, a fifth of ``jpegtrace analyze``'s time on a
1 MP image.
"""

from __future__ import annotations

import numpy as np

#: The 3x3 cross: the four edge neighbours and the centre (``ndimage.generate_binary_structure(2, 1)``).
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
#: The full 3x3 square: the eight neighbours and the centre.
SQUARE = np.ones((3, 3), bool)


def _shifted(padded: np.ndarray, dy: int, dx: int, shape: tuple[int, int]) -> np.ndarray:
    """The view of a grid padded by one cell whose cell ``(y, x)`` is the grid's ``(y + dy, x + dx)``."""
    return padded[1 + dy:1 + dy + shape[0], 1 + dx:1 + dx + shape[1]]


def _offsets(structure: np.ndarray) -> list[tuple[int, int]]:
    if structure.shape != (3, 3):
        raise ValueError(f"structure must be 3x3, got {structure.shape}")
    return [(dy - 1, dx - 1) for dy, dx in zip(*np.nonzero(structure))]


def dilate(mask: np.ndarray, structure: np.ndarray = CROSS, *, iterations: int = 1) -> np.ndarray:
    """Binary dilation of a 2-D bool grid by a symmetric 3x3 structure, cells outside the grid False.

    As ``scipy.ndimage.binary_dilation(mask, structure, iterations=iterations)``.
    """
    out = np.asarray(mask, bool)
    offsets = _offsets(structure)
    for _ in range(iterations):
        padded = np.pad(out, 1)
        grown = np.zeros_like(out)
        for dy, dx in offsets:
            grown |= _shifted(padded, dy, dx, out.shape)
        out = grown
    return out


def erode(mask: np.ndarray, structure: np.ndarray = CROSS) -> np.ndarray:
    """Binary erosion of a 2-D bool grid by a symmetric 3x3 structure, cells outside the grid False.

    As ``scipy.ndimage.binary_erosion(mask, structure)``: a cell stays where the structure around it
    lies inside the mask, so cells at the grid's edge go wherever the structure reaches outside it.
    """
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1)
    out = np.ones_like(mask)
    for dy, dx in _offsets(structure):
        out &= _shifted(padded, dy, dx, mask.shape)
    return out


def opening(mask: np.ndarray, structure: np.ndarray = CROSS) -> np.ndarray:
    """Erosion then dilation (``scipy.ndimage.binary_opening``): removes what the structure does not fit in."""
    return dilate(erode(mask, structure), structure)


def closing(mask: np.ndarray, structure: np.ndarray = CROSS) -> np.ndarray:
    """Dilation then erosion (``scipy.ndimage.binary_closing``, cells outside the grid False in both)."""
    return erode(dilate(mask, structure), structure)


def label(mask: np.ndarray, structure: np.ndarray = SQUARE) -> tuple[np.ndarray, int]:
    """Connected components of a 2-D bool grid: ``(labels, count)``, as ``scipy.ndimage.label``.

    Parameters
    ----------
    mask : ndarray of bool, (H, W)
    structure : ndarray of bool, (3, 3)
        Which neighbours connect: :data:`SQUARE` (8-connected) or :data:`CROSS` (4-connected).

    Returns
    -------
    labels : ndarray of int32, (H, W)
        0 outside the mask; components numbered 1.. in the order of their first cell in row-major
        order (scipy's numbering).
    count : int

    Notes
    -----
    Union-find on the cells' flat indices, vectorised: every pair of connected neighbours hooks the
    larger of its two roots to the smaller one, then every pointer jumps to its root, until no pair
    joins two roots. Pointers only ever go to smaller indices, so each component's root is its first
    cell. A few rounds suffice for the compact regions of a flag map; a long snake takes more.

    References
    ----------
    .. [1] Shiloach and Vishkin, "An O(log n) parallel connectivity algorithm", Journal of
       Algorithms 3(1), 1982: hooking and pointer jumping.
    """
    mask = np.asarray(mask, bool)
    height, width = mask.shape
    index = np.arange(height * width, dtype=np.int32).reshape(height, width)  # at most 1 M cells at 64 MP
    pairs = []
    for dy, dx in _offsets(structure):
        if (dy, dx) <= (0, 0):  # each pair once: the neighbour after the cell in row-major order
            continue
        rows_a, rows_b = slice(0, height - dy), slice(dy, height)
        cols_a = slice(max(0, -dx), width - max(0, dx))
        cols_b = slice(max(0, dx), width - max(0, -dx))
        both = mask[rows_a, cols_a] & mask[rows_b, cols_b]
        pairs.append((index[rows_a, cols_a][both], index[rows_b, cols_b][both]))
    first = np.concatenate([a for a, _ in pairs]) if pairs else np.empty(0, np.int32)
    second = np.concatenate([b for _, b in pairs]) if pairs else np.empty(0, np.int32)
    del pairs
    parent = index.ravel()  # index is not used again: the pointers start as the cells themselves
    while first.size:
        root_a, root_b = parent[first], parent[second]
        apart = root_a != root_b
        if not apart.any():
            break
        first, second, root_a, root_b = first[apart], second[apart], root_a[apart], root_b[apart]
        higher = np.maximum(root_a, root_b)
        parent[higher] = np.minimum(root_a, root_b, out=root_a)
        del root_a, root_b, higher
        while True:  # pointer jumping until every cell points at a root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    labels = np.zeros((height, width), np.int32)
    unique, numbered = np.unique(parent.reshape(height, width)[mask], return_inverse=True)
    labels[mask] = numbered.ravel() + 1
    return labels, len(unique)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (``scipy.ndimage.binary_fill_holes``): background cells that no
    4-connected path of background cells links to the grid's edge become True."""
    mask = np.asarray(mask, bool)
    if mask.size == 0:
        return mask.copy()
    background, _ = label(~mask, CROSS)
    edge = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    open_labels = np.zeros(background.max() + 1, bool)
    open_labels[edge] = True
    open_labels[0] = True  # the mask itself
    return mask | ~open_labels[background]


def nan_median_3x3(values: np.ndarray) -> np.ndarray:
    """The median of the finite values in each cell's 3x3 neighbourhood, the edge cells repeated
    outwards; NaN where the neighbourhood holds none (``numpy.nanmedian`` over the window).

    Notes
    -----
    NaN marks cells that take no part (outside the flagged area, :mod:`jpegtrace.regions`):
    ``scipy.ndimage.median_filter`` treats NaN as a value whose comparisons all fail, so its
    result there depends on the order of its selection, not on the neighbours.
    """
    values = np.asarray(values, np.float32)
    height, width = values.shape
    padded = np.pad(values, 1, mode="edge")
    window = np.stack([padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)], axis=-1)
    window.sort(axis=-1)  # NaN last
    finite = np.count_nonzero(np.isfinite(window), axis=-1)
    low = np.take_along_axis(window, np.maximum(finite - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    high = np.take_along_axis(window, (finite // 2)[..., None], axis=-1)[..., 0]
    return np.where(finite > 0, (low + high) / 2, np.float32(np.nan)).astype(np.float32)
