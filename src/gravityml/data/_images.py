"""Images as rows: a folder with one sub-folder per class, or a folder of files to score.

Every image becomes one row of pixel columns, ``pixel_R_C`` for grey images (the names scikit-learn's
digits get, so both train the same networks) and ``pixel_K_R_C`` for channel K of colour images,
with values 0..255. The class is the sub-folder's name, in column ``label``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.data._io import Table
from gravityml.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
LABEL = "label"


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def is_image_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file())


def pixel_columns(channels: int, height: int, width: int) -> list[str]:
    if channels == 1:
        return [f"pixel_{r}_{c}" for r in range(height) for c in range(width)]
    return [f"pixel_{k}_{r}_{c}" for k in range(channels) for r in range(height) for c in range(width)]


def _read(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype="float32")
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(
            f"{str(path)!r} is not a readable image ({type(exc).__name__})",
            allowed=sorted(IMAGE_SUFFIXES),
            got=path.name,
            fix="remove or replace the file",
        ) from None
    return array[None, :, :] if array.ndim == 2 else array.transpose(2, 0, 1)


def _first_mode_and_size(files: list[Path]) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    with Image.open(files[0]) as img:
        mode = "L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
        return mode, (img.size[1], img.size[0])


def load_image_folder(path: Path, *, size: list[int] | None = None, mode: str | None = None) -> Table:
    """A labelled image folder (``path/CLASS/*.png``) as a Table of pixel rows and ``label``.

    ``size`` is [height, width] (default: the first image's); ``mode`` ``L`` (grey) or ``RGB``
    (default: the first image's). Images of other sizes are resized.
    """
    classes = sorted(p for p in path.iterdir() if p.is_dir() and image_files(p))
    if len(classes) < 1:
        raise DataError(
            f"data.source: folder {str(path)!r} has no sub-folders with images",
            allowed="one sub-folder per class holding PNG/JPEG files",
            got=sorted(p.name for p in path.iterdir())[:10],
            fix="arrange the images as FOLDER/CLASS_NAME/*.png",
        )
    files = [(f, c.name) for c in classes for f in image_files(c)]
    first_mode, first_size = _first_mode_and_size([f for f, _ in files])
    mode = mode or first_mode
    shape = tuple(size) if size else first_size
    pixels = np.stack([_read(f, mode, shape) for f, _ in files]).reshape(len(files), -1)  # type: ignore[arg-type]
    channels = 1 if mode == "L" else 3
    frame = pd.DataFrame(pixels, columns=pixel_columns(channels, shape[0], shape[1]))
    frame[LABEL] = [label for _, label in files]
    digest = hashlib.sha256()
    for f, _ in files:
        digest.update(str(f.relative_to(path)).encode())
        digest.update(f.read_bytes())
    return Table(
        frame=frame,
        uri=path.resolve().as_uri(),
        fingerprint="sha256:" + digest.hexdigest(),
        format="images",
        size_bytes=sum(f.stat().st_size for f, _ in files),
    )


def read_image_files(path: Path, image: dict[str, Any]) -> pd.DataFrame:
    """Every image under ``path`` as a row for a model trained on images (``model.meta['image']``).

    Images are converted to the model's channels and size, and 0..255 is scaled to the range the
    model was trained on (0..16 for scikit-learn's digits). Column ``file`` names each image.
    """
    files = image_files(path)
    if not files:
        raise DataError(
            f"input folder {str(path)!r} holds no images",
            allowed=sorted(IMAGE_SUFFIXES),
            got=sorted(p.name for p in path.iterdir())[:10],
            fix="put PNG or JPEG files in the folder",
        )
    channels, height, width = image["shape_chw"]
    mode = "L" if channels == 1 else "RGB"
    pixels = np.stack([_read(f, mode, (height, width)) for f in files]).reshape(len(files), -1)
    pixels = pixels * (float(image.get("value_max", 255.0)) / 255.0)
    frame = pd.DataFrame(pixels.astype("float64"), columns=pixel_columns(channels, height, width))
    frame.insert(0, "file", [str(f.relative_to(path)) for f in files])
    return frame


def write_image(path: Path, pixels: np.ndarray, value_max: float) -> Path:
    """Save one (H, W) or (C, H, W) array with values 0..value_max as an 8-bit image file."""
    from PIL import Image

    array = np.clip(np.rint(np.asarray(pixels, dtype="float64") * 255.0 / value_max), 0, 255).astype("uint8")
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
