"""How well and how fast jpegtrace reads the quantisation tables from pixels, per encoder (issue 21).

    PYTHONPATH=src python benchmarks/bench_tables.py --data ../shared/data/clean --split val [--images 12]
        [--parts encoders,near-lossless,double,clean,camera,speed]

Encoders: Pillow, and where installed Debian's ``cjpeg`` (libjpeg-turbo-progs; also ``-dct float``) and
ImageMagick's ``convert``, at 4:2:0, 4:2:2 and 4:4:4, aligned and cropped by (3, 5) pixels, at QF 30..95
with IJG tables; Pillow with random camera-like tables; Pillow at QF 96-100; aligned double JPEGs Q1 < Q2;
and the never-compressed images themselves. Each JPEG is decoded to pixels (as a PNG would hold them) and
the truth is read from the JPEG file itself. Reported per setting: the share of images whose read luma
table is exact (every step right or unknown, none wrong), whose QF is exact (IJG tables), whose chroma
subsampling is read right, whose chroma table is exact (read, and every step right or unknown), whose 15
lowest-frequency luma steps are exact (camera-like tables); ImageMagick's ``identify -format %Q`` on the
JPEG file beside it; and the time of the read against the ``analyze`` of the same image, measured in the
same run.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jpegtrace.analysis import analyze_array, load_model
from jpegtrace.chroma import estimate_chroma_table
from jpegtrace.history import detect_double_compression
from jpegtrace.io import list_images, load_rgb
from jpegtrace.jpeg import camera_like_tables, ijg_table
from jpegtrace.tables import estimate_luma_table

QUALITIES = (30, 50, 75, 90, 95)
PARTS = ("encoders", "near-lossless", "double", "clean", "camera", "speed")
LOWEST_15 = np.argsort(np.add.outer(np.arange(8), np.arange(8)).ravel(), kind="stable")[:15]


def encode(image: np.ndarray, encoder: str, quality: int, subsampling: str, tables=None) -> bytes:
    if encoder == "pillow":
        buffer = io.BytesIO()
        options = {"qtables": [t.ravel().tolist() for t in tables]} if tables is not None else {"quality": quality}
        Image.fromarray(image).save(buffer, format="JPEG", subsampling=subsampling, **options)
        return buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.ppm"
        Image.fromarray(image).save(source)
        factors = {"4:2:0": "2x2", "4:2:2": "2x1", "4:4:4": "1x1"}[subsampling]
        if encoder.startswith("cjpeg"):
            dct = ["-dct", "float"] if encoder.endswith("float") else []
            command = ["cjpeg", "-quality", str(quality), "-sample", factors, *dct, str(source)]
            return subprocess.run(command, capture_output=True, check=True).stdout
        out = Path(folder) / "out.jpg"
        subprocess.run([imagemagick_convert(), str(source), "-quality", str(quality), "-sampling-factor", factors, str(out)],
                       check=True, capture_output=True)
        return out.read_bytes()


def imagemagick_convert() -> str | None:
    """ImageMagick's convert beside its identify (a ``convert`` earlier on PATH may be another program)."""
    identify = shutil.which("identify")
    convert = Path(identify).parent / "convert" if identify else None
    return str(convert) if convert is not None and convert.exists() else None


def decode(data: bytes, chroma: bool = False):
    """The pixels and the file's luma table (and its chroma table, with ``chroma``)."""
    with Image.open(io.BytesIO(data)) as im:
        tables = [np.array(im.quantization[i]).reshape(8, 8) for i in sorted(im.quantization)]
        pixels = np.asarray(im.convert("RGB"))
    return (pixels, tables[0], tables[1] if len(tables) > 1 else None) if chroma else (pixels, tables[0])


