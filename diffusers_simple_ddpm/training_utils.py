"""Reusable parts of the training program (`diffusers_simple_ddpm.training`): model presets, the training target, EMA export and safe checkpoints."""

import argparse
import importlib.util
import json
import logging
import math
import os
import platform
import re
import shutil
import types
import typing
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate.data_loader import DataLoaderStateMixin
from accelerate.state import GradientState
from diffusers.training_utils import EMAModel
from safetensors import safe_open

from .evaluation import CLASSIFIER_RESOLUTION, RECOGNISED_THRESHOLD, evaluate_images
from .hub_utils import MODEL_CARD_NAME, SAMPLE_GRID_NAME, EvaluationResults, check_repo_id
from .modeling_simple_unet import SimpleUNet2DModel
from .pipeline_simple_ddpm import SimpleDDPMPipeline
from .sampling import generate_images, in_turn, with_scheduler
from .scheduling_simple_ddpm import SimpleDDPMScheduler
from .training_args import (
    AUTO_PRESETS,
    DEFAULT_AUTOGUIDANCE_FRACTION,
    DEFAULT_AUTOGUIDANCE_SCALE,
    DEFAULT_CLASS_GUIDANCE_SCALE,
    MODEL_PRESETS,
    PREDICTION_TYPES,
)

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
# A checkpoint is written under this suffix and renamed when complete, so an interrupted save leaves no
# `checkpoint-N` folder behind and the last complete one stays the latest.
PARTIAL_SUFFIX = ".partial"
# A folder being deleted is first renamed with this suffix, so a half-deleted checkpoint never looks complete.
DELETING_SUFFIX = ".deleting"
# Arguments that never reach a tracker's hyper-parameters, a log or a model card.
SECRET_ARGUMENTS = ("hub_token",)
RANDOM_STATES_NAME = "random_states_{}.pkl"
# The files of a model folder in a checkpoint (`unet/`, `unet_ema/`).
MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
# The checkpoint folder of autoguidance's guiding model, once taken (the pipeline's component of the same name).
GUIDANCE_UNET_FOLDER = "guidance_unet"
# The names of `evaluate_on_mnist`'s metrics in the model card (the benchmarks read them back from it), and of the
# floors, which the card's table shows but its `model-index` leaves out (they are real digits' figures).
FD_METRIC = "Fréchet distance (MNIST classifier features)"
FD_FLOOR_METRIC = "Fréchet distance floor (real digits)"
RECOGNISED_METRIC = f"Recognised digits (classifier confidence at least {RECOGNISED_THRESHOLD:g})"
RECOGNISED_FLOOR_METRIC = "Recognised digits floor (real digits)"

logger = logging.getLogger(__name__)


def resolve_preset(model_config: str, device_type: str = "cpu") -> str:
    """The preset that `--model_config auto` stands for on `device_type` (`AUTO_PRESETS`); anything else unchanged."""
    if model_config == "auto":
        return AUTO_PRESETS.get(device_type, AUTO_PRESETS["cpu"])
    return model_config


# `SimpleUNet2DModel` arguments the training program sets from the data (sizes, channels, `--class_conditional`'s
# labels) and the text encoder (`--text_conditional`), never from `--model_config`.
DATA_SET_MODEL_KEYS = ("sample_size", "in_channels", "out_channels", "num_class_embeds", "cross_attention_dim")


