"""Make the README's figures with the shipped model, by running jpegtrace's own commands.

The images come from scikit-image's sample data (installed with the test extra). The
never-compressed ones are downscaled 3-4x with a Lanczos filter first, as in scripts/demo.py,
which wipes out the traces of any JPEG compression they went through before they were
published. Three figures are copied into docs/figures/:

* ``evaluate_fig2.png``: ``jpegtrace evaluate`` over those photos (the paper's Fig. 2);
* ``collage_fig3.png``: ``jpegtrace collage``, a disc from a QF-80 JPEG (the paper's Fig. 3);
* ``assess_histogram.png``: ``jpegtrace assess`` over a made-up data set in which some
  "clean" PNGs were JPEG-compressed before being saved, plus scikit-image's own JPEG files
  (the paper's Figs. 4-9).

The full results of each command stay in the work folder (``--work``, default ``scratch/readme``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from jpegtrace.cli import main as jpegtrace
from jpegtrace.io import downscale
from jpegtrace.jpeg import jpeg_compress

ROOT = Path(__file__).resolve().parent.parent

#: Colour photos bundled with scikit-image, with the factor they are downscaled by.
COLOUR_PHOTOS = {"astronaut": 3, "chelsea": 2, "coffee": 3, "immunohistochemistry": 3, "rocket": 3,
                 "retina": 8, "hubble_deep_field": 5}
#: Grayscale photos bundled with scikit-image.
GRAY_PHOTOS = {"camera": 3, "brick": 3, "coins": 2, "moon": 3}
#: scikit-image's sample files that are JPEGs as shipped.
SHIPPED_JPEGS = ("rocket.jpg", "retina.jpg", "hubble_deep_field.jpg")


def run(argv: list[str]) -> None:
    print("$ jpegtrace " + " ".join(argv), flush=True)
    code = jpegtrace(argv)
    if code not in (0, 1):
        sys.exit(f"jpegtrace {argv[0]} failed with exit status {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "scratch" / "readme"), help="folder for the inputs and results")
    parser.add_argument("--figures", default=str(ROOT / "docs" / "figures"), help="where the figures go")
    parser.add_argument("--model", help="weights to use instead of the shipped model (for trying the script)")
    args = parser.parse_args()
    work, figures = Path(args.work), Path(args.figures)
    model = ["--model", args.model] if args.model else []

    clean = work / "clean"
    clean.mkdir(parents=True, exist_ok=True)
    photos = {name: downscale(getattr(data, name)(), factor) for name, factor in COLOUR_PHOTOS.items()}
    for name, array in photos.items():
        Image.fromarray(array).save(clean / f"{name}.png")

    # Fig. 2 and Table 1
    run(["evaluate", "--data", str(clean), "--out", str(work / "evaluate"), *model])

    # Fig. 3: the never-compressed astronaut with a disc pasted from a QF-80 JPEG of the coffee cup
    run(["collage", "--background", str(clean / "astronaut.png"), "--donor", str(clean / "coffee.png"),
         "--quality", "80", "--shape", "disc", "--out", str(work / "collage"), *model])

    # Figs. 4-9: a "clean" data set with hidden JPEG history
    audit = work / "dataset"
    audit.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (name, array) in enumerate(sorted(photos.items())):
        if i % 2:
            Image.fromarray(array).save(audit / f"{name}.png")
        else:  # compressed once, then saved as a PNG: looks clean, is not
            quality = int(rng.choice([30, 50, 75, 90]))
            Image.fromarray(jpeg_compress(array, quality)).save(audit / f"{name}_was_q{quality}.png")
    for name, factor in GRAY_PHOTOS.items():
        Image.fromarray(downscale(getattr(data, name)(), factor)).save(audit / f"{name}_gray.png")
    sample_dir = Path(data.__file__).parent
    for name in SHIPPED_JPEGS:
        with Image.open(sample_dir / name) as im:  # the JPEGs scikit-image ships, cropped to 256 px losslessly
            im.crop((0, 0, min(256, im.width), min(256, im.height))).save(audit / f"skimage_{Path(name).stem}.png")
    (audit / "truncated.png").write_bytes((clean / "coffee.png").read_bytes()[:200])
    run(["assess", str(audit), "--out", str(work / "assess"), *model])

    figures.mkdir(parents=True, exist_ok=True)
    for source, target in ((work / "evaluate" / "fig2_quality.png", "evaluate_fig2.png"),
                           (work / "collage" / "collage.png", "collage_fig3.png"),
                           (work / "assess" / "qf_histogram.png", "assess_histogram.png")):
        shutil.copyfile(source, figures / target)
        print(f"wrote {figures / target}")


if __name__ == "__main__":
    main()
