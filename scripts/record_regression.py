"""Record the shipped model's estimates on fixed images, which tests/test_shipped_model.py pins (±0.5 QF).

    python scripts/record_regression.py --out docs/model/qfnet-v11/regression.json

The images are scikit-image's samples (never the training set), downscaled 3x with a Lanczos filter and
JPEG-compressed by Pillow: astronaut at QF 40 (4:2:0), coffee at QF 75 (4:4:4), camera (grayscale) at QF 90,
and astronaut as it is. Recorded: the network's median and mean quality and its mean flag (evidence-weighted, as
analyze gives them), the verdict, and the weights' SHA-256, so that a change of the numbers is traced to a change of weights
or of code.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from jpegtrace import analyze
from jpegtrace.io import downscale, write_json
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.weights import default_weights_path


def fixed_images() -> dict[str, np.ndarray]:
    """The images the regression test pins, by name."""
    from skimage import data

    astronaut = downscale(data.astronaut(), 3)
    return {"astronaut_q40_420": jpeg_compress(astronaut, 40, "4:2:0"),
            "coffee_q75_444": jpeg_compress(downscale(data.coffee(), 3), 75, "4:4:4"),
            "camera_q90_gray": jpeg_compress(downscale(np.stack([data.camera()] * 3, axis=2), 3)[:, :, 0], 90),
            "astronaut_clean": astronaut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    records = {}
    for name, image in fixed_images().items():
        result = analyze(image)
        records[name] = {"median_quality": result.median_quality, "mean_quality": result.mean_quality,
                         "mean_flag": result.mean_flag, "verdict": result.verdict}
    digest = hashlib.sha256(default_weights_path().read_bytes()).hexdigest()
    write_json(args.out, {"weights_sha256": digest, "command": "python scripts/record_regression.py --out " + args.out,
                          "images": records})


if __name__ == "__main__":
    main()