def load_model_config(model_config: str, device_type: str = "cpu") -> dict:
    """
    Reads the `--model_config` argument: a preset name, `"auto"`, or the path of a `SimpleUNet2DModel` `config.json`.

    Args:
        model_config (`str`): One of `MODEL_PRESETS` (`"default"`, `"large"`, `"cifar10"`, `"notebook"`), `"auto"` (the
            preset `AUTO_PRESETS` names for `device_type`), or the path of a JSON file or of a folder that holds a
            `config.json` (a saved pipeline's `unet/` works).
        device_type (`str`, *optional*, defaults to `"cpu"`): The training device's type, which `"auto"` depends on.

    Returns:
        `dict`: keyword arguments of `SimpleUNet2DModel`, without the entries that the script sets from the data and
        the run's options (`DATA_SET_MODEL_KEYS`: sizes, channels, classes, the text encoder's width), so the config of
        a class- or text-conditional model trains an unconditional one unless the run asks for conditioning.

    Raises:
        `ValueError`: naming the file and line of malformed JSON, or the key of a value of the wrong type.
    """
    model_config = resolve_preset(model_config, device_type)
    if model_config in MODEL_PRESETS:
        return dict(MODEL_PRESETS[model_config])
    if os.path.isdir(model_config):
        folder, model_config = model_config, os.path.join(model_config, SimpleUNet2DModel.config_name)
        if not os.path.isfile(model_config):
            raise ValueError(f"`--model_config` {folder} is a folder without a {SimpleUNet2DModel.config_name}.")
    if not os.path.isfile(model_config):
        raise ValueError(
            f"`--model_config` must be a preset ({', '.join(MODEL_PRESETS)}), 'auto', the path of a config.json or of "
            f"a folder that holds one, got {model_config!r}."
        )
    with open(model_config, encoding="utf-8") as file:
        try:
            config = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"`--model_config` {model_config} is not valid JSON: {error.msg} at line {error.lineno}, column "
                f"{error.colno}."
            ) from None
    if not isinstance(config, dict):
        raise ValueError(f"`--model_config` {model_config} must hold a JSON object of SimpleUNet2DModel arguments.")
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    for key in DATA_SET_MODEL_KEYS:
        config.pop(key, None)
    annotations = typing.get_type_hints(SimpleUNet2DModel.__init__)
    unknown = set(config) - set(annotations)
    if unknown:
        raise ValueError(f"`--model_config` {model_config} has keys SimpleUNet2DModel does not take: {sorted(unknown)}.")
    for key, value in config.items():
        if not matches_annotation(value, annotations[key]):
            annotation = annotations[key]
            expected = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
            raise ValueError(
                f"`--model_config` {model_config}: `{key}` must be {expected}, got {json.dumps(value)} "
                f"({type(value).__name__})."
            )
    return config


def model_config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """
    The network settings in which a saved model's config differs from the current one, as `key: saved -> current`
    (JSON lists and tuples compare equal; private keys such as `_diffusers_version`, and keys that only one of them
    has, such as a setting newer than the saved file, are left out).

    Args:
        saved (`Mapping[str, Any]`): The saved config (`SimpleUNet2DModel.load_config` of a checkpoint's `unet/`).
        current (`Mapping[str, Any]`): The config of the run's model.
    """

    def normalized(value):
        return list(value) if isinstance(value, (list, tuple)) else value

    keys = sorted(key for key in saved.keys() & current.keys() if not key.startswith("_"))
    return [
        f"{key}: {json.dumps(normalized(saved[key]))} -> {json.dumps(normalized(current[key]))}"
        for key in keys
        if normalized(saved[key]) != normalized(current[key])
    ]


def matches_annotation(value, annotation) -> bool:
    """
    Whether a value read from JSON fits a type hint of `int`, `float`, `str`, `bool`, `None`, `Literal`, unions and
    tuples (a JSON list stands for a tuple).
    """
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return value in arguments
    if origin in (typing.Union, types.UnionType):
        return any(matches_annotation(value, argument) for argument in arguments)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return all(matches_annotation(item, arguments[0]) for item in value)
        return len(value) == len(arguments) and all(map(matches_annotation, value, arguments))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def check_training_arguments(args: argparse.Namespace) -> None:
    """
    Refuses values of the optimizer, EMA, tracker and Hub arguments that would do harm silently or fail only after
    training, naming the flag and what it allows.

    Args:
        args (`argparse.Namespace`): The parsed arguments of the training program.
    """
    if not 0 < args.learning_rate < math.inf:
        raise ValueError(f"`--learning_rate` must be a positive finite number, got {args.learning_rate}.")
    if not 0 < args.max_grad_norm:
        raise ValueError(
            f"`--max_grad_norm` must be positive, got {args.max_grad_norm} (0 would zero every gradient, a negative "
            "norm reverses them); pass `inf` to turn gradient clipping off."
        )
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must lie in [0, 1), got {getattr(args, name)}.")
    if not 0 < args.adam_epsilon < math.inf:
        raise ValueError(f"`--adam_epsilon` must be a positive finite number, got {args.adam_epsilon}.")
    if not 0 <= args.adam_weight_decay < math.inf:
        raise ValueError(f"`--adam_weight_decay` must be 0 or a positive finite number, got {args.adam_weight_decay}.")
    if not 0 < args.ema_max_decay <= 1:
        raise ValueError(f"`--ema_max_decay` must lie in (0, 1], got {args.ema_max_decay}.")
    for name in ("ema_inv_gamma", "ema_power"):
        if not 0 < getattr(args, name) < math.inf:
            raise ValueError(f"`--{name}` must be a positive finite number, got {getattr(args, name)}.")
    if args.snr_gamma is not None and not 0 < args.snr_gamma < math.inf:
        raise ValueError(
            f"`--snr_gamma` must be a positive finite number (5 is the Min-SNR paper's value), got {args.snr_gamma}; "
            "pass `--snr_gamma none` for the plain mean squared error."
        )
    if args.logger == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ValueError("`--logger wandb` needs the wandb package: `pip install wandb`, or use `--logger tensorboard`.")
    if args.hub_model_id is not None:
        check_repo_id(args.hub_model_id, argument="--hub_model_id")
    elif args.push_to_hub:
        name = os.path.basename(os.path.abspath(args.output_dir))
        try:
            check_repo_id(name)
        except ValueError:
            raise ValueError(
                f"`--push_to_hub` without `--hub_model_id` names the repository after `--output_dir`, but {name!r} is "
                "not a valid repository name (letters, digits, '-', '_' and '.'): pass `--hub_model_id`, such as "
                "'user/ddpm-mnist'."
            ) from None


