"""Seeded, batched image generation with any diffusers scheduler, for the command line, training and benchmarks."""

import inspect
from collections.abc import Sequence
from typing import Literal, TypeVar

import diffusers
import numpy as np
import PIL.Image
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, SchedulerMixin

from .pipeline_simple_ddpm import SimpleDDPMPipeline
from .scheduling_simple_ddpm import SimpleDDPMScheduler

# Short scheduler names and their default number of steps; "ddpm" keeps the pipeline's own scheduler, whose default is
# every one of its training steps (`num_train_timesteps`), left as None here.
SCHEDULER_SHORTCUTS = {
    "ddpm": (None, None),
    "ddim": (DDIMScheduler, 50),
    "dpm": (DPMSolverMultistepScheduler, 20),
    "euler": (EulerDiscreteScheduler, 50),
}
DEFAULT_STEPS = 50


def sampling_schedulers() -> dict[str, type[SchedulerMixin]]:
    """
    The scheduler classes that sample this package's models, by class name: `SimpleDDPMScheduler` and those of its
    compatibles that this installation provides (`DPMSolverSDEScheduler` needs `torchsde`), except the EDM schedulers.
    Diffusers counts these among DDPM's compatibles, yet they take sigmas as timesteps and precondition the model input
    their own way, while the models here take the discrete timesteps 0 to `num_train_timesteps - 1`.

    Returns:
        `dict[str, type[SchedulerMixin]]`: the classes, by name.
    """
    schedulers = {SimpleDDPMScheduler.__name__: SimpleDDPMScheduler}
    for name in SimpleDDPMScheduler._compatibles:
        scheduler_class = getattr(diffusers, name, None)
        is_scheduler = isinstance(scheduler_class, type) and issubclass(scheduler_class, SchedulerMixin)
        if is_scheduler and not name.startswith("EDM"):
            schedulers[name] = scheduler_class
    return schedulers


def resolve_scheduler(
    scheduler: str, argument: str = "--scheduler"
) -> tuple[type[SchedulerMixin] | None, int | None]:
    """
    The scheduler class a name stands for, and its default number of inference steps.

    Args:
        scheduler (`str`): `ddpm` (the pipeline's own: `None` is returned, with `None` steps for all of its training
            steps), `ddim`, `dpm` (DPM-Solver++), `euler`, or the class name of `SimpleDDPMScheduler` or of one of its
            compatibles (diffusers' schedulers of discrete-time diffusion models, such as `UniPCMultistepScheduler`)
            other than the EDM schedulers (see `sampling_schedulers`).
        argument (`str`, *optional*, defaults to `"--scheduler"`): The argument the name came from, quoted in the error.

    Raises:
        `ValueError`: for other names, such as schedulers of other kinds of models (flow matching, EDM, ...), whose
            steps take other inputs and would fail mid-sampling or sample wrongly.
    """
    if scheduler in SCHEDULER_SHORTCUTS:
        return SCHEDULER_SHORTCUTS[scheduler]
    schedulers = sampling_schedulers()
    if scheduler not in schedulers:
        raise ValueError(
            f"`{argument}` must be one of {', '.join(SCHEDULER_SHORTCUTS)} or the class name of a scheduler that "
            "samples this package's models (the compatibles of SimpleDDPMScheduler except the EDM ones, which take "
            f"sigmas as timesteps: {', '.join(sorted(schedulers))}), got {scheduler!r}."
        )
    return schedulers[scheduler], DEFAULT_STEPS


def clipping_overrides(scheduler_class: type[SchedulerMixin], argument: str = "--clip_sample") -> dict:
    """
    The config overrides that make a scheduler clip its predicted clean image to [-1, 1] at every step: `clip_sample`
    where the scheduler has it (DDPM), else dynamic thresholding with `sample_max_value=1.0`, which then is plain
    clipping (DPM-Solver++, UniPC, DEIS, ...).

    Args:
        scheduler_class (`type[SchedulerMixin]`): The scheduler class.
        argument (`str`, *optional*, defaults to `"--clip_sample"`): The flag that asked for clipping, named in errors.

    Raises:
        `ValueError`: for schedulers that cannot clip (Euler, ...), and for DDIM-like schedulers, whose `step` keeps
            the unclipped noise prediction unless told `use_clipped_model_output`, so that the sample does not move
            towards the clipped image.
    """
    parameters = inspect.signature(scheduler_class.__init__).parameters
    if "use_clipped_model_output" in inspect.signature(scheduler_class.step).parameters:
        raise ValueError(
            f"`{argument}` does not work with {scheduler_class.__name__}: its step clips the predicted clean image "
            "but keeps the unclipped noise prediction. Use ddpm or dpm to clip."
        )
    if "clip_sample" in parameters:
        return {"clip_sample": True, "clip_sample_range": 1.0}
    if "thresholding" in parameters and "sample_max_value" in parameters:
        return {"thresholding": True, "sample_max_value": 1.0}
    raise ValueError(
        f"`{argument}` needs a scheduler that can clip (ddpm, dpm, ...); {scheduler_class.__name__} cannot."
    )


