"""Image helpers shared by the training script and the command line."""

import math
import os
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import PIL.Image

# PIL modes of 16-bit grayscale (PNG, TIFF): `to_eight_bit` scales them (PIL's own conversion would clip them at 255).
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def image_files(root: str | os.PathLike, extensions: Collection[str]) -> Iterator[Path]:
    """Yield the image files of a folder and of its subfolders, folder by folder, each folder's files sorted by name.

    As in the data-file resolution of `datasets`, hidden files and folders (whose name starts with ".", such as
    `.ipynb_checkpoints/` or the `._*` AppleDouble files of macOS) and folders whose name starts with "__" (such as
    `__MACOSX/`) are skipped.

    Args:
        root (`str` or `os.PathLike`):
            The folder to walk.
        extensions (`Collection[str]`):
            The lowercase suffixes, with their dot, of the files that are images (such as ".png"); a file's suffix is
            compared in lowercase.
    """
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith((".", "__")))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in extensions:
                yield Path(folder, name)


def float_image_error(source: str) -> ValueError:
    """The error for an image of floating-point pixels (PIL mode "F"), whose range is unknown; `source` names it."""
    return ValueError(
        f"{source} has floating-point pixels (PIL mode F), whose range is unknown: save it with 8- or 16-bit pixels."
    )


def to_eight_bit(image: PIL.Image.Image, source: str) -> PIL.Image.Image:
    """
    An image of 8 bits per channel: 16-bit grayscale is scaled (65535 becomes 255, mode "L"), floating-point pixels
    are refused, other images are returned as they are.

    Args:
        image (`PIL.Image.Image`): The image.
        source (`str`): How an error names it, such as "The training image 'a.png'".
    """
    if image.mode == "F":
        raise float_image_error(source)
    if image.mode in SIXTEEN_BIT_MODES:
        pixels = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255)
        return PIL.Image.fromarray(np.round(pixels).astype(np.uint8))
    return image


def make_sample_grid(images: list[PIL.Image.Image], columns: int | None = None, scale: int = 1) -> PIL.Image.Image:
    """
    Lays images of one size out in a grid, row by row; the last row may be partly empty (black).

    Args:
        images (`list[PIL.Image.Image]`): The images, all of the same size and mode.
        columns (`int`, *optional*): Images per row; defaults to the smallest square that holds them all.
        scale (`int`, *optional*, defaults to 1): Draw every pixel as a `scale` x `scale` block (nearest neighbour), so
            that small images can be judged by eye.

    Returns:
        `PIL.Image.Image`: the grid, in the images' mode.
    """
    if not images:
        raise ValueError("`images` must hold at least one image to make a grid.")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = PIL.Image.new(images[0].mode, (columns * width, rows * height))
    for index, image in enumerate(images):
        grid.paste(image, box=(index % columns * width, index // columns * height))
    if scale != 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), PIL.Image.Resampling.NEAREST)
    return grid
