"""Images in the forms the evaluation accepts (tensors, arrays, PIL images, folders), brought to one tensor."""

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from .image_utils import image_files, to_eight_bit

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

ImageInput = torch.Tensor | np.ndarray | Sequence[PIL.Image.Image] | str | os.PathLike


def load_image_folder(folder: str | os.PathLike, argument: str = "`images`") -> list[PIL.Image.Image]:
    """Read every image of a folder and its subfolders, sorted by path.

    Args:
        folder (`str` or `os.PathLike`): The folder.
        argument (`str`, *optional*, defaults to ``"`images`"``): The argument the folder came from, named in errors.

    Returns:
        `list[PIL.Image.Image]`: the images.
    """
    return load_image_files(image_file_paths(folder, argument), argument)


def image_file_paths(folder: str | os.PathLike, argument: str = "`images`") -> list[Path]:
    """The image files of a folder and its subfolders, sorted by path, without hidden files and folders and folders
    named `__*` (see `image_utils.image_files`).

    Args:
        folder (`str` or `os.PathLike`): The folder.
        argument (`str`, *optional*, defaults to ``"`images`"``): The argument the folder came from, named in errors.

    Returns:
        `list[Path]`: the paths, at least one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{argument} {str(folder)!r} is not a directory.")
    paths = sorted(image_files(folder, IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(
            f"{argument} folder {str(folder)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}), outside hidden "
            "files and folders and folders named `__*` such as `__MACOSX`."
        )
    return paths


def load_image_files(paths: Sequence[str | os.PathLike], argument: str = "`images`") -> list[PIL.Image.Image]:
    """Read image files, fully, in the given order; 16-bit grayscale is scaled to 8 bits (`image_utils.to_eight_bit`).

    Args:
        paths (`Sequence[str | os.PathLike]`): The files.
        argument (`str`, *optional*, defaults to ``"`images`"``): The argument the files came from, named in errors.

    Returns:
        `list[PIL.Image.Image]`: the images.

    Raises:
        `ValueError`: naming a file that PIL cannot read, or one of floating-point pixels.
    """
    images = []
    for path in paths:
        try:
            with PIL.Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"{argument}: cannot read the image file {str(path)!r}: {error}.") from error
        images.append(to_eight_bit(image, f"{argument} image {str(path)!r}"))
    return images


def to_image_tensor(images: ImageInput, argument: str = "`images`") -> torch.Tensor:
    """Bring images in any accepted form to one [N, C, H, W] tensor.

    Args:
        images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
            A tensor or array of shape [N, C, H, W] (C is 1 or 3) or [N, H, W], either uint8 with values 0-255 or
            floating point with values in [0, 1]; a list of PIL images of one size (kept grayscale if all are mode
            "L", converted to RGB otherwise); or a folder of image files (see `load_image_folder`).
        argument (`str`, *optional*, defaults to ``"`images`"``): The argument the images came from, named in the
            errors about folders and PIL images.

    Returns:
        `torch.Tensor`: uint8 (0-255) or float32 ([0, 1]) tensor of shape [N, C, H, W], C 1 or 3, on the device of
        the input.
    """
    if isinstance(images, (str, os.PathLike)):
        images = load_image_folder(images, argument)
    if isinstance(images, (list, tuple)):
        images = stack_pil_images(images, argument)
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images if images.flags.writeable else images.copy())
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            "`images` must be a tensor, a numpy array, a list of PIL images or a folder path, got "
            f"{type(images).__name__}."
        )
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            "`images` must have shape [N, C, H, W] with C 1 or 3, or [N, H, W], and at least one image; got shape "
            f"{list(images.shape)}."
        )
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(f"`images` must be uint8 (0-255) or floating point ([0, 1]), got {images.dtype}.")
    images = images.float()
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError(
            f"Floating point `images` must have finite values in [0, 1], got values in [{images.min().item()}, "
            f"{images.max().item()}]; map outputs in [-1, 1] with `(images + 1) / 2`."
        )
    return images


def stack_pil_images(images: Sequence[PIL.Image.Image], argument: str = "`images`") -> torch.Tensor:
    """Stack PIL images of one size into a uint8 tensor [N, 1, H, W] (all mode "L", or 16-bit grayscale scaled to 8
    bits) or [N, 3, H, W]; `argument` names them in errors."""
    if not images or not all(isinstance(image, PIL.Image.Image) for image in images):
        raise ValueError(f"A list or tuple of {argument} must hold at least one image, and only PIL images.")
    images = [to_eight_bit(image, f"{argument} image {index}") for index, image in enumerate(images)]
    sizes = {image.size for image in images}
    if len(sizes) > 1:
        raise ValueError(f"All {argument} must have the same size, got sizes {sorted(sizes)}.")
    if all(image.mode == "L" for image in images):
        return torch.from_numpy(np.stack([np.asarray(image) for image in images]))
    arrays = np.stack([np.asarray(image.convert("RGB")) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2)


def float_batches(images: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Yield consecutive batches of an image tensor from `to_image_tensor` as float32 in [0, 1] on `device`."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        yield batch.float() / 255 if batch.dtype == torch.uint8 else batch
