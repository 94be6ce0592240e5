"""A JPEG file's marker structure, read from its bytes, and the damage that decoding it hides.

libjpeg decodes a damaged JPEG without an error: where the entropy-coded data runs out (a
truncated file, a frame header edited to claim a larger image, corrupt bytes that make the decoder
lose its place) it fills the rest of the image with flat grey blocks and only *warns*, and Pillow
discards libjpeg's warnings (its decoder's message handler does nothing and never reads the
warning count). :func:`find_damage` therefore uses libjpeg itself as the oracle, on copies of the
file changed where only a damaged file would notice:

- **data that runs out.** Random bytes inserted just before each restart marker and the end of
  each scan are read only by a decoder that has run out of data before the image (or the restart
  interval) is complete; a complete one skips them. The first block that decodes differently is
  where the data ran out; everything after it, to the end of its interval, is libjpeg's fill. An
  interval closed by its restart marker never runs out in a sound file: all of it is corrupt.
  Intervals missing after the last one in the data are filled in too.
- **data left over.** The last bytes before each restart marker and the end of the scan, replaced
  by random ones, change the decoded pixels of a sound file; where they change nothing the
  decoder finished early, having lost its place in corrupt data (or the header claims too small
  an image). Without restart markers that place is unknown.

Beside these, :func:`parse_jpeg` reads the structure itself: a file that ends inside the image
data, an unexpected marker inside it, restart markers missing or out of order.

The checks cost two decodes at 1/8 size (little more than the entropy decoding) and two at full
size (four for a progressive file), a small share of an analysis. What they cannot see: corrupt
data after which the decoder finds its place again by chance (Huffman codes resynchronise),
leaving a few garbled blocks and shifted colours after them but consuming the data exactly;
libjpeg itself often says nothing then either. Of photos with 16 random bytes overwritten, a half
(a quarter with restart markers, where the damage stays inside one interval) are caught; of files
cut short or with a frame header claiming a larger image, all.
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import TimeLimitError

#: A marker: one or more 0xFF (fill bytes) and a code that is neither 0x00 (a stuffed 0xFF) nor 0xFF.
_MARKER = re.compile(rb"\xff+([^\x00\xff])")

#: Frame headers (SOF0-SOF15 but DHT, JPG and DAC); the progressive ones.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
#: Markers that may follow a scan's data: EOI, SOS, DHT, DQT, DRI, DAC, DNL, APPn, COM.
_AFTER_SCAN = frozenset({0xD9, 0xDA, 0xC4, 0xDB, 0xDD, 0xCC, 0xDC, *range(0xE0, 0xF0), 0xFE})

#: The zigzag order of a DQT segment's 64 steps, as indices into the natural (row-major) order.
_ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
    60, 61, 54, 47, 55, 62, 63])

#: Bytes at the end of a restart interval or scan that may go unread before the data counts as
#: left over: some encoders leave a few (libjpeg's "extraneous bytes before marker" on sound
#: files), a decoder that lost its place leaves more.
LEFTOVER_BYTES = 64
#: Random bytes inserted before each restart marker and scan end (enough to change the first
#: block decoded from them).
_INSERTED_BYTES = 64
#: Share of an MCU's pixels that must differ for it to count as decoded from the inserted bytes at
#: full size (libjpeg's smooth chroma upsampling spreads a change into the neighbours' edge pixels).
_MCU_DIFFERENT_SHARE = 0.25


@dataclass(frozen=True)
class Scan:
    """One scan (SOS segment) and its entropy-coded data.

    Attributes
    ----------
    components : tuple of int
        Indices (into :attr:`JpegStructure.components`) of the components it codes.
    spectral : (int, int)
        First and last coefficient (zigzag) it codes: ``(0, 63)`` for a sequential scan.
    approximation : (int, int)
        Successive approximation bit positions, high and low (``(0, 0)`` for a sequential scan).
    restart_interval : int
        MCUs (blocks, in a one-component scan) per restart interval (0: none); a DRI segment may
        change it between scans, as libjpeg does when it restarts every row.
    start, end : int
        Offsets of its entropy-coded data in the file (``end``: the marker after it, or the file's end).
    restarts : tuple of (int, int)
        Offset and code (0xD0-0xD7) of each restart marker inside the data.
    end_marker : int or None
        The code of the marker that ends the data; None when the file ends first.
    """

    components: tuple[int, ...]
    spectral: tuple[int, int]
    approximation: tuple[int, int]
    restart_interval: int
    start: int
    end: int
    restarts: tuple[tuple[int, int], ...]
    end_marker: int | None


@dataclass(frozen=True)
class JpegStructure:
    """What :func:`parse_jpeg` read of a JPEG file's first image.

    Attributes
    ----------
    width, height : int
        The frame header's size.
    sampling : tuple of (int, int)
        Each component's horizontal and vertical sampling factor.
    table_ids : tuple of int
        Each component's quantisation table.
    tables : dict of int to ndarray
        The quantisation tables (8x8, natural order) by id.
    progressive : bool
    restart_interval : int
        The first scan's restart interval (0: none).
    scans : tuple of Scan
    image_end : int
        Offset just past the image's data: past its EOI, or where the data was cut short.
    truncated : bool
        The file ends before the image's EOI.
    cut : bool
        The image's data stops at an unexpected marker (libjpeg would refuse the file there).
    problems : tuple of str
        Damage seen in the structure itself (unexpected markers, restart markers out of order).
    """

    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]
    table_ids: tuple[int, ...]
    tables: dict
    progressive: bool
    restart_interval: int
    scans: tuple[Scan, ...]
    image_end: int
    truncated: bool
    cut: bool
    problems: tuple[str, ...]

    @property
    def mcu_size(self) -> tuple[int, int]:
        """Height and width in pixels of an interleaved MCU (one block for a one-component image)."""
        if len(self.sampling) == 1:
            return 8, 8
        return 8 * max(v for _, v in self.sampling), 8 * max(h for h, _ in self.sampling)

    @property
    def mcu_grid(self) -> tuple[int, int]:
        """MCU rows and columns of the image."""
        mh, mw = self.mcu_size
        return -(-self.height // mh), -(-self.width // mw)

    @property
    def luma_table(self) -> np.ndarray | None:
        """The first component's quantisation table (natural order), when the file declares it."""
        return self.tables.get(self.table_ids[0]) if self.table_ids else None

    @property
    def one_interleaved_scan(self) -> bool:
        """A sequential image coded in one scan of all its components (the usual case): its MCUs are
        coded in raster order, so that restart intervals are runs of MCUs."""
        return not self.progressive and len(self.scans) == 1 and len(self.scans[0].components) == len(self.sampling)

    @property
    def all_coefficients_coded(self) -> bool:
        """Whether the scans code every coefficient of every component to its last bit (always true
        of a sequential image; a progressive one cut short lacks its later scans)."""
        coded = np.zeros((len(self.sampling), 64), dtype=bool)
        for scan in self.scans:
            first, last = scan.spectral
            if scan.approximation[1] == 0:
                coded[list(scan.components), first:last + 1] = True
        return bool(coded.all())

    def scan_units(self, scan: Scan) -> int:
        """MCUs of an interleaved scan; blocks of its component for a one-component scan."""
        if len(scan.components) > 1 or len(self.sampling) == 1:
            rows, cols = self.mcu_grid
            return rows * cols
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        h, v = self.sampling[scan.components[0]]
        width = -(-self.width * h // hmax)
        height = -(-self.height * v // vmax)
        return -(-width // 8) * -(-height // 8)


def is_jpeg(head: bytes) -> bool:
    """Whether bytes start like a JPEG file (SOI and a marker)."""
    return len(head) >= 3 and head[0] == 0xFF and head[1] == 0xD8 and head[2] == 0xFF


def parse_jpeg(data) -> JpegStructure | None:
    """The marker structure of the first image of a JPEG file's bytes; None when they hold no frame header.

    Parameters
    ----------
    data : bytes-like
        The file (``bytes`` or an ``mmap``).

    Notes
    -----
    Segments are skipped by their lengths; a scan's entropy-coded data runs to the first marker
    that is not a restart marker (a stuffed ``0xFF 0x00`` is data). Stray bytes between segments
    (which libjpeg skips with a warning) are not damage; a file that ends before its EOI is
    :attr:`~JpegStructure.truncated`; a marker that cannot follow a scan ends the image there.
    """
    if not is_jpeg(bytes(data[:3])):
        return None
    size = len(data)
    pos = 2
    frame = None
    progressive = False
    restart_interval = 0
    tables: dict[int, np.ndarray] = {}
    scans: list[Scan] = []
    problems: list[str] = []
    while True:
        found = _MARKER.search(data, pos)
        if found is None:  # the file ends between segments
            return _structure(frame, progressive, tables, scans, size, True, problems)
        code = found.group(1)[0]
        pos = found.end()
        if code == 0xD9:
            return _structure(frame, progressive, tables, scans, pos, False, problems)
        if 0xD0 <= code <= 0xD7 or code == 0x01:  # markers without a length
            continue
        if pos + 2 > size:
            return _structure(frame, progressive, tables, scans, found.start(), True, problems)
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            return _structure(frame, progressive, tables, scans, found.start(), True, problems)
        segment = bytes(data[pos + 2:pos + length])
        try:
            if code in _SOF and frame is None:
                progressive = code in _PROGRESSIVE_SOF
                height, width = struct.unpack_from(">HH", segment, 1)
                components = [(segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15, segment[8 + 3 * i], segment[6 + 3 * i])
                              for i in range(segment[5])]
                if not components or any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v, _, _ in components):
                    return None  # libjpeg refuses such a frame: Pillow will say so
                frame = (width, height, components)
            elif code == 0xDD:
                (restart_interval,) = struct.unpack_from(">H", segment)
            elif code == 0xDB:
                _read_tables(segment, tables)
            elif code == 0xDA:
                if frame is None:
                    return None
                count = segment[0]
                ids = [c[3] for c in frame[2]]
                members = tuple(ids.index(segment[1 + 2 * i]) for i in range(count) if segment[1 + 2 * i] in ids)
                if not members or len(members) != count:
                    return None  # a scan of components the frame lacks: libjpeg refuses it
                spectral = (segment[1 + 2 * count], segment[2 + 2 * count])
                approximation = (segment[3 + 2 * count] >> 4, segment[3 + 2 * count] & 15)
        except (IndexError, struct.error):  # a segment too short for its kind: Pillow will say so
            return None
        if code != 0xDA:
            pos += length
            continue
        scan, problem = _read_scan(data, pos + length, members, spectral, approximation, restart_interval)
        scans.append(scan)
        if problem is not None:
            problems.append(problem)
        if scan.end_marker is None:
            return _structure(frame, progressive, tables, scans, size, True, problems)
        if scan.end_marker not in _AFTER_SCAN:
            problems.append(f"unexpected marker 0xFF{scan.end_marker:02X} inside the image data")
            return _structure(frame, progressive, tables, scans, scan.end, False, problems,
                              cut=True)
        pos = scan.end


def _read_tables(segment: bytes, tables: dict) -> None:
    at = 0
    while at < len(segment):
        precision, table_id = segment[at] >> 4, segment[at] & 15
        width = 2 if precision else 1
        raw = segment[at + 1:at + 1 + 64 * width]
        if len(raw) < 64 * width:  # a segment cut short: Pillow will say so
            return
        values = np.frombuffer(raw, dtype=">u2" if width == 2 else np.uint8)
        table = np.empty(64, dtype=np.int64)
        table[_ZIGZAG] = values
        tables[table_id] = table.reshape(8, 8)
        at += 1 + 64 * width


def _read_scan(data, start: int, members: tuple[int, ...], spectral: tuple[int, int],
               approximation: tuple[int, int], restart_interval: int) -> tuple[Scan, str | None]:
    restarts = []
    problem = None
    for found in _MARKER.finditer(data, start):
        code = found.group(1)[0]
        if 0xD0 <= code <= 0xD7:
            if code != 0xD0 + len(restarts) % 8 and problem is None:
                problem = "restart markers out of order"
            restarts.append((found.start(), code))
            continue
        return Scan(members, spectral, approximation, restart_interval, start, found.start(), tuple(restarts),
                    code), problem
    return Scan(members, spectral, approximation, restart_interval, start, len(data), tuple(restarts), None), problem


def _structure(frame, progressive, tables, scans, image_end, truncated, problems, cut=False):
    if frame is None or not scans:
        return None
    width, height, components = frame
    structure = JpegStructure(width=width, height=height, sampling=tuple((h, v) for h, v, _, _ in components),
                              table_ids=tuple(t for _, _, t, _ in components), tables=tables, progressive=progressive,
                              restart_interval=scans[0].restart_interval, scans=tuple(scans), image_end=image_end,
                              truncated=truncated, cut=cut, problems=tuple(problems))
    if "restart markers out of order" in problems or not (width and height):
        return structure
    for scan in scans:
        if not scan.restart_interval:
            continue
        expected = -(-structure.scan_units(scan) // scan.restart_interval) - 1
        # A scan cut short (a truncated file or an unexpected marker) has fewer, as it should.
        complete = scan.end_marker in _AFTER_SCAN and not (cut and scan is scans[-1])
        if len(scan.restarts) > expected or (complete and len(scan.restarts) < expected):
            what = "missing" if len(scan.restarts) < expected else "too many"
            return _with_problem(structure, f"restart intervals {what} ({len(scan.restarts) + 1} where "
                                            f"{expected + 1} belong)")
    return structure


def _with_problem(structure: JpegStructure, problem: str) -> JpegStructure:
    return dataclasses.replace(structure, problems=(*structure.problems, problem))


def repaired(data, structure: JpegStructure) -> bytes:
    """The image's bytes as libjpeg should see them: to its EOI, or cut where the data stops and ended with EOI.

    Pillow refuses a file that ends early ("image file is truncated") and libjpeg stops at an
    unexpected marker with an error; ended with an EOI, both decode what there is and libjpeg
    fills the rest.
    """
    if structure.truncated or structure.cut:
        return b"".join((memoryview(data)[:structure.image_end], b"\xff\xd9"))  # one copy, not two
    return bytes(data[:structure.image_end])  # the same bytes object when nothing follows the image


@dataclass(frozen=True)
class Damage:
    """What :func:`find_damage` found.

    Attributes
    ----------
    reasons : tuple of str
        What is wrong, each a short phrase ("the file is truncated", ...).
    undecoded : ndarray of bool, (MCU rows, MCU columns)
        MCUs that libjpeg filled in (or decoded from data known to be corrupt).
    placed : bool
        Whether ``undecoded`` holds all the damage found; False where some is known but not where
        (corrupt data without restart markers, the missing scans of a progressive file cut short).
    """

    reasons: tuple[str, ...]
    undecoded: np.ndarray
    placed: bool


def find_damage(data: bytes, structure: JpegStructure) -> Damage | None:
    """Where the image of ``data`` (as :func:`repaired` gives it) decodes from missing or corrupt data.

    Parameters
    ----------
    data : bytes
        :func:`repaired` bytes of the file.
    structure : JpegStructure
        :func:`parse_jpeg` of the file.

    Returns
    -------
    Damage or None
        None for a sound image (also one whose file ends without its end marker after complete data).

    Notes
    -----
    See the module's description. The inserted bytes are decoded at 1/8 scale, where libjpeg
    computes only each block's DC: the first block decoded from them gets a random DC, while
    the fill it replaces has DC 0 (progressive files, whose later scans carry only AC
    coefficients, are decoded at full size). The replaced last bytes are compared at full size,
    since they may hold only AC coefficients. A progressive file cut short may miss whole scans,
    which no decoding shows: it is damaged, the missing detail not located.
    """
    if structure.width == 0 or structure.height == 0:
        return None
    reasons = list(structure.problems)
    complete = structure.all_coefficients_coded
    if structure.truncated:
        reasons.insert(0, "the file is truncated" + ("" if complete else " (its later scans, the whole image's "
                                                                          "detail, are missing)"))
    undecoded = np.zeros(structure.mcu_grid, dtype=bool)
    ran_out = _ran_out(data, structure)
    if ran_out is not None and ran_out.any():
        undecoded |= ran_out
        if not reasons:
            reasons.append("the image data ends before the image does")
    left = _left_over(data, structure)
    placed = complete
    if left is not None:
        reasons.append("corrupt data: decoding ended before the end of the image data")
        undecoded |= left
        placed = placed and bool(left.any())
    if structure.truncated and complete and len(reasons) == 1 and not undecoded.any():
        return None  # the data is complete, only the end marker is missing
    if not reasons:
        return None
    return Damage(tuple(reasons), undecoded, placed and bool(undecoded.any()))


def _junk(size: int, seed: int) -> bytes:
    # Never 0xFF, so that no marker can appear; fixed seeds keep the result reproducible.
    return np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8).tobytes()


def _segments(scan: Scan) -> list[tuple[int, int]]:
    """``(start, end)`` of each restart interval's data in ``scan``."""
    starts = [scan.start] + [at + 2 for at, _ in scan.restarts]
    ends = [at for at, _ in scan.restarts] + [scan.end]
    return list(zip(starts, ends))


def _decode(data: bytes, scale: int) -> tuple[Image.Image, int]:
    """The image of ``data`` decoded at 1/``scale`` size where libjpeg can (8: DC only), and the scale it used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = Image.open(io.BytesIO(data))
        width, height = im.size
        if scale > 1:
            # Pillow picks the largest power-of-two scale that keeps at least the size asked for.
            im.draft(im.mode, (max(1, width // scale), max(1, height // scale)))
        im.load()
    used = next((k for k in (8, 4, 2) if im.size == (-(-width // k), -(-height // k))), 1)
    return im, used


def _mcu_differences(a: Image.Image, b: Image.Image, structure: JpegStructure, scale: int,
                     share: float = 0.0) -> np.ndarray:
    """Which MCUs of two decodes of the image at 1/``scale`` size differ in more than ``share`` of their pixels."""
    rows, cols = structure.mcu_grid
    mh, mw = (s // scale for s in structure.mcu_size)
    out = np.zeros((rows, cols), dtype=bool)
    width, height = a.size
    band = max(1, (1 << 20) // max(1, width * mh)) * mh  # whole MCU rows, about a megapixel at once
    for y0 in range(0, height, band):
        box = (0, y0, width, min(height, y0 + band))
        differ = np.asarray(a.crop(box)) != np.asarray(b.crop(box))
        if differ.ndim == 3:
            differ = differ.any(axis=2)
        h = differ.shape[0]
        padded = np.zeros((2, -(-h // mh) * mh, cols * mw), dtype=np.float32)
        padded[0, :h, :width] = differ
        padded[1, :h, :width] = 1.0  # the MCUs of the last row and column lie partly outside the image
        counts = padded.reshape(2, -1, mh, cols, mw).sum(axis=(2, 4))
        r0 = y0 // mh
        out[r0:r0 + counts.shape[1]] = counts[0] > share * np.maximum(counts[1], 1.0)
    return out


def _ran_out(data: bytes, structure: JpegStructure) -> np.ndarray | None:
    """MCUs libjpeg filled in because the data ran out (None when the check could not decode)."""
    cuts = sorted(end for scan in structure.scans for _, end in _segments(scan))
    junk = _junk(_INSERTED_BYTES, 1)
    view = memoryview(data)  # slices of a view are no copies: the changed file is the only one made
    pieces, previous = [], 0
    for cut in cuts:
        pieces += [view[previous:cut], junk]
        previous = cut
    pieces.append(view[previous:])
    try:
        original, scale = _decode(data, 1 if structure.progressive else 8)
        changed, changed_scale = _decode(b"".join(pieces), scale)
    except TimeLimitError:  # the file's time ran out: not the copy's fault
        raise
    except Exception:  # noqa: BLE001 -- a copy libjpeg refuses proves nothing about the file
        return None
    if changed_scale != scale:
        return None
    differ = _mcu_differences(original, changed, structure, scale, share=_MCU_DIFFERENT_SHARE if scale == 1 else 0.0)
    undecoded = _to_interval_ends(differ, structure)
    # Intervals after the last one in a scan's data (a file cut short, a header claiming a larger
    # image) are all filled in: libjpeg skips the inserted bytes as it looks for their restart marker.
    flat = undecoded.reshape(-1)
    for scan in structure.scans:
        present = (len(scan.restarts) + 1) * scan.restart_interval
        if scan.restart_interval and present < structure.scan_units(scan):
            flat[_first_mcu(structure, scan, present):] = True
    return undecoded


def _first_mcu(structure: JpegStructure, scan: Scan, unit: int) -> int:
    """The MCU (raster index) from which on every MCU holds some of ``scan``'s units from ``unit`` on."""
    rows, cols = structure.mcu_grid
    if len(scan.components) > 1 or len(structure.sampling) == 1:
        return unit
    # A one-component scan codes its component's blocks in raster order: from the MCU row of the block's row.
    hmax = max(h for h, _ in structure.sampling)
    vmax = max(v for _, v in structure.sampling)
    h, v = structure.sampling[scan.components[0]]
    block_cols = -(-(-(-structure.width * h // hmax)) // 8)
    pixel_row = (unit // block_cols) * 8 * vmax // v
    return min(rows, pixel_row // structure.mcu_size[0]) * cols


def _to_interval_ends(first: np.ndarray, structure: JpegStructure) -> np.ndarray:
    """From each restart interval's first differing MCU to the interval's end (to the image's end
    without restart intervals, or where the intervals are not runs of MCUs).

    An interval followed by its restart marker that ran out of data holds corrupt data (a sound
    one never does), from a place unknown: all of it counts, not only what libjpeg filled in.
    """
    flat = first.reshape(-1)
    out = np.zeros_like(flat)
    interval = _interval(structure, flat.size)
    closed = len(structure.scans[0].restarts) if interval < flat.size else 0  # intervals ended by a marker
    for index, start in enumerate(range(0, flat.size, interval)):
        part = flat[start:start + interval]
        if part.any():
            out[start + (0 if index < closed else int(np.argmax(part))):start + interval] = True
    return out.reshape(first.shape)


def _interval(structure: JpegStructure, mcus: int) -> int:
    """MCUs per restart interval where intervals are runs of MCUs; all of them otherwise."""
    return structure.restart_interval if structure.one_interleaved_scan and structure.restart_interval else mcus


def _left_over(data: bytes, structure: JpegStructure) -> np.ndarray | None:
    """None when every interval's last bytes are read; else the MCUs of the intervals whose last
    bytes are not (all False when that cannot be placed)."""
    if structure.one_interleaved_scan:
        segments = _segments(structure.scans[0])
    else:  # other scans' intervals do not map to runs of MCUs: the last scan's end only
        segments = [_segments(structure.scans[-1])[-1]]
    tested = [(i, start, end) for i, (start, end) in enumerate(segments) if end - start >= 4 * LEFTOVER_BYTES]
    if not tested:
        return None
    view = memoryview(data)  # slices of a view are no copies: the changed file is the only one made
    pieces, previous = [], 0
    for i, start, end in tested:
        at = end - LEFTOVER_BYTES
        if data[at - 1] == 0xFF:  # keep the 0x00 of a stuffed 0xFF: junk after 0xFF could be a marker
            at += 1
        pieces += [view[previous:at], _junk(end - at, 2 + i)]
        previous = end
    pieces.append(view[previous:])
    try:
        original, changed = _decode(data, 1)[0], _decode(b"".join(pieces), 1)[0]
    except TimeLimitError:  # the file's time ran out: not the copy's fault
        raise
    except Exception:  # noqa: BLE001 -- a copy libjpeg refuses proves nothing about the file
        return None
    differ = _mcu_differences(original, changed, structure, 1)
    del original, changed
    rows, cols = structure.mcu_grid
    flat = differ.reshape(-1)
    interval = _interval(structure, flat.size)
    unread = np.zeros_like(flat)
    found = False
    for i, _, _ in tested:
        part = slice(i * interval, min(flat.size, (i + 1) * interval))
        # Any change counts as read, even the spread of a neighbour's (the safe side: not refused).
        if not flat[part].any():
            found = True
            if len(segments) > 1:
                unread[part] = True
    if not found:
        return None
    return unread.reshape(rows, cols)
