"""Image helpers shared by the training script and the command line."""

import math

import PIL.Image


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
