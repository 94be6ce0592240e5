import numpy as np
import pytest
from PIL import Image


def _clean_photo(array: np.ndarray, factor: int = 3) -> np.ndarray:
    image = Image.fromarray(array)
    return np.asarray(image.resize((image.width // factor, image.height // factor), Image.LANCZOS))


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A natural photo with no JPEG traces: scikit-image's astronaut, downscaled 3x (170x170)."""
    from skimage import data

    return _clean_photo(data.astronaut())


@pytest.fixture(scope="session")
def photos(photo) -> dict[str, np.ndarray]:
    """A few small never-compressed natural photos from scikit-image, by name."""
    from skimage import data

    return {"astronaut": photo, "chelsea": _clean_photo(data.chelsea(), 2), "coffee": _clean_photo(data.coffee(), 3)}


@pytest.fixture
def image_folder(tmp_path, photos):
    """A folder of never-compressed PNGs and a split CSV (two train, one val)."""
    folder = tmp_path / "clean"
    folder.mkdir()
    for name, array in photos.items():
        Image.fromarray(array).save(folder / f"{name}.png")
    split = tmp_path / "split.csv"
    split.write_text("file,split\nastronaut.png,train\nchelsea.png,train\ncoffee.png,val\n")
    return folder, split
