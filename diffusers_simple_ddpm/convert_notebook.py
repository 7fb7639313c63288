"""Turns a checkpoint of the teaching notebook's `SimpleUNet` into a `SimpleDDPMPipeline` folder."""

import os

import torch

from .modeling_simple_unet import SimpleUNet2DModel
from .pipeline_simple_ddpm import SimpleDDPMPipeline
from .scheduling_simple_ddpm import SimpleDDPMScheduler

# The notebook's `DiffusionModel` wraps the network as `self.model`, so its state_dict prefixes every key with this.
DIFFUSION_MODEL_PREFIX = "model."


def load_notebook_state_dict(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """
    Reads a notebook checkpoint saved with `torch.save(model.state_dict(), path)`, safely.

    The file is read with `torch.load(weights_only=True)`: a pickled whole model, or any file holding arbitrary Python
    objects, is refused. A state_dict of the notebook's `DiffusionModel` wrapper (keys starting with `model.`) is
    accepted too.

    Args:
        checkpoint_path (`str` or `os.PathLike`): Path of the `.pt`/`.pth` file.

    Returns:
        `dict[str, torch.Tensor]`: the `SimpleUNet` state_dict.
    """
    if os.path.isdir(checkpoint_path):
        raise ValueError(
            f"`checkpoint` {checkpoint_path} is a directory; give the file written by "
            "`torch.save(unet.state_dict(), path)`."
        )
    if not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"`checkpoint` {checkpoint_path} does not exist.")
    try:
        state_dict = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception as error:
        # A file that is not a torch checkpoint fails with whatever the unpickler meets first: `KeyError: 101` for a
        # text file, `UnpicklingError`, `RuntimeError` (not a zip archive), `EOFError` (empty), ...
        raise ValueError(
            f"`checkpoint` {checkpoint_path} could not be read as a plain state_dict with torch.load(weights_only=True). "
            "Save the notebook network with `torch.save(unet.state_dict(), path)`; whole pickled models and files "
            f"holding other Python objects are refused for safety. ({error.__class__.__name__}: {str(error)[:200]})"
        ) from error
    if not isinstance(state_dict, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state_dict.items()
    ):
        raise ValueError(
            f"`checkpoint` {checkpoint_path} holds a {type(state_dict).__name__}, not a state_dict of tensors by "
            "parameter name; save it "
            "with `torch.save(unet.state_dict(), path)`."
        )
    if state_dict and all(key.startswith(DIFFUSION_MODEL_PREFIX) for key in state_dict):
        state_dict = {key[len(DIFFUSION_MODEL_PREFIX) :]: value for key, value in state_dict.items()}
    return state_dict


def convert_notebook_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    sample_size: int = 32,
) -> SimpleDDPMPipeline:
    """
    Builds a `SimpleDDPMPipeline` from a notebook `SimpleUNet` state_dict and the notebook's schedule (linear β from
    1e-4 to 0.02 over 1000 steps, ε-prediction, posterior variance), and saves it when `output_dir` is given.

    The channel count and the time embedding width are read off the weights; the state_dict must then load with
    `strict=True`.

    Args:
        checkpoint_path (`str` or `os.PathLike`): The notebook checkpoint (see `load_notebook_state_dict`).
        output_dir (`str` or `os.PathLike`, *optional*): Where to write the pipeline with `save_pretrained`: a new or
            empty folder, so that no model card or component of another pipeline stays beside the converted one.
        sample_size (`int`, *optional*, defaults to 32): The resolution the network was trained at (a multiple of 4);
            the notebook's own example trains at 32.

    Returns:
        [`SimpleDDPMPipeline`]: the pipeline, with the converted weights.
    """
    if output_dir is not None and os.path.isdir(output_dir) and os.listdir(output_dir):
        raise ValueError(
            f"`output_dir` {os.fspath(output_dir)} is not empty: the converted pipeline would sit beside what is there "
            "(a model card, sample grid or component of another pipeline). Give a new or empty folder."
        )
    state_dict = load_notebook_state_dict(checkpoint_path)
    missing = [key for key in ("conv1.weight", "final.weight", "time_mlp.0.weight") if key not in state_dict]
    if missing:
        raise ValueError(
            f"`checkpoint` {checkpoint_path} is not a notebook SimpleUNet state_dict: it lacks {missing} "
            f"(found keys such as {list(state_dict)[:5]})."
        )
    unet = SimpleUNet2DModel(
        sample_size=sample_size,
        in_channels=state_dict["conv1.weight"].shape[1],
        out_channels=state_dict["final.weight"].shape[0],
        time_embedding_dim=state_dict["time_mlp.0.weight"].shape[0],
    )
    try:
        unet.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ValueError(f"`checkpoint` {checkpoint_path} does not match the notebook SimpleUNet: {error}") from error
    pipeline = SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler())
    if output_dir is not None:
        pipeline.save_pretrained(output_dir)
    return pipeline
