"""Reusable parts of the training program (`diffusers_simple_ddpm.training`): model presets, the training target, EMA export and safe checkpoints."""

import inspect
import json
import os
import platform
import re
import shutil
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

from .evaluation import evaluate_images
from .hub_utils import EvaluationResults
from .modeling_simple_unet import SimpleUNet2DModel
from .pipeline_simple_ddpm import SimpleDDPMPipeline
from .sampling import generate_images, with_scheduler
from .scheduling_simple_ddpm import SimpleDDPMScheduler
from .training_args import AUTO_PRESETS, MODEL_PRESETS, PREDICTION_TYPES

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
# A checkpoint is written under this suffix and renamed when complete, so an interrupted save leaves no
# `checkpoint-N` folder behind and the last complete one stays the latest.
PARTIAL_SUFFIX = ".partial"


def load_model_config(model_config: str, device_type: str = "cpu") -> dict:
    """
    Reads the `--model_config` argument: a preset name, `"auto"`, or the path of a `SimpleUNet2DModel` `config.json`.

    Args:
        model_config (`str`): One of `MODEL_PRESETS` (`"default"`, `"large"`, `"cifar10"`, `"notebook"`), `"auto"` (the
            preset `AUTO_PRESETS` names for `device_type`), or a path to a JSON file (a saved `unet/config.json` works).
        device_type (`str`, *optional*, defaults to `"cpu"`): The training device's type, which `"auto"` depends on.

    Returns:
        `dict`: keyword arguments of `SimpleUNet2DModel`, without the size and channel entries that the script sets
        from the data.
    """
    if model_config == "auto":
        model_config = AUTO_PRESETS.get(device_type, AUTO_PRESETS["cpu"])
    if model_config in MODEL_PRESETS:
        return dict(MODEL_PRESETS[model_config])
    if not os.path.isfile(model_config):
        raise ValueError(
            f"`--model_config` must be a preset ({', '.join(MODEL_PRESETS)}), 'auto' or the path of a config.json, got "
            f"{model_config!r}."
        )
    with open(model_config) as file:
        config = json.load(file)
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    for key in ("sample_size", "in_channels", "out_channels"):
        config.pop(key, None)
    unknown = set(config) - set(inspect.signature(SimpleUNet2DModel.__init__).parameters)
    if unknown:
        raise ValueError(f"`--model_config` {model_config} has keys SimpleUNet2DModel does not take: {sorted(unknown)}.")
    return config