def identify_quality(data: bytes) -> str:
    if shutil.which("identify") is None:
        return "-"
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(data)
        f.flush()
        return subprocess.run(["identify", "-format", "%Q", f.name], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"which parts to run, comma-separated of {', '.join(PARTS)} (default: all)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    files = list_images(args.data, Path(args.data) / "split.csv", args.split)
    images = [load_rgb(p) for p in files if min(Image.open(p).size) >= 256][:args.images]
    encoders = ["pillow"] + [e for e, present in (("cjpeg", shutil.which("cjpeg")), ("cjpeg-float", shutil.which("cjpeg")),
                                                  ("imagemagick", imagemagick_convert())) if present]
    print(f"{len(images)} {args.split} images of at least 256 px a side; encoders: {', '.join(encoders)}\n")
    if "encoders" in parts:
        encoder_rows(images, encoders)
    if "near-lossless" in parts:
        near_lossless_rows(images)
    if "double" in parts:
        double_rows(images)
    if "clean" in parts:
        clean_tables = sum(estimate_luma_table(image) is not None for image in images)
        print(f"\nnever-compressed images with a table reported: {clean_tables} of {len(images)}")
    if "camera" in parts:
        camera_rows(images)
    if "speed" in parts:
        speed(images)


def encoder_rows(images, encoders) -> None:
    print("| encoder | subsampling | grid | QF | table exact | QF exact | subsampling right | chroma exact | "
          "identify %Q | no table |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for encoder in encoders:
        for subsampling in ("4:2:0", "4:2:2", "4:4:4"):
            for crop in ((0, 0), (3, 5)):
                for quality in QUALITIES:
                    exact = qf = none = sub_right = chroma_exact = 0
                    reported = set()
                    for image in images:
                        data = encode(image, encoder, quality, subsampling)
                        pixels, truth, chroma_truth = decode(data, chroma=True)
                        pixels = pixels[crop[0]:, crop[1]:]
                        estimate = estimate_luma_table(pixels)
                        reported.add(identify_quality(data))
                        if estimate is None:
                            none += 1
                            continue
                        exact += bool(np.array_equal(estimate.steps[estimate.known], truth[estimate.known]))
                        standard = np.array_equal(truth, ijg_table(quality))
                        qf += standard and estimate.ijg_quality == quality
                        chroma = estimate_chroma_table(pixels, grid_offset=estimate.grid_offset)
                        if chroma is not None:
                            sub_right += chroma.subsampling == subsampling
                            chroma_exact += (chroma.subsampling == subsampling
                                             and bool(np.array_equal(chroma.steps[chroma.known], chroma_truth[chroma.known])))
                    n = len(images)
                    print(f"| {encoder} | {subsampling} | {crop} | {quality} | {exact / n:.2f} | {qf / n:.2f} | "
                          f"{sub_right / n:.2f} | {chroma_exact / n:.2f} | {'/'.join(sorted(reported))} | {none / n:.2f} |",
                          flush=True)


def near_lossless_rows(images) -> None:
    print("\n| QF (Pillow, 4:2:0) | exact QF | 'QF >= 96' or steps only | confident wrong QF | no table |")
    print("|---|---|---|---|---|")
    for quality in (96, 97, 98, 99, 100):
        right = vague = wrong = none = 0
        for image in images:
            pixels, truth = decode(encode(image, "pillow", quality, "4:2:0"))
            estimate = estimate_luma_table(pixels)
            if estimate is None:
                none += 1
            elif estimate.ijg_quality == quality or (estimate.ijg_quality is not None
                                                      and np.array_equal(ijg_table(estimate.ijg_quality), truth)):
                right += 1
            elif estimate.ijg_quality is None:
                vague += 1
            else:
                wrong += 1
        n = len(images)
        print(f"| {quality} | {right / n:.2f} | {vague / n:.2f} | {wrong / n:.2f} | {none / n:.2f} |", flush=True)


def double_rows(images) -> None:
    print("\n| double JPEG (Pillow 4:2:0, aligned) | detected | last table exact |")
    print("|---|---|---|")
    for first, second in ((50, 80), (60, 90), (70, 85), (75, 95)):
        detected = last = 0
        for image in images:
            once = decode(encode(image, "pillow", first, "4:2:0"))[0]
            pixels, truth = decode(encode(once, "pillow", second, "4:2:0"))
            estimate = estimate_luma_table(pixels)
            if estimate is None:
                continue
            last += bool(np.array_equal(estimate.steps[estimate.known], truth[estimate.known]))
            history = detect_double_compression(pixels, estimate)
            detected += bool(history is not None and history.detected)
        n = len(images)
        print(f"| {first} -> {second} | {detected / n:.2f} | {last / n:.2f} |", flush=True)


def camera_rows(images) -> None:
    rng = np.random.default_rng(0)
    good = none = wrong = 0
    for image in images:
        for quality in (50, 80, 92):
            tables = camera_like_tables(quality, rng)
            pixels, truth = decode(encode(image, "pillow", quality, "4:2:0", tables))
            estimate = estimate_luma_table(pixels)
            if estimate is None:
                none += 1
                continue
            good += bool(np.array_equal(estimate.steps.ravel()[LOWEST_15], truth.ravel()[LOWEST_15]))
            wrong += bool(np.any(estimate.steps[estimate.known] != truth[estimate.known]))
    total = 3 * len(images)
    print(f"\ncamera-like tables (Pillow, 4:2:0, around QF 50/80/92): 15 lowest steps exact {good / total:.2f}, "
          f"no table {none / total:.2f}, a known step wrong {wrong / total:.2f}")


def speed(images) -> None:
    """The read against ``analyze`` of the same 1 MP image, in this run: an IJG table's JPEG, and a
    camera-like table's (read again as one table, clipped blocks recovered: the slower path)."""
    model = load_model()
    big = np.asarray(Image.fromarray(images[0]).resize((1280, 800), Image.LANCZOS))
    cases = (("IJG QF 80", decode(encode(big, "pillow", 80, "4:2:0"))[0]),
             ("camera-like table around QF 80", decode(encode(big, "pillow", 80, "4:2:0",
                                                              camera_like_tables(80, np.random.default_rng(1))))[0]))
    for name, jpeg in cases:
        analyze_array(jpeg, model)  # warm-up
        start = time.perf_counter()
        analyze_array(jpeg, model)
        whole = time.perf_counter() - start
        start = time.perf_counter()
        luma = estimate_luma_table(jpeg)
        if luma is not None:
            estimate_chroma_table(jpeg, grid_offset=luma.grid_offset)
        alone = time.perf_counter() - start
        print(f"speed at 1 MP, {name}: table read (luma with its grid check, and chroma) {alone:.3f} s, whole "
              f"analyze {whole:.3f} s (read = {alone / whole:.0%} of analyze, which includes it)", flush=True)


if __name__ == "__main__":
    main()
