import numpy as np
import pytest
from PIL import Image

from jpegtrace.io import downscale

#: How far float32 sums of the block scores' DCT in another order (numpy's BLAS against torch's convolution)
#: move a score, a presence value or a map: under 1e-4 on the Intel CPUs of the first sessions, up to 3.3e-4
#: on an AMD EPYC (2026-12-08), whose BLAS kernels order them otherwise. An error in the statistic moves them
#: by 0.1 or more.
FLOAT32_ORDER = 1e-3


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A natural photo with no JPEG traces: scikit-image's astronaut, downscaled 3x (170x170)."""
    from skimage import data

    return downscale(data.astronaut(), 3)


@pytest.fixture(scope="session")
def photos(photo) -> dict[str, np.ndarray]:
    """A few small never-compressed natural photos from scikit-image, by name."""
    from skimage import data

    return {"astronaut": photo, "chelsea": downscale(data.chelsea(), 2), "coffee": downscale(data.coffee(), 3)}


@pytest.fixture
def photo_folder(tmp_path, photos):
    """``photo_folder(name, height=None, width=None)``: a new folder ``tmp_path / name`` holding the
    :func:`photos` as PNGs (``astronaut.png``, ``chelsea.png``, ``coffee.png``), cropped to at most
    ``height`` x ``width``."""
    def make(name: str, height: int | None = None, width: int | None = None):
        folder = tmp_path / name
        folder.mkdir()
        for stem, array in photos.items():
            Image.fromarray(array[:height, :width]).save(folder / f"{stem}.png")
        return folder

    return make


@pytest.fixture
def image_folder(tmp_path, photo_folder):
    """A folder of never-compressed PNGs and a split CSV (two train, one val)."""
    folder = photo_folder("clean")
    split = tmp_path / "split.csv"
    split.write_text("file,split\nastronaut.png,train\nchelsea.png,train\ncoffee.png,val\n")
    return folder, split