def training_target(
    scheduler: SimpleDDPMScheduler,
    clean_images: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """
    The regression target of the model for the scheduler's `prediction_type`.

    Args:
        scheduler (`SimpleDDPMScheduler`): The noise scheduler; its `config.prediction_type` picks the target.
        clean_images (`torch.Tensor`): The training images `x_0`.
        noise (`torch.Tensor`): The noise `ε` added to them.
        timesteps (`torch.Tensor`): The timestep of every image.

    Returns:
        `torch.Tensor`: `ε` for `"epsilon"`, `x_0` for `"sample"`, `v = √ᾱ ε − √(1−ᾱ) x_0` for `"v_prediction"`.
    """
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return clean_images
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(clean_images, noise, timesteps)
    raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")


def ema_unet(ema_model: EMAModel, unet: SimpleUNet2DModel) -> SimpleUNet2DModel:
    """
    A new model holding the EMA weights: sampling or saving it never touches the training weights of `unet`.

    Args:
        ema_model (`EMAModel`): The moving average of `unet`'s parameters.
        unet (`SimpleUNet2DModel`): The trained model (unwrapped), whose configuration the copy takes.
    """
    averaged = SimpleUNet2DModel.from_config(unet.config)
    ema_model.copy_to(averaged.parameters())
    return averaged.to(device=unet.device).eval()


def check_processes_in_sync(accelerator, model: torch.nn.Module) -> None:
    """
    Raises a `RuntimeError` unless every process holds bitwise the same weights (as data-parallel training must).

    Args:
        accelerator (`accelerate.Accelerator`): The run's accelerator; every process must call this.
        model (`torch.nn.Module`): The trained model.
    """
    fingerprint = torch.stack([parameter.detach().double().sum() for parameter in model.parameters()])
    fingerprints = accelerator.gather(fingerprint[None])
    if not torch.equal(fingerprints, fingerprints[:1].expand_as(fingerprints)):
        raise RuntimeError("The processes ended training with different weights: data-parallel training went wrong.")


def evaluate_on_mnist(
    pipeline: SimpleDDPMPipeline,
    num_images: int,
    scheduler: str = "ddim",
    num_inference_steps: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> EvaluationResults:
    """
    Scores a pipeline trained on MNIST digits with the fast metrics of `evaluation` (the MNIST classifier's
    features), against the MNIST test split, beside their floor (as many real training digits).

    Args:
        pipeline (`SimpleDDPMPipeline`): The trained pipeline (a class-conditional one samples the classes in turn, a
            text one its `sample_prompts` in turn).
        num_images (`int`): How many images to generate and score.
        scheduler (`str`, *optional*, defaults to `"ddim"`): The sampler (see `sampling.with_scheduler`).
        num_inference_steps (`int`, *optional*): Denoising steps; the scheduler's default when not given.
        seed (`int`, *optional*, defaults to 0): Seed of the first image.
        batch_size (`int`, *optional*, defaults to 64): Images per pipeline call.

    Returns:
        `EvaluationResults`: the figures and how they were computed, for the model card.
    """
    sampling_pipeline, default_steps = with_scheduler(pipeline, scheduler)
    steps = num_inference_steps or default_steps
    num_classes = pipeline.num_classes
    class_labels = [index % num_classes for index in range(num_images)] if num_classes else None
    sample_prompts = pipeline.config.get("sample_prompts")
    prompts = [sample_prompts[index % len(sample_prompts)] for index in range(num_images)] if sample_prompts else None
    images = generate_images(
        sampling_pipeline,
        num_images,
        steps,
        seed=seed,
        batch_size=batch_size,
        class_labels=class_labels,
        prompts=prompts,
    )
    results = evaluate_images(images, reference="mnist-test", metrics=("fast",), include_floor=True)
    metrics = {
        "Fréchet distance (MNIST classifier features)": results["fast_fd"],
        "Fréchet distance floor (real digits)": results["fast_fd_floor"],
        "KID (MNIST classifier features)": results["kid"],
        "Classifier Inception Score": results["classifier_is"],
    }
    protocol = (
        f"{num_images} images sampled with {type(sampling_pipeline.scheduler).__name__}, {steps} steps, seeds {seed} "
        f"to {seed + num_images - 1}, compared with the 10,000 digits of the MNIST test split through the penultimate "
        "features of the package's MNIST classifier (`diffusers_simple_ddpm.evaluation`); the floor is the same "
        f"distance for {num_images} real training digits."
    )
    return EvaluationResults(
        metrics=metrics, protocol=protocol, dataset_name="MNIST test split", dataset_id="ylecun/mnist",
        dataset_split="test",
    )  # fmt: skip


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints of `output_dir` (folders `checkpoint-N`), oldest first."""
    if not os.path.isdir(output_dir):
        return []
    checkpoints = [path for path in Path(output_dir).iterdir() if path.is_dir() and CHECKPOINT_PATTERN.match(path.name)]
    return sorted(checkpoints, key=checkpoint_step)


def checkpoint_step(checkpoint: str | os.PathLike) -> int:
    """The global step a checkpoint folder was written at, read off its name `checkpoint-N`."""
    match = CHECKPOINT_PATTERN.match(Path(checkpoint).name)
    if match is None:
        raise ValueError(f"`--resume_from_checkpoint` {checkpoint} is not a folder named {CHECKPOINT_PREFIX}<step>.")
    return int(match.group(1))


def resolve_resume_checkpoint(resume_from_checkpoint: str | None, output_dir: str) -> Path | None:
    """
    Finds the checkpoint to resume from.

    Args:
        resume_from_checkpoint (`str`, *optional*): A checkpoint folder, or `"latest"` for the newest complete
            checkpoint in `output_dir` (none yet starts from scratch).
        output_dir (`str`): The run's output directory.

    Returns:
        `Path` or `None`: the checkpoint folder, `None` to start from scratch.
    """
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    checkpoint = Path(resume_from_checkpoint)
    if not checkpoint.is_dir():
        raise ValueError(f"`--resume_from_checkpoint` {checkpoint} is not a folder (or pass `latest`).")
    checkpoint_step(checkpoint)
    return checkpoint


def save_checkpoint(accelerator, output_dir: str | os.PathLike, global_step: int, total_limit: int | None) -> Path:
    """
    Saves the full training state as `output_dir/checkpoint-<global_step>` without ever exposing a half-written one.

    The state is written to `checkpoint-<global_step>.partial` and renamed when complete; only then are the oldest
    checkpoints beyond `total_limit` removed. A crash mid-save therefore leaves the previous checkpoint as the latest.

    Args:
        accelerator (`accelerate.Accelerator`): The run's accelerator (with the save hooks registered).
        output_dir (`str` or `os.PathLike`): The run's output directory.
        global_step (`int`): The number of optimizer updates done.
        total_limit (`int`, *optional*): How many checkpoints to keep; `None` keeps all.

    Returns:
        `Path`: the checkpoint folder.
    """
    final = Path(output_dir) / f"{CHECKPOINT_PREFIX}{global_step}"
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        if total_limit is not None:
            for stale in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    return final


def cpu_model_name() -> str:
    """The CPU's model name from `/proc/cpuinfo` where there is one, else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware_description(device: torch.device, num_processes: int) -> str:
    """A one-line description of the training hardware, for logs and the model card."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_model_name()} CPU, {os.cpu_count()} cores"
    return f"{num_processes} x {name}" if num_processes > 1 else name
