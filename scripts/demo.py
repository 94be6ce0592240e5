"""Make the demo images: a never-compressed photo and a fake with a disc pasted from a QF-80 JPEG.

The photos come from scikit-image's sample data. They are downscaled 3x with a Lanczos filter
first, as jpegtrace's training images are, which wipes out the traces of any JPEG compression
they went through before they were published.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from jpegtrace.eval.collage import make_collage
from jpegtrace.eval.masks import disc_mask
from jpegtrace.io import downscale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo", help="output folder (default: demo)")
    parser.add_argument("--quality", type=int, default=80, help="QF of the pasted region (default 80)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    background = downscale(data.astronaut(), 3)
    donor = downscale(data.coffee(), 3)[:, -background.shape[1]:]
    donor = donor[: background.shape[0]] if donor.shape[0] >= background.shape[0] else np.pad(
        donor, ((0, background.shape[0] - donor.shape[0]), (0, 0), (0, 0)), mode="symmetric")
    mask = disc_mask(*background.shape[:2])
    fake = make_collage(background, donor, args.quality, mask)
    Image.fromarray(background).save(out / "clean.png")
    Image.fromarray(fake).save(out / "fake.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(out / "mask.png")
    print(f"wrote {out / 'clean.png'}, {out / 'fake.png'} (disc from a QF-{args.quality} JPEG) and {out / 'mask.png'}")


if __name__ == "__main__":
    main()