def with_scheduler(
    pipeline: SimpleDDPMPipeline, scheduler: str, clip_sample: bool = False
) -> tuple[SimpleDDPMPipeline, int]:
    """
    A pipeline sharing `pipeline`'s model, with the scheduler named `scheduler` built from its scheduler config.

    Args:
        pipeline (`SimpleDDPMPipeline`): The pipeline; it is not changed.
        scheduler (`str`): A scheduler name (see `resolve_scheduler`).
        clip_sample (`bool`, *optional*, defaults to `False`): Clip the predicted clean image to [-1, 1] at every step
            (see `clipping_overrides`), which helps most under classifier-free guidance.

    Returns:
        `tuple[SimpleDDPMPipeline, int]`: the pipeline and the default number of inference steps for that scheduler
        (for `ddpm`, all the training steps of the pipeline's scheduler).
    """
    scheduler_class, default_steps = resolve_scheduler(scheduler)
    if clip_sample:
        scheduler_class = scheduler_class or type(pipeline.scheduler)
        new_scheduler = scheduler_class.from_config(pipeline.scheduler.config, **clipping_overrides(scheduler_class))
    elif scheduler_class is None:
        new_scheduler = pipeline.scheduler
    else:
        new_scheduler = scheduler_class.from_config(pipeline.scheduler.config)
    # The same pipeline class, components and settings (`class_names`, `sample_prompts`, ...), with the new scheduler.
    _, settings = pipeline._get_signature_keys(pipeline)
    settings = {name: pipeline.config[name] for name in settings if name in pipeline.config}
    swapped = type(pipeline)(**{**pipeline.components, "scheduler": new_scheduler}, **settings)
    swapped.set_progress_bar_config(**getattr(pipeline, "_progress_bar_config", {}))
    if default_steps is None:
        default_steps = pipeline.scheduler.config.num_train_timesteps
    return swapped, default_steps


Condition = TypeVar("Condition")


def in_turn(conditions: Sequence[Condition], num_images: int) -> list[Condition]:
    """
    One condition per image, taking `conditions` in turn: the classes or sample prompts with which the training
    program draws its grids and model-card evaluation, and the command line samples without `--class`/`--prompt`.

    Args:
        conditions (`Sequence`): Class indices or prompts, at least one.
        num_images (`int`): The number of images.
    """
    return [conditions[index % len(conditions)] for index in range(num_images)]


def check_class_label_count(
    class_labels: list[int | str] | None, num_images: int, argument: str = "--class"
) -> None:
    """
    Raises a `ValueError` unless `class_labels` is `None`, one label for every image, or one label per image.

    Args:
        class_labels (`list`, *optional*): The labels, as given to `--class` (or the prompts, given to `--prompt`).
        num_images (`int`): How many images are generated.
        argument (`str`, *optional*, defaults to `"--class"`): The flag they came from, quoted in the error.
    """
    if class_labels is not None and len(class_labels) not in (1, num_images):
        what = "prompt" if argument == "--prompt" else "label"
        raise ValueError(f"`{argument}` takes one {what} or one per image ({num_images}), got {len(class_labels)}.")


def generate_images(
    pipeline: SimpleDDPMPipeline,
    num_images: int,
    num_inference_steps: int,
    seed: int = 0,
    batch_size: int = 64,
    class_labels: list[int | str] | None = None,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    output_type: Literal["pil", "np", "pt"] = "pil",
    prompts: list[str] | None = None,
) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
    """
    Generates `num_images` images in batches; image `i` uses a generator seeded with `seed + i`, so the batch size
    never changes which image comes out. The command line, the training program and the benchmarks all sample here.

    Args:
        pipeline (`SimpleDDPMPipeline`): The pipeline, with the scheduler to use.
        num_images (`int`): How many images to generate.
        num_inference_steps (`int`): Denoising steps.
        seed (`int`, *optional*, defaults to 0): Seed of the first image.
        batch_size (`int`, *optional*, defaults to 64): Images per pipeline call.
        class_labels (`list`, *optional*): For a class-conditional model: one label for every image, or one per image.
        guidance_scale (`float`, *optional*, defaults to 1.0): Classifier-free guidance scale.
        eta (`float`, *optional*, defaults to 0.0): DDIM η, for schedulers that take it.
        output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` or `"pt"`, as for the pipeline.
        prompts (`list[str]`, *optional*): For a text pipeline (`SimpleDDPMTextPipeline`): one prompt for every image,
            or one per image.

    Returns:
        `list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`: the images; arrays hold all of them, [N, H, W, C]
        (`"np"`) or [N, C, H, W] (`"pt"`, on the CPU), with values in [0, 1].
    """
    if num_images < 1 or batch_size < 1:
        raise ValueError(f"`num_images` and `batch_size` must be at least 1, got {num_images} and {batch_size}.")
    check_class_label_count(class_labels, num_images)
    check_class_label_count(prompts, num_images, argument="--prompt")
    batches = []
    for start in range(0, num_images, batch_size):
        count = min(batch_size, num_images - start)
        generators = [torch.Generator().manual_seed(seed + start + index) for index in range(count)]
        if prompts is not None:
            condition = {"prompt": prompts * count if len(prompts) == 1 else prompts[start : start + count]}
        else:
            batch_labels = None
            if class_labels is not None:
                batch_labels = class_labels if len(class_labels) == 1 else class_labels[start : start + count]
            condition = {"batch_size": count, "class_labels": batch_labels}
        output = pipeline(
            generator=generators,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            eta=eta,
            output_type=output_type,
            **condition,
        )
        batches.append(output.images)
    if output_type == "pt":
        return torch.cat(batches)
    if output_type == "np":
        return np.concatenate(batches)
    return [image for batch in batches for image in batch]
