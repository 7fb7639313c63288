"""
`SimpleDDPMPipeline`: unconditional (or class-conditional) image generation with a DDPM.

This module imports only the standard library, torch and diffusers: `save_pretrained(..., include_code=True)` copies
it into a pipeline repository as the pipeline's code, which `DiffusionPipeline.from_pretrained(...,
trust_remote_code=True)` runs where the `diffusers_simple_ddpm` package is not installed. What needs the package
(downloads by repo id, model cards, `push_to_hub`) lives in `diffusers_simple_ddpm.hub_utils`, imported when used.
"""

import glob
import importlib
import inspect
import json
import math
import numbers
import os
import re
import shutil
import tempfile
from types import ModuleType
from typing import Any, Callable

import torch
from diffusers import DDPMScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import DIFFUSERS_DYNAMIC_MODULE_NAME
from diffusers.utils.torch_utils import randn_tensor

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
# Libraries whose classes `model_index.json` names and diffusers imports; a component from any other module needs its
# code in the repository to load without this package.
LOADABLE_LIBRARIES = ("diffusers", "transformers")
HUB_UTILS_MODULE = "diffusers_simple_ddpm.hub_utils"
# `save_pretrained` writes into a hidden folder of this prefix inside the target, then moves the files into place.
STAGING_PREFIX = ".save_pretrained-"
# The arguments of `push_to_hub` that `save_pretrained(..., push_to_hub=True)` passes on.
PUSH_ARGUMENTS = ("commit_message", "private", "token", "create_pr")
MODEL_CARD_NAME = "README.md"
SAMPLE_GRID_NAME = "sample_grid.png"
# The repository a model card's usage snippets load.
CARD_REPO_ID_PATTERN = re.compile(r'\.from_pretrained\("([^"]+)"')
# Where the remote-code usage section of a model card starts (a card of a pipeline saved with `include_code=True`).
REMOTE_CODE_HEADING = "\n\n### Without the package\n"


def _import_hub_utils() -> ModuleType:
    """
    Imports `diffusers_simple_ddpm.hub_utils` when a Hub feature is used.

    The import is by name, at call time, so that a copy of this module shipped as remote code runs (samples, saves)
    without the package, which only downloads by repo id, model cards and `push_to_hub` need.
    """
    try:
        return importlib.import_module(HUB_UTILS_MODULE)
    except ImportError as error:
        raise ImportError(
            "Loading by repo id, writing a model card and `push_to_hub` of SimpleDDPMPipeline need the "
            "`diffusers-simple-ddpm` package, installed from its repository (`pip install -e .` in a clone; it is not "
            "on PyPI). Without it, load a repository that carries its code with "
            "`DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)`."
        ) from error


def check_pipeline_folder(folder: str | os.PathLike) -> None:
    """
    Raises a `ValueError` that says what to pass instead when `folder` holds no saved pipeline (no `model_index.json`).

    Args:
        folder (`str` or `os.PathLike`): The folder given to `from_pretrained`.
    """
    if os.path.isfile(os.path.join(folder, DiffusionPipeline.config_name)):
        return
    if os.path.isfile(os.path.join(folder, "config.json")):
        hint = " It holds a model: load it with `SimpleUNet2DModel.from_pretrained(folder)`."
    elif os.path.isfile(os.path.join(folder, "scheduler_config.json")):
        hint = " It holds a scheduler: load it with `SimpleDDPMScheduler.from_pretrained(folder)`."
    else:
        hint = ""
    raise ValueError(
        f"{str(folder)!r} is not a saved pipeline: it has no {DiffusionPipeline.config_name}. Pass the folder that "
        "`SimpleDDPMPipeline.save_pretrained` wrote (it holds model_index.json, unet/ and scheduler/) or a Hub repo id "
        f"such as 'user/ddpm-mnist'.{hint}"
    )