def resolve_guidance_arguments(args: argparse.Namespace) -> None:
    """
    Checks `--autoguidance_fraction` and `--eval_guidance_scale` and fills in their defaults: autoguidance at
    `DEFAULT_AUTOGUIDANCE_FRACTION` of the updates for an unconditional run (none for a class- or text-conditional
    one, which guide without a second network), sampled with `DEFAULT_AUTOGUIDANCE_SCALE`; classifier-free guidance at
    `DEFAULT_CLASS_GUIDANCE_SCALE` for a class-conditional run; no guidance otherwise.

    Args:
        args (`argparse.Namespace`): The parsed arguments of the training program, changed in place.
    """
    conditional_flag = (
        "--class_conditional" if args.class_conditional else "--text_conditional" if args.text_conditional else None
    )
    if args.autoguidance_fraction is None:
        args.autoguidance_fraction = 0.0 if conditional_flag else DEFAULT_AUTOGUIDANCE_FRACTION
    elif not 0 <= args.autoguidance_fraction < 1:
        raise ValueError(
            f"`--autoguidance_fraction` must lie in [0, 1) (the share of the updates after which the guiding model "
            f"is taken; 0 turns autoguidance off), got {args.autoguidance_fraction}."
        )
    elif args.autoguidance_fraction > 0 and conditional_flag:
        raise ValueError(
            f"`--autoguidance_fraction` is for unconditional runs; `{conditional_flag}` models guide with their own "
            "unconditional prediction (classifier-free guidance). Leave it out or pass `--autoguidance_fraction 0`."
        )
    if args.eval_guidance_scale is None:
        if args.autoguidance_fraction > 0:
            args.eval_guidance_scale = DEFAULT_AUTOGUIDANCE_SCALE
        else:
            args.eval_guidance_scale = DEFAULT_CLASS_GUIDANCE_SCALE if args.class_conditional else 1.0
    elif not 1 <= args.eval_guidance_scale < math.inf:
        raise ValueError(
            f"`--eval_guidance_scale` must be a finite number of at least 1 (1 means no guidance), got "
            f"{args.eval_guidance_scale}."
        )
    elif args.eval_guidance_scale > 1 and not (conditional_flag or args.autoguidance_fraction > 0):
        raise ValueError(
            f"`--eval_guidance_scale {args.eval_guidance_scale}` needs something to guide with: autoguidance "
            "(`--autoguidance_fraction` above 0) or a conditional run (`--class_conditional`, `--text_conditional`)."
        )


def autoguidance_step(autoguidance_fraction: float, max_train_steps: int) -> int | None:
    """
    The optimizer update after which the guiding model of autoguidance is taken, `None` without autoguidance: when
    the fraction is 0, or when the run is too short for a guide before its last update (the guide would be the final
    weights, and guidance would change nothing at twice the sampling cost).

    Args:
        autoguidance_fraction (`float`): `--autoguidance_fraction`, resolved (0 for none).
        max_train_steps (`int`): The updates of the whole run.
    """
    if autoguidance_fraction <= 0:
        return None
    step = max(1, round(autoguidance_fraction * max_train_steps))
    return step if step < max_train_steps else None


