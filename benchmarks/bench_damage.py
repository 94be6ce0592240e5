"""How well `jpegtrace.jpegfile.find_damage` tells damaged JPEGs from sound ones.

Sound files: scikit-image's photos and made-up images (flat grey 128, which decodes like libjpeg's
fill, black, 1x1, odd sizes) saved by Pillow at QF 30-100, 4:4:4 and 4:2:0, baseline and progressive,
with and without optimised tables and restart markers, RGB, grayscale and CMYK: every one must be
found sound. Damaged files, from the photos: cut at a random point of the image data, the frame
header edited to claim twice the height or 64 more columns, 16 random bytes overwritten inside the
last scan. Prints, per kind, how many were found sound, damaged and placed, or damaged but not placed.

    python benchmarks/bench_damage.py            # about a minute on 2 cores

Exits 1 if a sound file is called damaged.
"""

from __future__ import annotations

import collections
import io
import itertools
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from jpegtrace.jpegfile import find_damage, parse_jpeg, repaired  # noqa: E402


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    waves = np.stack([128 + 60 * np.sin(x / 17 + y / 29), 128 + 60 * np.cos(x / 23 - y / 13),
                      128 + 50 * np.sin((x + y) / 31)], axis=-1)
    return np.clip(waves + np.random.default_rng(seed).normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


def save(image: Image.Image, **options) -> bytes | None:
    from jpegtrace.io import native_stderr_captured

    buf = io.BytesIO()
    try:
        with native_stderr_captured():  # libjpeg prints why it refuses
            image.save(buf, format="JPEG", **options)
    except OSError:  # a combination libjpeg refuses (progressive CMYK with restart markers)
        return None
    return buf.getvalue()


def outcome(data: bytes) -> str:
    structure = parse_jpeg(data)
    if structure is None:
        return "no image data"
    damage = find_damage(repaired(data, structure), structure)
    if damage is None:
        return "sound"
    return "damaged, placed" if damage.placed else ("damaged, partly placed" if damage.undecoded.any()
                                                    else "damaged, not placed")


def main() -> int:
    from skimage import data as samples

    photos = {"astronaut": samples.astronaut(), "coffee": samples.coffee(), "chelsea": samples.chelsea()}
    made = {"texture": texture(301, 397), "grey128": np.full((64, 96, 3), 128, np.uint8),
            "white": np.full((40, 40, 3), 255, np.uint8), "black": np.zeros((33, 17, 3), np.uint8),
            "1x1": texture(1, 1), "8x8": texture(8, 8), "17x9": texture(17, 9),
            "half grey": np.concatenate([texture(64, 128), np.full((64, 128, 3), 128, np.uint8)]),
            "camera": np.stack([samples.camera()] * 3, axis=-1)}
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    wrong = []
    for (name, array), quality, subsampling, progressive, optimize, restart, mode in itertools.product(
            {**photos, **made}.items(), (30, 75, 95, 100), (0, 2), (False, True), (False, True), (False, True),
            ("RGB", "L", "CMYK")):
        options = {"quality": quality, "progressive": progressive, "optimize": optimize}
        if mode == "RGB":
            options["subsampling"] = subsampling
        if restart:
            options["restart_marker_rows"] = 1
        data = save(Image.fromarray(array).convert(mode), **options)
        if data is None:
            continue
        result = outcome(data)
        counts["sound"][result] += 1
        if result != "sound":
            wrong.append((name, mode, options, result))

    rng = np.random.default_rng(0)
    for (name, array), quality, progressive, restart in itertools.product(
            photos.items(), (50, 85, 95), (False, True), (False, True)):
        options = {"quality": quality, "progressive": progressive}
        if restart:
            options["restart_marker_rows"] = 1
        data = save(Image.fromarray(array), **options)
        structure = parse_jpeg(data)
        kind = ("progressive" if progressive else "baseline") + (", restart markers" if restart else "")
        for _ in range(3):
            cut = int(rng.integers(structure.scans[0].start + 10, len(data) - 10))
            counts[f"cut short ({kind})"][outcome(data[:cut])] += 1
        sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        height, width = struct.unpack_from(">HH", data, sof + 5)
        for size in ((height * 2, width), (height, width + 64)):
            edited = bytearray(data)
            struct.pack_into(">HH", edited, sof + 5, *size)
            counts[f"header claims a larger image ({kind})"][outcome(bytes(edited))] += 1
        scan = structure.scans[-1]
        for _ in range(4):
            corrupt = bytearray(data)
            at = int(rng.integers(scan.start, scan.end - 16))
            corrupt[at:at + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
            counts[f"16 bytes overwritten ({kind})"][outcome(bytes(corrupt))] += 1

    for kind, found in counts.items():
        total = sum(found.values())
        print(f"{kind:55s} {total:5d} files: " + ", ".join(f"{k} {v}" for k, v in sorted(found.items())))
    for case in wrong:
        print("sound file called damaged:", *case)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