def _is_integer(value: Any) -> bool:
    """Whether `value` is an integer (a Python or NumPy int), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    """Whether `value` is a finite real number (int or float, Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _sample_size_pair(sample_size: int | list[int] | tuple[int, int] | None) -> tuple[int, int] | None:
    """
    A model config's `sample_size` as a `(height, width)` tuple, so that sizes compare equal however they are stored.

    Args:
        sample_size (`int`, `list[int]` or `tuple[int, int]`, *optional*): An int for a square; a pair as a fresh
            config holds it (a tuple) or a loaded one (a list).

    Returns:
        `tuple[int, int]` or `None`: the height and width, `None` when `sample_size` is `None`.
    """
    if sample_size is None:
        return None
    if isinstance(sample_size, int):
        return (sample_size, sample_size)
    return tuple(sample_size)


def _read_model_card_files(folder: str | os.PathLike) -> dict[str, bytes]:
    """
    The model card of a pipeline folder and the sample grid beside it, by file name; empty when it has no card.

    Args:
        folder (`str` or `os.PathLike`): A pipeline folder or downloaded snapshot.
    """
    card_path = os.path.join(folder, MODEL_CARD_NAME)
    if not os.path.isfile(card_path):
        return {}
    files = {}
    for name in (MODEL_CARD_NAME, SAMPLE_GRID_NAME):
        if os.path.isfile(os.path.join(folder, name)):
            with open(os.path.join(folder, name), "rb") as file:
                files[name] = file.read()
    return files


def _write_model_card_files(
    files: dict[str, bytes],
    folder: str | os.PathLike,
    repo_id: str | None,
    pipeline: "SimpleDDPMPipeline",
    include_code: bool,
) -> None:
    """
    Writes an existing model card and its sample grid into `folder` unchanged, except for the repository its usage
    snippets load and its remote-code usage section, which follows `include_code` (see
    `hub_utils.match_remote_code_section`).

    Args:
        files (`dict[str, bytes]`): The card and the sample grid, by file name, as `_read_model_card_files` reads them.
        folder (`str` or `os.PathLike`): The folder to write them to.
        repo_id (`str`, *optional*): The repository the snippets load from now on; `None` keeps the card's own.
        pipeline ([`SimpleDDPMPipeline`]): The pipeline the card describes.
        include_code (`bool`): Whether `folder` carries the pipeline's code.
    """
    for name, data in files.items():
        if name == MODEL_CARD_NAME:
            card = data.decode("utf-8")
            match = CARD_REPO_ID_PATTERN.search(card)
            if match is not None and repo_id is not None:
                card = card.replace(f'.from_pretrained("{match.group(1)}"', f'.from_pretrained("{repo_id}"')
            snippet_repo_id = repo_id or (match.group(1) if match is not None else None)
            # Only a card whose section must change needs the package (a remote-code copy saves without it).
            if snippet_repo_id is not None and (REMOTE_CODE_HEADING in card) != include_code:
                card = _import_hub_utils().match_remote_code_section(card, pipeline, snippet_repo_id, include_code)
            data = card.encode("utf-8")
        with open(os.path.join(folder, name), "wb") as file:
            file.write(data)


def _copy_module_source(cls: type, folder: str | os.PathLike) -> str:
    """Copies the source file of the module that defines `cls` into `folder` and returns the module's name."""
    source_file = inspect.getsourcefile(cls)
    module_name = os.path.splitext(os.path.basename(source_file))[0]
    shutil.copyfile(source_file, os.path.join(folder, f"{module_name}.py"))
    return module_name



def _relative_file_paths(folder: str | os.PathLike) -> list[str]:
    """The files under `folder`, as sorted paths relative to it with `/` separators."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
        for root, _, names in os.walk(folder)
        for name in names
    )


def _move_export(staging: str | os.PathLike, save_directory: str | os.PathLike, files: list[str]) -> None:
    """
    Moves a complete export from `staging` into `save_directory`, over the previous one, file by file.

    Each file replaces its predecessor with an atomic `os.replace`, `model_index.json` last, so every file of the
    folder is complete at every moment. Then the files of the previous export that the new one lacks (the shards and
    index of earlier sharded weights, say) are removed from the component folders it writes, which hold the export
    alone; other files of `save_directory` (checkpoints, logs) are left alone.

    Args:
        staging (`str` or `os.PathLike`): The folder holding the complete export, on the same file system.
        save_directory (`str` or `os.PathLike`): The pipeline folder.
        files (`list[str]`): The files of the export, relative to `staging`.
    """
    for relative in sorted(files, key=lambda relative: relative == DiffusionPipeline.config_name):
        target = os.path.join(save_directory, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(staging, relative), target)
    kept = set(files)
    for component in {relative.split("/")[0] for relative in files if "/" in relative}:
        for relative in _relative_file_paths(os.path.join(save_directory, component)):
            if f"{component}/{relative}" not in kept:
                os.remove(os.path.join(save_directory, component, relative))


class SimpleDDPMPipeline(DiffusionPipeline):
    r"""
    Pipeline for image generation with a denoising diffusion model.

    It runs any diffusers scheduler (`SimpleDDPMScheduler`, `DDPMScheduler`, `DDIMScheduler`,
    `DPMSolverMultistepScheduler`, `EulerDiscreteScheduler`, ...) with any image model that takes
    `(sample, timestep)` and returns `.sample` (`SimpleUNet2DModel`, diffusers' `UNet2DModel`).

    Args:
        unet ([`SimpleUNet2DModel`] or [`~diffusers.UNet2DModel`]): The denoising model.
        scheduler ([`SchedulerMixin`]): The scheduler used with `unet` to denoise the image.
        class_names (`list[str]`, *optional*): Names of the classes of a class-conditional `unet`, in label order, so
            that `class_labels` may be given by name.
        guidance_unet ([`SimpleUNet2DModel`] or [`~diffusers.UNet2DModel`], *optional*): A weaker version of an
            unconditional `unet` (the same network after a fraction of its training), for autoguidance ([Karras et al.
            2024](https://huggingface.co/papers/2406.02507)): with `guidance_scale > 1` every step mixes the two
            predictions as `weak + guidance_scale * (strong - weak)`, steering the samples away from the weak model's
            errors; the training program saves one with every unconditional run (`--autoguidance_fraction`).

    Attributes:
        training_details ([`~diffusers_simple_ddpm.hub_utils.TrainingDetails`], *optional*): What the training run
            did, set by the trainer. When it is set, `save_pretrained` also writes the model card (`README.md`) and the
            sample grid; `push_to_hub` always uploads a model card, with a training section only when it is set.
        model_card_files (`dict[str, bytes]`): The model card (`README.md`) and the sample grid beside it of the
            folder or repository `from_pretrained` loaded, by file name; empty for a pipeline built here. Without
            `training_details`, `save_pretrained` and `push_to_hub` write this card (and grid) unchanged, its usage
            snippets loading the repository pushed to and its section on loading without the package there exactly
            when `include_code` is, rather than a card without a record of the training.
    """

    model_cpu_offload_seq = "unet->guidance_unet"
    _optional_components = ["guidance_unet"]
    _callback_tensor_inputs = ["latents"]

    def __init__(self, unet, scheduler, class_names: list[str] | None = None, guidance_unet=None):
        super().__init__()
        if getattr(unet.config, "cross_attention_dim", None) is not None:
            raise ValueError(
                f"The `unet` is text-conditional (`cross_attention_dim` is {unet.config.cross_attention_dim}): load it "
                "with `SimpleDDPMTextPipeline`, which runs its text encoder."
            )
        if guidance_unet is not None:
            self.check_guidance_unet(unet, guidance_unet)
        self.register_modules(unet=unet, scheduler=scheduler, guidance_unet=guidance_unet)
        self.register_to_config(class_names=list(class_names) if class_names is not None else None)
        self.training_details = None
        self.model_card_files = {}

    @staticmethod
    def check_guidance_unet(unet, guidance_unet) -> None:
        """
        Raises a `ValueError` unless `guidance_unet` can guide `unet`: both unconditional, with the same image shape.

        Args:
            unet (`torch.nn.Module`): The denoising model.
            guidance_unet (`torch.nn.Module`): The weaker model that autoguidance steers away from.
        """
        for name, model in (("unet", unet), ("guidance_unet", guidance_unet)):
            if getattr(model.config, "num_class_embeds", None) is not None:
                raise ValueError(
                    f"`guidance_unet` is for unconditional models, but the `{name}` is class-conditional "
                    "(`num_class_embeds` is set): a class-conditional pipeline guides with its own unconditional "
                    "prediction (classifier-free guidance), so leave `guidance_unet` at None."
                )
        shapes = [
            {
                "sample_size": _sample_size_pair(getattr(model.config, "sample_size", None)),
                "in_channels": getattr(model.config, "in_channels", None),
                "out_channels": getattr(model.config, "out_channels", None),
            }
            for model in (unet, guidance_unet)
        ]
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"`guidance_unet` must take and give images of the `unet`'s shape ({shapes[0]}), got {shapes[1]}."
            )

    @property
    def num_classes(self) -> int | None:
        """The number of classes of a class-conditional `unet`, `None` for an unconditional one."""
        return getattr(self.unet.config, "num_class_embeds", None)

    def _image_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        height, width = _sample_size_pair(self.unet.config.sample_size)
        return (batch_size, self.unet.config.in_channels, height, width)

    @property
    def guidance_scale(self) -> float:
        """The guidance scale of the running call; a step-end callback may change `_guidance_scale`."""
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """
        Whether the current step mixes two predictions (`guidance_scale > 1`): conditional and unconditional for a
        class-conditional unet, the unet's and the `guidance_unet`'s for an unconditional one.
        """
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        """The number of denoising steps of the running call, as the scheduler set them."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """
        Whether the running call skips its remaining denoising steps; a step-end callback sets `_interrupt = True` to
        stop early, and the call returns the latents as they are.
        """
        return self._interrupt

    @property
    def has_unconditional_class(self) -> bool:
        """
        Whether the class-conditional `unet` has a "no class" embedding, the extra row at index `num_classes` that
        classifier-free guidance conditions its unconditional prediction on. `SimpleUNet2DModel` has it; diffusers'
        `UNet2DModel` has exactly `num_class_embeds` rows.
        """
        embedding = getattr(self.unet, "class_embedding", None)
        is_embedding = isinstance(embedding, torch.nn.Embedding) and self.num_classes is not None
        return is_embedding and embedding.num_embeddings > self.num_classes

    def prepare_class_labels(
        self, class_labels: int | str | list[int | str] | torch.Tensor | None, batch_size: int
    ) -> torch.Tensor | None:
        """
        Turns `class_labels` into a long tensor of shape `(batch_size,)` on the pipeline's execution device (the
        unet's device, or with model offloading the device it computes on).

        Args:
            class_labels (`int`, `str`, `list` or `torch.Tensor`, *optional*): One label for the whole batch, or one per
                image; a label is a class index or, when the pipeline knows `class_names`, a class name.
            batch_size (`int`): The number of images.

        Returns:
            `torch.Tensor` or `None`: the labels, `None` when `class_labels` is `None`.
        """
        if class_labels is None:
            return None
        if self.num_classes is None:
            raise ValueError(
                "`class_labels` were given, but this pipeline's unet is unconditional (its config has no "
                "`num_class_embeds`)."
            )
        if isinstance(class_labels, torch.Tensor):
            if class_labels.dtype == torch.bool or class_labels.is_floating_point() or class_labels.is_complex():
                raise ValueError(
                    f"`class_labels` must be class indices: a tensor of an integer dtype, got {class_labels.dtype}."
                )
            labels = class_labels.reshape(-1).long().cpu()
        else:
            names = self.config.class_names or []
            entries = class_labels if isinstance(class_labels, (list, tuple)) else [class_labels]
            indices = []
            for entry in entries:
                if isinstance(entry, str):
                    if entry not in names:
                        raise ValueError(f"`class_labels` has the unknown class name {entry!r}; known names: {names}.")
                    entry = names.index(entry)
                elif isinstance(entry, bool) or not isinstance(entry, numbers.Integral):
                    raise ValueError(
                        f"`class_labels` must hold class indices (int) or class names (str), got {entry!r} "
                        f"({type(entry).__name__})."
                    )
                indices.append(int(entry))
            labels = torch.tensor(indices, dtype=torch.long)
        if labels.numel() == 1:
            labels = labels.expand(batch_size)
        if labels.numel() != batch_size:
            raise ValueError(
                f"`class_labels` holds {labels.numel()} labels, but `batch_size` is {batch_size}: give one label or one "
                "per image."
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"`class_labels` must lie in [0, {self.num_classes - 1}] (the unet has {self.num_classes} classes), got "
                f"{labels.tolist()}."
            )
        return labels.to(self._execution_device)

    def prepare_extra_step_kwargs(self, generator: torch.Generator | list[torch.Generator] | None, eta: float) -> dict:
        """Passes `eta` and `generator` only to a scheduler whose `step` takes them."""
        step_parameters = set(inspect.signature(self.scheduler.step).parameters)
        extra_step_kwargs = {}
        if "eta" in step_parameters:
            extra_step_kwargs["eta"] = eta
        if "generator" in step_parameters:
            extra_step_kwargs["generator"] = generator
        return extra_step_kwargs

    def predict_model_output(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        class_labels: torch.Tensor | None,
        guidance_scale: float,
    ) -> torch.Tensor:
        """
        Runs the model once on `latents` and returns its output, the noise, clean sample or velocity that the model was
        trained to predict (its scheduler's `prediction_type`). With classifier-free guidance (`guidance_scale > 1` and
        class labels), the conditional and unconditional halves run in one batched forward pass and are mixed as
        `uncond + guidance_scale * (cond - uncond)`; with autoguidance (`guidance_scale > 1`, no class labels and a
        `guidance_unet`), the weak model's prediction is mixed in the same way, `weak + guidance_scale * (strong -
        weak)`.

        Args:
            latents (`torch.Tensor`): The scaled model input.
            timestep (`torch.Tensor`): The current timestep.
            class_labels (`torch.Tensor`, *optional*): The labels of a class-conditional model.
            guidance_scale (`float`): The guidance scale; 1.0 or less means a plain conditional pass.
        """
        if class_labels is None:
            prediction = self.unet(latents, timestep).sample
            if guidance_scale <= 1.0:
                return prediction
            # The guide may hold another dtype (`from_pretrained(..., dtype={"unet": ...})`): its input and output follow.
            guide_input = latents.to(self.guidance_unet.dtype)
            weak_prediction = self.guidance_unet(guide_input, timestep).sample.to(prediction.dtype)
            return weak_prediction + guidance_scale * (prediction - weak_prediction)
        if guidance_scale <= 1.0:
            return self.unet(latents, timestep, class_labels=class_labels).sample
        null_labels = torch.full_like(class_labels, self.num_classes)
        prediction = self.unet(
            torch.cat([latents, latents]), timestep, class_labels=torch.cat([class_labels, null_labels])
        ).sample
        conditional, unconditional = prediction.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def check_inputs(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        num_inference_steps: int,
        output_type: str,
        latents: torch.Tensor | None,
        eta: float,
        class_labels: int | str | list[int | str] | torch.Tensor | None,
        guidance_scale: float,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """Raises a `ValueError` naming the first argument of `__call__` that is of the wrong kind or out of range."""
        if not _is_integer(batch_size) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r} ({type(batch_size).__name__}).")
        generators = generator if isinstance(generator, list) else [generator]
        if generator is not None and not all(isinstance(entry, torch.Generator) for entry in generators):
            raise ValueError(
                "`generator` must be a torch.Generator, a list of one torch.Generator per image, or None, got "
                f"{generator!r}. To seed, pass `torch.Generator().manual_seed(seed)`."
            )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"`generator` is a list of {len(generator)} generators, but `batch_size` is {batch_size}: give one "
                "generator per image."
            )
        if not _is_integer(num_inference_steps) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive int, got {num_inference_steps!r}.")
        num_train_timesteps = self.scheduler.config.get("num_train_timesteps")
        if num_train_timesteps is not None and num_inference_steps > num_train_timesteps:
            raise ValueError(
                f"`num_inference_steps` must be at most the scheduler's {num_train_timesteps} training steps "
                f"(`num_train_timesteps`), got {num_inference_steps}."
            )
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if latents is not None:
            if not isinstance(latents, torch.Tensor):
                raise ValueError(
                    f"`latents` must be a torch.Tensor, got {type(latents).__name__}; convert an array with "
                    "`torch.from_numpy(array)`."
                )
            if tuple(latents.shape) != self._image_shape(batch_size):
                raise ValueError(
                    f"`latents` must have shape {self._image_shape(batch_size)} for `batch_size` {batch_size}, got "
                    f"{tuple(latents.shape)}."
                )
            if not torch.isfinite(latents).all():
                raise ValueError("`latents` holds NaN or infinite values; give finite noise, such as `torch.randn`.")
        if not _is_finite_number(eta) or eta < 0:
            raise ValueError(
                f"`eta` must be a finite number of at least 0 (0: deterministic DDIM, 1: DDPM-like noise), got {eta!r}."
            )
        if not _is_finite_number(guidance_scale) or guidance_scale < 0:
            raise ValueError(
                "`guidance_scale` must be a finite number of at least 0 (1.0 or less means no guidance, as in "
                f"diffusers' pipelines), got {guidance_scale!r}."
            )
        if guidance_scale > 1.0 and self.num_classes is None and self.guidance_unet is None:
            raise ValueError(
                f"`guidance_scale` is {guidance_scale}, but this pipeline's unet is unconditional (its config has no "
                "`num_class_embeds`) and it has no `guidance_unet`: guidance needs a class-conditional unet "
                "(classifier-free guidance) or a `guidance_unet` (autoguidance). Leave `guidance_scale` at 1.0."
            )
        if guidance_scale > 1.0 and self.num_classes is not None and not self.has_unconditional_class:
            raise ValueError(
                f"`guidance_scale` is {guidance_scale}, but this pipeline's unet ({type(self.unet).__name__}) has no "
                "\"no class\" embedding: classifier-free guidance needs one for its unconditional prediction (class "
                f"index {self.num_classes}, an extra embedding that SimpleUNet2DModel has and this unet does not). "
                "Leave `guidance_scale` at 1.0 (or less) with this unet."
            )
        if guidance_scale > 1.0 and self.num_classes is not None and class_labels is None:
            raise ValueError(
                f"`guidance_scale` is {guidance_scale}, but no `class_labels` were given: guidance pushes each image "
                "towards its class. Pass `class_labels`, or leave `guidance_scale` at 1.0."
            )
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` has {unknown}; allowed: {self._callback_tensor_inputs}."
            )

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 1000,
        output_type: str = "pil",
        return_dict: bool = True,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        callback_on_step_end: Callable[["SimpleDDPMPipeline", int, torch.Tensor, dict], dict]
        | PipelineCallback
        | MultiPipelineCallbacks
        | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
        class_labels: int | str | list[int | str] | torch.Tensor | None = None,
        guidance_scale: float = 1.0,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Generates images.

        Args:
            batch_size (`int`, *optional*, defaults to 1): The number of images to generate.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): Makes generation deterministic. A list
                holds one generator per image, and each image is then what a one-image run with its generator gives.
            num_inference_steps (`int`, *optional*, defaults to 1000): The number of denoising steps.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"` (`PIL.Image.Image`, mode `"L"` for grayscale),
                `"np"` (`np.ndarray` of shape `(batch, height, width, channels)` in [0, 1]), `"pt"` (`torch.Tensor` of
                shape `(batch, channels, height, width)` in [0, 1]) or `"latent"` (the final latents, unconverted).
            return_dict (`bool`, *optional*, defaults to `True`): Whether to return an `ImagePipelineOutput` or a tuple.
            latents (`torch.Tensor`, *optional*): Initial noise of shape `(batch, channels, height, width)`; drawn with
                `generator` when not given. It is scaled by the scheduler's `init_noise_sigma` for the chosen steps.
            eta (`float`, *optional*, defaults to 0.0): η of DDIM, at least 0; passed only to schedulers whose `step`
                takes it.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*): Called as
                `callback_on_step_end(self, step_index, timestep, callback_kwargs)` after every step; it may return a
                dict that replaces `latents`, may change `self._guidance_scale` for the following steps, and may set
                `self._interrupt = True` to skip the remaining steps (the current latents are then returned).
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*, defaults to `["latents"]`): The tensors put in
                `callback_kwargs`, from `_callback_tensor_inputs`; a `PipelineCallback` names its own.
            class_labels (`int`, `str`, `list` or `torch.Tensor`, *optional*): For a class-conditional unet, the class of
                every image (one label for all, or one per image), as indices or as names from `class_names`.
            guidance_scale (`float`, *optional*, defaults to 1.0): Classifier-free guidance scale for a class-conditional
                unet with `class_labels`, or autoguidance scale for an unconditional unet with a `guidance_unet`; 1.0
                or less means no guidance, as in diffusers' pipelines.

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the generated images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(
            batch_size,
            generator,
            num_inference_steps,
            output_type,
            latents,
            eta,
            class_labels,
            guidance_scale,
            callback_on_step_end_tensor_inputs,
        )
        labels = self.prepare_class_labels(class_labels, batch_size)
        self._guidance_scale = guidance_scale
        self._interrupt = False

        # Where the models compute: with model offloading (`enable_model_cpu_offload`) they rest on the CPU.
        device = self._execution_device
        # The timesteps come first: Euler-like schedulers' initial noise level (`init_noise_sigma`) depends on them.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        if latents is None:
            latents = randn_tensor(
                self._image_shape(batch_size), generator=generator, device=device, dtype=self.unet.dtype
            )
        latents = latents.to(device=device, dtype=self.unet.dtype) * self.scheduler.init_noise_sigma
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step_index, timestep in enumerate(timesteps):
                if self.interrupt:
                    continue
                model_input = self.scheduler.scale_model_input(latents, timestep)
                model_output = self.predict_model_output(model_input, timestep, labels, self.guidance_scale)
                latents = self.scheduler.step(model_output, timestep, latents, **extra_step_kwargs).prev_sample
                if callback_on_step_end is not None:
                    step_tensors = {"latents": latents}
                    callback_kwargs = {name: step_tensors[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs: dict[str, Any] = callback_on_step_end(self, step_index, timestep, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                progress_bar.update()

        if output_type == "latent":
            images = latents
        else:
            images = (latents / 2 + 0.5).clamp(0, 1)
            if output_type == "pt":
                images = images.float().cpu()
            else:
                images = images.float().cpu().permute(0, 2, 3, 1).numpy()
                if output_type == "pil":
                    images = self.numpy_to_pil(images)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "SimpleDDPMPipeline":
        r"""
        Loads a pipeline from a folder written by `save_pretrained` or from a Hub repository.

        It takes every argument of [`~DiffusionPipeline.from_pretrained`]. A repository is downloaded by
        [`SimpleDDPMPipeline.download`], which diffusers' own `download` cannot do for components of this package.
        Both layouts `save_pretrained` writes load into this package's classes: a folder written with
        `include_code=True` loads without `trust_remote_code`, since its code is this package's own. The model card
        and sample grid of the folder or repository are kept in `model_card_files`, so that saving or pushing the
        pipeline again carries them over.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`):
                A folder written by `save_pretrained`, or the id of a Hub repository such as `"user/ddpm-mnist"`.
            revision (`str`, *optional*, defaults to `"main"`):
                The branch, tag or commit of the repository; pin a commit to get the same files every time.
            cache_dir (`str` or `os.PathLike`, *optional*):
                The Hugging Face cache to use instead of the default one (`HF_HUB_CACHE`).
            token (`str`, *optional*):
                A Hub token, for a private repository; defaults to the logged-in one.
            local_files_only (`bool`, *optional*, defaults to `False`):
                Whether to load from the cache only; `HF_HUB_OFFLINE=1` does the same.
            dtype (`torch.dtype`, *optional*):
                The dtype of the unet's weights.
            kwargs (`dict[str, Any]`, *optional*):
                The other arguments of [`~DiffusionPipeline.from_pretrained`], and components (`unet=`, `scheduler=`)
                that replace the saved ones.

        Returns:
            [`SimpleDDPMPipeline`]: The pipeline, in evaluation mode.
        """
        pretrained_model_name_or_path = os.fspath(pretrained_model_name_or_path)
        folder = pretrained_model_name_or_path
        if not os.path.isdir(folder):
            folder = cls.download(pretrained_model_name_or_path, **kwargs)
        pipeline = super().from_pretrained(folder, **kwargs)
        pipeline.register_to_config(_name_or_path=pretrained_model_name_or_path)
        pipeline.model_card_files = _read_model_card_files(folder)
        return pipeline

    @classmethod
    def from_pipe(cls, pipeline: DiffusionPipeline, **kwargs) -> "SimpleDDPMPipeline":
        r"""
        A pipeline of this class built from the components of `pipeline`, without copying them.

        Diffusers' [`~DiffusionPipeline.from_pipe`] hands a model over only when its class is named in the new
        pipeline's type annotations; these pipelines take any image model (`SimpleUNet2DModel`, diffusers'
        `UNet2DModel`, ...), so every component this class takes is handed over as it is.

        Args:
            pipeline ([`DiffusionPipeline`]): The pipeline whose components to reuse, such as another
                `SimpleDDPMPipeline` or diffusers' `DDPMPipeline`.
            kwargs (`dict[str, Any]`, *optional*): Components (`unet=`, `scheduler=`, ...) and settings that replace
                those of `pipeline`.

        Returns:
            [`SimpleDDPMPipeline`]: The new pipeline.
        """
        expected_modules, _ = cls._get_signature_keys(cls)
        components = {name: module for name, module in pipeline.components.items() if name in expected_modules}
        return super().from_pipe(pipeline, **{**components, **kwargs})

    @classmethod
    def download(cls, pretrained_model_name: str, **kwargs) -> str:
        r"""
        Downloads the files of a pipeline repository into the Hugging Face cache, or finds them there offline.

        It fetches `model_index.json`, the component folders, the code files, the model card and its sample grid,
        and skips the rest of the repository. The weights of every variant in the component folders are fetched.

        Args:
            pretrained_model_name (`str`): The repository id, such as `"user/ddpm-mnist"`.
            kwargs (`dict[str, Any]`, *optional*):
                The arguments of [`~DiffusionPipeline.from_pretrained`]; `revision`, `cache_dir`, `token`,
                `local_files_only` and `force_download` are used here.

        Returns:
            `str`: The folder of the downloaded snapshot.
        """
        expected_modules, _ = cls._get_signature_keys(cls)
        return _import_hub_utils().download_pipeline(
            pretrained_model_name,
            component_names=sorted(expected_modules),
            revision=kwargs.get("revision"),
            cache_dir=kwargs.get("cache_dir"),
            token=kwargs.get("token"),
            local_files_only=bool(kwargs.get("local_files_only")),
            force_download=kwargs.get("force_download", False),
        )

    @classmethod
    def load_config(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        return_unused_kwargs: bool = False,
        return_commit_hash: bool = False,
        **kwargs,
    ) -> dict[str, Any] | tuple:
        r"""
        Reads `model_index.json` as [`~ConfigMixin.load_config`] does, with three additions:

        - a folder without it raises a `ValueError` that says which folder to pass;
        - the custom-code layout of `save_pretrained(..., include_code=True)` is read as the package layout: the
          pipeline, and every component whose module the folder carries, are the classes of the package that defines
          this pipeline class, so `from_pretrained` loads them without running the folder's code;
        - the modules of this package that components come from are imported (the package imports them only on first
          use, and diffusers loads a component only from a module already imported).

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A pipeline folder or repository id.
            return_unused_kwargs (`bool`, *optional*, defaults to `False`): Whether to also return the unused kwargs.
            return_commit_hash (`bool`, *optional*, defaults to `False`): Whether to also return the commit hash.
            kwargs (`dict[str, Any]`, *optional*): The other arguments of [`~ConfigMixin.load_config`].

        Returns:
            `dict[str, Any]`, or a tuple starting with it: the configuration.
        """
        if os.path.isdir(pretrained_model_name_or_path):
            check_pipeline_folder(pretrained_model_name_or_path)
        outputs = super().load_config(
            pretrained_model_name_or_path,
            return_unused_kwargs=return_unused_kwargs,
            return_commit_hash=return_commit_hash,
            **kwargs,
        )
        config = outputs[0] if isinstance(outputs, tuple) else outputs
        if isinstance(config.get("_class_name"), list):
            package = cls.__module__.rpartition(".")[0]
            config["_class_name"] = config["_class_name"][1]
            for name in cls._get_signature_keys(cls)[0] & config.keys():
                library, class_name = config[name]
                if library is not None and library not in LOADABLE_LIBRARIES:
                    config[name] = [f"{package}.{library}", class_name]
        # diffusers loads a component only from a module already imported; the package imports its modules lazily.
        package_prefix = cls.__module__.rpartition(".")[0] + "."
        for name in cls._get_signature_keys(cls)[0] & config.keys():
            library = config[name][0]
            if isinstance(library, str) and library.startswith(package_prefix):
                importlib.import_module(library)
        return outputs

    def _resolve_include_code(self, include_code: bool | None) -> bool:
        """Defaults `include_code` to whether this pipeline runs as remote code, whose folders must carry its code."""
        runs_as_remote_code = type(self).__module__.split(".")[0] == DIFFUSERS_DYNAMIC_MODULE_NAME
        if include_code is None:
            return runs_as_remote_code
        if runs_as_remote_code and not include_code:
            raise ValueError(
                "`include_code=False`, but this pipeline was loaded with `trust_remote_code=True`: its classes exist "
                "only in diffusers' module cache, so a saved folder must carry their code. Pass `include_code=True` "
                "or leave it to None."
            )
        return include_code

    def _write_custom_code(self, save_directory: str | os.PathLike) -> None:
        """
        Turns the folder that [`~DiffusionPipeline.save_pretrained`] wrote into diffusers' custom-code layout, which
        `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` loads without this package.

        The module of the pipeline goes to the root and the module of every model from outside diffusers and
        transformers beside its weights, both copied from their source files, and `model_index.json` names them as
        `[module, class]`. A scheduler from outside diffusers is written as diffusers' `DDPMScheduler` with the same
        configuration, so no scheduler code runs from the folder.

        Args:
            save_directory (`str` or `os.PathLike`): The folder `save_pretrained` wrote.
        """
        model_index_path = os.path.join(save_directory, self.config_name)
        with open(model_index_path, encoding="utf-8") as file:
            model_index = json.load(file)
        model_index["_class_name"] = [_copy_module_source(type(self), save_directory), type(self).__name__]
        expected_modules, _ = self._get_signature_keys(self)
        for name in sorted(expected_modules):
            component = getattr(self, name)
            if component is None or type(component).__module__.split(".")[0] in LOADABLE_LIBRARIES:
                continue
            component_directory = os.path.join(save_directory, name)
            if isinstance(component, SchedulerMixin):
                if DDPMScheduler.__name__ not in component._compatibles:
                    raise ValueError(
                        f"`include_code=True` writes a scheduler from outside diffusers as diffusers' DDPMScheduler, "
                        f"but {type(component).__name__} is not compatible with it. Use a diffusers scheduler."
                    )
                DDPMScheduler.from_config(component.config).save_pretrained(component_directory)
                model_index[name] = ["diffusers", DDPMScheduler.__name__]
            else:
                module_name = _copy_module_source(type(component), component_directory)
                model_index[name] = [module_name, type(component).__name__]
        with open(model_index_path, "w", encoding="utf-8") as file:
            file.write(json.dumps(model_index, indent=2, sort_keys=True) + "\n")

    def _write_export(
        self,
        folder: str | os.PathLike,
        repo_id: str,
        safe_serialization: bool,
        variant: str | None,
        max_shard_size: int | str | None,
        include_code: bool,
        write_card: bool,
        card_files: dict[str, bytes],
        card_repo_id: str | None,
    ) -> list[str]:
        """
        Writes the whole export of the pipeline into the empty `folder`, rendering the model card at most once.

        Args:
            folder (`str` or `os.PathLike`): An empty folder.
            repo_id (`str`): The repository the usage snippet of a rendered model card loads.
            safe_serialization (`bool`): Whether to write safetensors weights.
            variant (`str`, *optional*): A variant name for the weight files.
            max_shard_size (`int` or `str`, *optional*): The largest weight file before sharding.
            include_code (`bool`): Whether to write diffusers' custom-code layout.
            write_card (`bool`): Whether to render a model card when there are no training details nor `card_files`.
            card_files (`dict[str, bytes]`): An existing model card and its sample grid, written instead of a card
                without training details.
            card_repo_id (`str`, *optional*): The repository the usage snippets of `card_files` load from now on;
                `None` keeps the card's own.

        Returns:
            `list[str]`: The written files, as paths relative to `folder` with `/` separators.
        """
        super().save_pretrained(
            folder, safe_serialization=safe_serialization, variant=variant, max_shard_size=max_shard_size
        )
        if include_code:
            self._write_custom_code(folder)
        if self.training_details is None and card_files:
            _write_model_card_files(card_files, folder, card_repo_id, self, include_code)
        elif write_card or self.training_details is not None:
            _import_hub_utils().save_model_card(
                self, folder, repo_id=repo_id, training_details=self.training_details, include_code=include_code
            )
        return _relative_file_paths(folder)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        include_code: bool | None = None,
        **kwargs,
    ) -> None:
        r"""
        Saves the pipeline to a folder that `from_pretrained` loads, with its model card when the pipeline knows its
        training details.

        The folder holds `model_index.json`, `unet/` and `scheduler/`; with `training_details` set (or `push_to_hub`),
        also the model card `README.md` and the sample grid it shows. Without `training_details`, the card is the one
        the pipeline was loaded with (`model_card_files`), else the one already in `save_directory`, written
        unchanged but for the repository its snippets load when `repo_id` is given or pushed to and for its
        section on loading without the package, there exactly when `include_code` is; an existing card is
        never replaced by one without a record of the training. Other files already in `save_directory`
        (checkpoints, logs) are left alone and never uploaded.

        The save is crash-safe: the pipeline is written to a hidden temporary folder inside `save_directory`, and only
        once it is complete are its files moved over the previous export with atomic renames (`model_index.json`
        last), so a process killed mid-save leaves the previous export loadable. A leftover temporary folder is
        removed by the next save.

        Args:
            save_directory (`str` or `os.PathLike`): The folder to write; created if missing.
            safe_serialization (`bool`, *optional*, defaults to `True`): Whether to write safetensors weights.
            variant (`str`, *optional*): A variant name for the weight files, such as `"fp16"`.
            max_shard_size (`int` or `str`, *optional*): The largest weight file before sharding, such as `"5GB"`.
            push_to_hub (`bool`, *optional*, defaults to `False`):
                Whether to also upload the saved files (and nothing else of the folder) to a Hub repository, created
                if needed. The model card is rendered once, for that repository, and the folder keeps the same card.
            include_code (`bool`, *optional*):
                Whether to write diffusers' custom-code layout, which loads with `DiffusionPipeline.from_pretrained(...,
                trust_remote_code=True)` without this package: `pipeline_simple_ddpm.py` at the root, the unet's module
                beside its weights, the scheduler as diffusers' `DDPMScheduler`. Defaults to `True` for a pipeline that
                was itself loaded as remote code, `False` otherwise.
            kwargs (`dict[str, Any]`, *optional*):
                `repo_id`, the repository to push to and that the model card's usage snippet loads (defaults to the
                folder's name), and the arguments `commit_message`, `private`, `token` and `create_pr` of
                [`SimpleDDPMPipeline.push_to_hub`], used with `push_to_hub=True`.
        """
        include_code = self._resolve_include_code(include_code)
        given_repo_id = kwargs.pop("repo_id", None)
        repo_id = given_repo_id or os.path.basename(os.path.abspath(save_directory))
        unknown = set(kwargs) - set(PUSH_ARGUMENTS)
        if unknown:
            raise ValueError(
                f"`save_pretrained` got unexpected arguments {sorted(unknown)}; besides its own it takes `repo_id` "
                f"and, used with `push_to_hub=True`, {', '.join(PUSH_ARGUMENTS)}."
            )
        if push_to_hub:
            hub_utils = _import_hub_utils()
            api, repo_id = hub_utils.create_pipeline_repo(
                repo_id, private=kwargs.get("private"), token=kwargs.get("token")
            )
        os.makedirs(save_directory, exist_ok=True)
        for leftover in glob.glob(os.path.join(glob.escape(os.fspath(save_directory)), f"{STAGING_PREFIX}*")):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=save_directory)
        try:
            files = self._write_export(
                staging,
                repo_id=repo_id,
                safe_serialization=safe_serialization,
                variant=variant,
                max_shard_size=max_shard_size,
                include_code=include_code,
                write_card=push_to_hub,
                card_files=self.model_card_files or _read_model_card_files(save_directory),
                card_repo_id=repo_id if push_to_hub or given_repo_id else None,
            )
            _move_export(staging, save_directory, files)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if push_to_hub:
            hub_utils.upload_pipeline_files(
                api,
                repo_id,
                save_directory,
                files,
                commit_message=kwargs.get("commit_message") or f"Upload {type(self).__name__}",
                create_pr=kwargs.get("create_pr", False),
            )

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        include_code: bool | None = None,
    ) -> Any:
        r"""
        Uploads the pipeline and its model card to a Hub repository, creating the repository if needed.

        The commit holds exactly what `save_pretrained` writes to an empty folder, plus the model card:
        `model_index.json`, `unet/`, `scheduler/`, `README.md`, the sample grid when the training details name one,
        and with `include_code=True` the code files. Nothing else (checkpoints, logs, caches) is uploaded. Without
        `training_details`, a pipeline loaded with a model card (`model_card_files`) uploads that card and its sample
        grid unchanged, but for the repository its snippets load and its section on loading without the package
        (there exactly when `include_code` is).

        Args:
            repo_id (`str`): The repository, `"name"` in the token's namespace or `"namespace/name"`.
            commit_message (`str`, *optional*): The commit message; defaults to `"Upload SimpleDDPMPipeline"`.
            private (`bool`, *optional*):
                Whether to create the repository as private; `None` follows the namespace's default. An existing
                repository keeps its visibility.
            token (`str`, *optional*): A token with write access; defaults to the logged-in one (`hf auth login`).
            create_pr (`bool`, *optional*, defaults to `False`): Whether to open a pull request instead of committing.
            safe_serialization (`bool`, *optional*, defaults to `True`): Whether to upload safetensors weights.
            variant (`str`, *optional*): A variant name for the weight files, such as `"fp16"`.
            include_code (`bool`, *optional*):
                Whether to upload the custom-code layout (see `save_pretrained`), so the repository also loads with
                `DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)` without this package.

        Returns:
            [`~huggingface_hub.CommitInfo`]: The commit (or pull request) that was made.
        """
        include_code = self._resolve_include_code(include_code)
        hub_utils = _import_hub_utils()
        api, repo_id = hub_utils.create_pipeline_repo(repo_id, private=private, token=token)
        with tempfile.TemporaryDirectory() as folder:
            files = self._write_export(
                folder,
                repo_id=repo_id,
                safe_serialization=safe_serialization,
                variant=variant,
                max_shard_size=None,
                include_code=include_code,
                write_card=True,
                card_files=self.model_card_files,
                card_repo_id=repo_id,
            )
            return hub_utils.upload_pipeline_files(
                api,
                repo_id,
                folder,
                files,
                commit_message=commit_message or f"Upload {type(self).__name__}",
                create_pr=create_pr,
            )