def tracker_config(args: argparse.Namespace) -> dict:
    """
    The hyper-parameters a tracker records (tensorboard's `hparams.yml` and event file, wandb's config): every
    argument that is set, except secrets such as `--hub_token`.

    Args:
        args (`argparse.Namespace`): The parsed arguments of the training program.
    """
    return {name: value for name, value in vars(args).items() if value is not None and name not in SECRET_ARGUMENTS}


def end_training(accelerator) -> None:
    """
    Ends a run on every process together: waits for all of them, closes the trackers and tears down the process group
    explicitly, so that no process is left in a collective or a process-group destructor at exit.

    Args:
        accelerator (`accelerate.Accelerator`): The run's accelerator.
    """
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


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


class EpochBatches(DataLoaderStateMixin):
    """
    One epoch of batches that are not a prepared DataLoader (the data held on the device), made known to accelerate as
    a prepared DataLoader is: its last batch ends the epoch, so that under `accelerator.accumulate` the last, possibly
    shorter, group of micro-batches of every epoch makes an optimizer update, as it does with the DataLoader.

    Args:
        batches (`Iterable`): The epoch's batches.
        num_batches (`int`): How many there are.
    """

    def __init__(self, batches: Iterable, num_batches: int):
        self.gradient_state = GradientState()
        self.batches = batches
        self.num_batches = num_batches

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator:
        self.begin()
        try:
            for position, batch in enumerate(self.batches, start=1):
                self.end_of_dataloader = position == self.num_batches
                yield batch
        finally:
            self.end()


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
    scheduler: str = "dpm",
    num_inference_steps: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    clip_sample: bool = False,
    autocast_dtype: torch.dtype | None = None,
    guidance_scale: float = 1.0,
) -> EvaluationResults:
    """
    Scores a pipeline trained on MNIST digits with the fast metrics of `evaluation` (the MNIST classifier's
    features), against the MNIST test split, beside their floor (as many real training digits).

    Args:
        pipeline (`SimpleDDPMPipeline`): The trained pipeline (a class-conditional one samples the classes in turn, a
            text one its `sample_prompts` in turn).
        num_images (`int`): How many images to generate and score.
        scheduler (`str`, *optional*, defaults to `"dpm"`): The sampler (see `sampling.with_scheduler`).
        num_inference_steps (`int`, *optional*): Denoising steps; the scheduler's default when not given.
        seed (`int`, *optional*, defaults to 0): Seed of the first image.
        batch_size (`int`, *optional*, defaults to 256): Images per pipeline call (the images do not depend on it).
        clip_sample (`bool`, *optional*, defaults to `False`): Clip the predicted clean image to [-1, 1] at every step.
        autocast_dtype (`torch.dtype`, *optional*): Sample under autocast to this dtype (the training run's mixed
            precision); in the model's own dtype when not given.
        guidance_scale (`float`, *optional*, defaults to 1.0): Guidance scale of the sampling: classifier-free for a
            class- or text-conditional pipeline, autoguidance for one with a `guidance_unet`; 1.0 means none.

    Returns:
        `EvaluationResults`: the figures and how they were computed, for the model card.
    """
    sampling_pipeline, default_steps = with_scheduler(pipeline, scheduler, clip_sample=clip_sample)
    steps = num_inference_steps or default_steps
    num_classes = pipeline.num_classes
    class_labels = in_turn(range(num_classes), num_images) if num_classes else None
    sample_prompts = pipeline.config.get("sample_prompts")
    prompts = in_turn(sample_prompts, num_images) if sample_prompts else None
    with torch.autocast(pipeline.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        images = generate_images(
            sampling_pipeline,
            num_images,
            steps,
            seed=seed,
            batch_size=batch_size,
            class_labels=class_labels,
            guidance_scale=guidance_scale,
            prompts=prompts,
        )
    results = evaluate_images(images, reference="mnist-test", metrics=("fast",), include_floor=True)
    metrics = {
        FD_METRIC: results["fast_fd"],
        "KID (MNIST classifier features)": results["kid"],
        "Classifier Inception Score": results["classifier_is"],
        RECOGNISED_METRIC: results["recognised_share"],
    }
    floors = {FD_FLOOR_METRIC: results["fast_fd_floor"], RECOGNISED_FLOOR_METRIC: results["recognised_share_floor"]}
    precision = f" under {str(autocast_dtype).removeprefix('torch.')} autocast" if autocast_dtype is not None else ""
    guidance = ""
    if guidance_scale > 1:
        kind = "classifier-free guidance" if getattr(pipeline, "guidance_unet", None) is None else "autoguidance"
        guidance = f", {kind} at scale {guidance_scale:g}"
    side = images[0].size[0]
    resized = f", resized to the model's {side}x{side} as in training" if side != CLASSIFIER_RESOLUTION else ""
    protocol = (
        f"{num_images} images sampled with {type(sampling_pipeline.scheduler).__name__}, {steps} steps"
        f"{' (predicted clean image clipped to [-1, 1] at every step)' if clip_sample else ''}{guidance}{precision}, "
        f"seeds {seed} "
        f"to {seed + num_images - 1}, compared with the 10,000 digits of the MNIST test split through the penultimate "
        "features of the package's MNIST classifier (`diffusers_simple_ddpm.evaluation`); the floor is the same "
        f"distance for {num_images} real training digits{resized}."
    )
    return EvaluationResults(
        metrics=metrics, protocol=protocol, dataset_name="MNIST test split", dataset_id="ylecun/mnist",
        dataset_split="test", floors=floors,
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
        resume_from_checkpoint (`str`, *optional*): A checkpoint folder, the name of one in `output_dir` (such as
            `"checkpoint-500"`, as in diffusers' training scripts), or `"latest"` for the newest complete checkpoint in
            `output_dir` (none yet starts from scratch).
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
    if not checkpoint.is_dir() and (Path(output_dir) / checkpoint).is_dir():
        checkpoint = Path(output_dir) / checkpoint
    if not checkpoint.is_dir():
        raise ValueError(
            f"`--resume_from_checkpoint` {resume_from_checkpoint} is neither a folder nor a checkpoint in "
            f"`--output_dir` {output_dir} (or pass `latest`)."
        )
    checkpoint_step(checkpoint)
    return checkpoint


def remove_previous_run(output_dir: str | os.PathLike, logging_dir: str) -> None:
    """
    Removes what an earlier run of the training program left in `output_dir`, for `--overwrite_output_dir`: its
    checkpoints, its tracker logs (which would otherwise show two runs as one curve) and its exported pipeline
    (`model_index.json`, every component folder it names, the model card `README.md` and the sample grid), so that no
    stale component, such as an earlier run's `guidance_unet/`, stays beside the new pipeline or goes up with it.
    Files that no run of the program writes are kept.

    Args:
        output_dir (`str` or `os.PathLike`): The run's output directory.
        logging_dir (`str`): The tracker folder inside it (`--logging_dir`).
    """
    output_dir = Path(output_dir)
    stale = list_checkpoints(output_dir) + [output_dir / logging_dir]
    model_index = output_dir / "model_index.json"
    if model_index.is_file():
        components = [name for name in json.loads(model_index.read_text()) if not name.startswith("_")]
        stale += [output_dir / name for name in components]
        stale += [output_dir / MODEL_CARD_NAME, output_dir / SAMPLE_GRID_NAME, model_index]
    for path in stale:
        if path.is_dir():
            delete_folder(path)
        elif path.is_file():
            path.unlink()


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
            delete_folder(final)
        os.replace(partial, final)
        if total_limit is not None:
            for stale in list_checkpoints(output_dir)[:-total_limit]:
                delete_folder(stale)
        for leftover in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*{DELETING_SUFFIX}"):
            shutil.rmtree(leftover, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def delete_folder(folder: str | os.PathLike) -> None:
    """
    Deletes a checkpoint folder without ever leaving a half-deleted one under its name: the folder is first renamed
    to `<name>.deleting` (which `list_checkpoints` ignores), then removed. A leftover is removed by the next save.

    Args:
        folder (`str` or `os.PathLike`): The folder to delete.
    """
    folder = Path(folder)
    doomed = folder.with_name(folder.name + DELETING_SUFFIX)
    if doomed.exists():
        shutil.rmtree(doomed)
    os.replace(folder, doomed)
    shutil.rmtree(doomed)


def checkpoint_problem(path: Path) -> str | None:
    """What makes a checkpoint file unusable (missing, truncated, corrupt), or `None` when it reads."""
    if not path.is_file():
        return "is missing"
    try:
        if path.suffix == ".safetensors":
            with safe_open(path, framework="pt"):
                pass
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            # `torch.save` writes a zip archive; its central directory and checksums show truncation and corruption.
            with zipfile.ZipFile(path) as archive:
                corrupt_member = archive.testzip()
            if corrupt_member is not None:
                return f"is corrupt (bad checksum of {corrupt_member})"
    except Exception as error:  # safetensors, json and zipfile each raise errors of their own
        return f"is unreadable, truncated or corrupt ({type(error).__name__}: {error})"
    return None


def check_resume_checkpoint(
    checkpoint: Path,
    num_processes: int,
    use_ema: bool,
    resume_without_random_states: bool = False,
) -> None:
    """
    Checks, before any data is read, that every file a resume loads from `checkpoint` is there and readable, and
    raises a `ValueError` naming the file and what to do otherwise.

    Args:
        checkpoint (`Path`): The checkpoint folder (`checkpoint-<step>`).
        num_processes (`int`): The processes of the resumed run; each loads `random_states_<process>.pkl`.
        use_ema (`bool`): Whether the run keeps an EMA, which the checkpoint's `unet_ema/` restores.
        resume_without_random_states (`bool`, *optional*, defaults to `False`): Whether to continue with fresh
            randomness when a `random_states_<process>.pkl` is missing or unreadable, with a warning, instead of
            refusing.
    """
    step = checkpoint_step(checkpoint)
    earlier = [path for path in list_checkpoints(checkpoint.parent) if checkpoint_step(path) < step]
    elsewhere = (
        f"resume from an earlier checkpoint (`--resume_from_checkpoint {earlier[-1]}`), or delete {checkpoint} so "
        "that `--resume_from_checkpoint latest` takes the one before"
        if earlier
        else "start a new run (there is no earlier checkpoint)"
    )
    required = [Path("optimizer.bin"), Path("scheduler.bin")] + [Path("unet", name) for name in MODEL_FILES]
    if use_ema:
        if not (checkpoint / "unet_ema").is_dir():
            raise ValueError(
                f"Checkpoint {checkpoint} has no unet_ema/ (the EMA weights), so `--use_ema` cannot resume from it. It "
                f"was saved by a run without EMA: resume with `--no-use_ema`; otherwise it is incomplete: {elsewhere}."
            )
        required += [Path("unet_ema", name) for name in MODEL_FILES]
    if (checkpoint / GUIDANCE_UNET_FOLDER).is_dir():
        required += [Path(GUIDANCE_UNET_FOLDER, name) for name in MODEL_FILES]
    # accelerate's other states: the sampler's (`sampler.bin`), fp16's gradient scaler (`scaler.pt`), ...
    for pattern in ("*.bin", "*.pt"):
        required += sorted(path.relative_to(checkpoint) for path in checkpoint.glob(pattern))
    for relative in dict.fromkeys(required):
        problem = checkpoint_problem(checkpoint / relative)
        if problem is not None:
            raise ValueError(f"Checkpoint file {checkpoint / relative} {problem}: {elsewhere}.")
    saved_processes = len(list(checkpoint.glob(RANDOM_STATES_NAME.format("*"))))
    if saved_processes > num_processes:
        fewer = (
            f"Checkpoint {checkpoint} was saved by {saved_processes} processes and this run has {num_processes}: it "
            "would train with another total batch and draw other noise and data than the interrupted run"
        )
        if not resume_without_random_states:
            raise ValueError(
                f"{fewer}. Resume with `accelerate launch --num_processes {saved_processes}`, or pass "
                "`--resume_without_random_states` to continue anyway."
            )
        logger.warning(f"{fewer}.")
    for process_index in range(num_processes):
        path = checkpoint / RANDOM_STATES_NAME.format(process_index)
        problem = checkpoint_problem(path)
        if problem is None:
            continue
        if not resume_without_random_states:
            raise ValueError(
                f"Checkpoint file {path} {problem}, so process {process_index} cannot restore its random state and the "
                "resumed run would draw other noise and data than the interrupted one. Pass "
                f"`--resume_without_random_states` to continue with fresh randomness, or {elsewhere}."
            )
        logger.warning(f"Checkpoint file {path} {problem}: process {process_index} continues with fresh randomness.")


def cpu_model_name() -> str:
    """The CPU's model name from `/proc/cpuinfo` where there is one, else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_threads_per_process(num_processes: int) -> int:
    """
    The CPU cores this process may run on (its affinity, else `os.cpu_count()`) shared among `num_processes`
    processes, at least 1.

    Args:
        num_processes (`int`): The training processes on this machine.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // num_processes)


def hardware_description(device: torch.device, num_processes: int) -> str:
    """A one-line description of the training hardware, for logs and the model card."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_model_name()} CPU, {os.cpu_count()} cores"
    return f"{num_processes} x {name}" if num_processes > 1 else name
