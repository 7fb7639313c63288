"""The training program of SimpleDDPM pipelines.

Run it with `accelerate launch scripts/train.py [--dataset_name ... | --train_data_dir ...]` from a clone, or with
`simple-ddpm train [...]` (`accelerate launch -m diffusers_simple_ddpm.training`) from an installed package. With no
arguments it trains on the built-in MNIST digits, offline, and writes a pipeline that
`SimpleDDPMPipeline.from_pretrained(output_dir)` loads.
"""

import argparse
import logging
import math
import os
import shutil
import time
from pathlib import Path

import datasets
import diffusers
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from .data import (
    DeviceImageBatches,
    ImageTransform,
    drop_unreadable_images,
    load_images_to_memory,
    load_training_dataset,
    make_train_dataloader,
    resolve_image_column,
    scan_images,
)
from .hub_utils import (
    SAMPLE_GRID_NAME,
    TrainingDetails,
    read_training_time,
    training_data_for_card,
    write_training_time,
)
from .image_utils import make_sample_grid
from .modeling_simple_unet import NOTEBOOK_NUM_LEVELS, SimpleUNet2DModel, check_spatial_size
from .pipeline_simple_ddpm import SimpleDDPMPipeline
from .pipeline_simple_ddpm_text import SimpleDDPMTextPipeline
from .sampling import clipping_overrides, in_turn, resolve_scheduler, with_scheduler
from .scheduling_simple_ddpm import SimpleDDPMScheduler
from .text_utils import (
    CAPTION_INDEX_COLUMN,
    CaptionEmbeddings,
    add_caption_index_column,
    check_text_args,
    load_text_encoder,
    sample_prompts_of,
)
from .training_args import DEFAULT_EVAL_NUM_INFERENCE_STEPS, build_parser
from .training_utils import (
    AUTO_PRESETS,
    GUIDANCE_UNET_FOLDER,
    EpochBatches,
    autoguidance_step,
    check_processes_in_sync,
    cpu_threads_per_process,
    check_resume_checkpoint,
    check_training_arguments,
    checkpoint_step,
    ema_unet,
    end_training,
    evaluate_on_mnist,
    hardware_description,
    list_checkpoints,
    load_model_config,
    model_config_differences,
    remove_previous_run,
    resolve_guidance_arguments,
    resolve_preset,
    resolve_resume_checkpoint,
    save_checkpoint,
    tracker_config,
)
from .training_step import DiffusionTrainingStep, OptimizationSettings, make_ema, make_optimizer

logger = get_logger(__name__, log_level="INFO")
# Small images are drawn this many times larger in the sample grids, so that a person can judge them.
GRID_SCALE = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """
    Parses and checks the command line of the training program (see `training_args.build_parser`).

    Args:
        argv (`list[str]`, *optional*): The arguments; defaults to `sys.argv[1:]`.

    Returns:
        `argparse.Namespace`: The checked arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Refuses argument values that would fail later, before any data is read or any file written."""
    positive = (
        "train_batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "ddpm_num_steps",
        "checkpointing_steps",
        "save_images_epochs",
        "save_model_epochs",
        "logging_steps",
        "num_epochs",
    )
    for name in positive:
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be at least 1, got {getattr(args, name)}.")
    if args.num_cpu_threads is not None and args.num_cpu_threads < 1:
        raise ValueError(f"`--num_cpu_threads` must be at least 1 when given, got {args.num_cpu_threads}.")
    for name in ("lr_warmup_steps", "dataloader_num_workers", "data_on_device_max_mib", "eval_num_images"):
        if getattr(args, name) < 0:
            raise ValueError(f"`--{name}` must be 0 or more, got {getattr(args, name)}.")
    for name in ("max_train_steps", "save_images_steps", "checkpoints_total_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be at least 1 when given, got {getattr(args, name)}.")
    if args.eval_num_inference_steps is None:
        args.eval_num_inference_steps = min(DEFAULT_EVAL_NUM_INFERENCE_STEPS, args.ddpm_num_steps)
    for name in ("ddpm_num_inference_steps", "eval_num_inference_steps"):
        steps = getattr(args, name)
        if steps is not None and not 1 <= steps <= args.ddpm_num_steps:
            raise ValueError(
                f"`--{name}` must be between 1 and `--ddpm_num_steps` ({args.ddpm_num_steps}), got {steps}."
            )
    if not 0.0 <= args.class_dropout_prob < 1.0:
        raise ValueError(f"`--class_dropout_prob` must be in [0, 1), got {args.class_dropout_prob}.")
    for device_type in AUTO_PRESETS:
        model_kwargs = load_model_config(args.model_config, device_type)
        num_levels = len(model_kwargs.get("block_out_channels", ())) or NOTEBOOK_NUM_LEVELS
        check_spatial_size(args.resolution, args.resolution, argument="--resolution", num_levels=num_levels)
    check_training_arguments(args)
    check_text_args(args)
    resolve_guidance_arguments(args)
    resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    eval_scheduler_class, _ = resolve_scheduler(args.eval_scheduler, argument="--eval_scheduler")
    if args.eval_clip_sample and eval_scheduler_class is not None:
        clipping_overrides(eval_scheduler_class, argument="--eval_clip_sample")
    output_dir = Path(args.output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not (args.overwrite_output_dir or args.resume_from_checkpoint):
            raise ValueError(
                f"`--output_dir` {output_dir} is not empty: pass `--overwrite_output_dir` to train into it, or "
                "`--resume_from_checkpoint latest` to continue its run."
            )
    for flag, given in (("--hub_token", args.hub_token is not None), ("--hub_private_repo", args.hub_private_repo)):
        if given and not args.push_to_hub:
            raise ValueError(f"`{flag}` is for uploads: add `--push_to_hub`, or leave it out.")
    if args.push_to_hub:
        from huggingface_hub import get_token

        if args.hub_token is None and get_token() is None:
            raise ValueError(
                "`--push_to_hub` needs a Hub token: pass `--hub_token` or log in with `hf auth login` first."
            )


def class_names_of(dataset: datasets.Dataset, label_column: str) -> list[str]:
    """The class names of a label column: a `ClassLabel`'s names, else the label values as strings."""
    if label_column not in dataset.column_names:
        raise ValueError(
            f"`--class_conditional` needs class labels, and `--label_column` {label_column!r} is not a column of the "
            f"dataset (columns: {dataset.column_names}). An image folder (`--train_data_dir`) gets its labels from "
            "class subfolders, one per class (such as images/cat/1.png, images/dog/2.png); a dataset "
            "(`--dataset_name`) names its label column with `--label_column`."
        )
    feature = dataset.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    labels = dataset.unique(label_column)
    if not all(isinstance(label, int) and label >= 0 for label in labels):
        raise ValueError(f"`--label_column` {label_column!r} must hold class indices (non-negative integers).")
    return [str(label) for label in range(max(labels) + 1)]


def optimization_settings(args: argparse.Namespace) -> OptimizationSettings:
    """The optimizer, clipping and EMA settings of the command line."""
    names = OptimizationSettings.__dataclass_fields__
    return OptimizationSettings(**{name: getattr(args, name) for name in names})


def make_device_batches(
    args: argparse.Namespace,
    accelerator: Accelerator,
    dataset: datasets.Dataset,
    image_column: str,
    transform: ImageTransform,
    label_column: str | None,
) -> DeviceImageBatches | None:
    """
    The batches of `--data_on_device`: the dataset held on the device, or `None` to keep the DataLoader.

    Args:
        args (`argparse.Namespace`): The checked arguments.
        accelerator (`Accelerator`): The run's accelerator (device, processes).
        dataset (`datasets.Dataset`): The training dataset.
        image_column (`str`): Its image column.
        transform (`ImageTransform`): The training transform.
        label_column (`str`, *optional*): Its label column, for class-conditional training.
    """
    if args.data_on_device == "never":
        return None
    loaded = load_images_to_memory(
        dataset, image_column, transform, max_bytes=args.data_on_device_max_mib * 2**20, label_column=label_column
    )
    if loaded is None:
        reason = (
            f"its images do not share one size after resizing to {args.resolution} or take more than "
            f"`--data_on_device_max_mib` {args.data_on_device_max_mib} MiB"
        )
        if args.data_on_device == "always":
            raise ValueError(f"`--data_on_device always` cannot hold the dataset on the device: {reason}.")
        logger.info(f"Keeping the DataLoader: {reason}.")
        return None
    images, labels = loaded
    logger.info(f"Holding {len(images)} images ({images.numel() / 2**20:.0f} MiB of uint8) on {accelerator.device}.")
    return DeviceImageBatches(
        images,
        transform,
        args.train_batch_size,
        accelerator.device,
        labels=labels,
        seed=args.seed,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
    )


def train(args: argparse.Namespace) -> None:
    """
    Trains a pipeline as `args` (from `parse_args`) say and saves it, with its model card, to `args.output_dir`.

    Args:
        args (`argparse.Namespace`): The checked arguments of `parse_args`.
    """
    logging_dir = os.path.join(args.output_dir, args.logging_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.logger,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=logging_dir),
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True, data_seed=args.seed, non_blocking=True
        ),
    )
    if args.mixed_precision == "fp16" and accelerator.device.type != "cuda":
        raise ValueError("`--mixed_precision fp16` needs a CUDA GPU; use `bf16` (or `no`) on this device.")
    if accelerator.device.type == "cpu":
        torch.set_num_threads(args.num_cpu_threads or cpu_threads_per_process(accelerator.num_processes))
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    set_seed(args.seed)
    resume_checkpoint = resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if resume_checkpoint is not None:
        check_resume_checkpoint(
            resume_checkpoint,
            accelerator.num_processes,
            use_ema=args.use_ema,
            resume_without_random_states=args.resume_without_random_states,
        )
    if args.push_to_hub and accelerator.is_main_process:
        # As in diffusers' training scripts, the repository is created (or found) before any work, so that a bad token
        # or an unreachable Hub stops the run at once; the full "namespace/name" id then goes into the model card.
        from .hub_utils import create_pipeline_repo

        repo_name = args.hub_model_id or Path(args.output_dir).resolve().name
        _, args.hub_model_id = create_pipeline_repo(repo_name, private=args.hub_private_repo, token=args.hub_token)

    # Data: every source reaches the loop as a `datasets.Dataset` through the same path.
    dataset = load_training_dataset(
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        train_data_dir=args.train_data_dir,
        cache_dir=args.cache_dir,
    )
    builtin_mnist = args.dataset_name is None and args.train_data_dir is None
    image_column = resolve_image_column(dataset, args.image_column)
    if args.skip_unreadable_images:
        dataset = drop_unreadable_images(dataset, image_column)
    image_sizes = scan_images(dataset, image_column)
    image_sizes.warn_if_upscaled(args.resolution)
    num_channels = args.num_channels or image_sizes.num_channels
    class_names = class_names_of(dataset, args.label_column) if args.class_conditional else None
    transform = ImageTransform(args.resolution, num_channels, center_crop=args.center_crop, random_flip=args.random_flip)
    label_column = args.label_column if args.class_conditional else None
    text_encoder = caption_embeddings = None
    if args.text_conditional:
        # The batches then carry each image's index in the caption table under "class_labels".
        label_column = CAPTION_INDEX_COLUMN
        caption_column = None if builtin_mnist else args.caption_column
        dataset, captions = add_caption_index_column(dataset, caption_column, seed=args.seed)
        sample_prompts = sample_prompts_of(dataset, caption_column)
        tokenizer, text_encoder, text_encoder_source, text_encoder_license = load_text_encoder(
            args.text_encoder_name_or_path, args.text_encoder_license
        )
        text_encoder.to(accelerator.device)
        caption_embeddings = CaptionEmbeddings(captions, tokenizer, text_encoder, accelerator.device)
        logger.info(f"  Encoded {len(captions)} distinct captions once, with {type(text_encoder).__name__}")
    device_batches = make_device_batches(args, accelerator, dataset, image_column, transform, label_column)
    train_dataloader = None
    if device_batches is None:
        train_dataloader = make_train_dataloader(
            dataset,
            image_column,
            transform,
            batch_size=args.train_batch_size,
            num_workers=args.dataloader_num_workers,
            # Its own generator keeps the loader's draws off the global RNG, so a resumed run draws the same noise.
            generator=torch.Generator().manual_seed(args.seed),
            label_column=label_column,
            seed=args.seed,
            pin_memory=accelerator.device.type == "cuda",
        )

    # Model, noise scheduler, optimizer.
    model_config = load_model_config(args.model_config, accelerator.device.type)
    if text_encoder is not None:
        model_config["cross_attention_dim"] = text_encoder.config.hidden_size
    unet = SimpleUNet2DModel(
        sample_size=args.resolution,
        in_channels=num_channels,
        out_channels=num_channels,
        num_class_embeds=len(class_names) if class_names else None,
        **model_config,
    )
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    unet = unet.to(memory_format=memory_format)
    noise_scheduler = SimpleDDPMScheduler(
        num_train_timesteps=args.ddpm_num_steps,
        beta_schedule=args.ddpm_beta_schedule,
        prediction_type=args.prediction_type,
    )
    if args.compile:
        unet.compile()
    settings = optimization_settings(args)
    optimizer = make_optimizer(unet.parameters(), settings, accelerator.device)

    # The schedule counts optimizer updates; accelerate steps a prepared scheduler once per process and update.
    if device_batches is not None:
        batches_per_process = len(device_batches)
    else:
        batches_per_process = math.ceil(len(train_dataloader) / accelerator.num_processes)
    updates_per_epoch = math.ceil(batches_per_process / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * updates_per_epoch
    num_epochs = math.ceil(max_train_steps / updates_per_epoch)
    # diffusers' `constant` schedule has no warm-up (`constant_with_warmup` has): the card must not claim one.
    lr_warmup_steps = 0 if args.lr_scheduler == "constant" else args.lr_warmup_steps
    if lr_warmup_steps != args.lr_warmup_steps:
        logger.info(
            f"`--lr_scheduler constant` has no warm-up: the {args.lr_warmup_steps} updates of `--lr_warmup_steps` are "
            "not used (`--lr_scheduler constant_with_warmup` uses them)."
        )
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=lr_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    if train_dataloader is not None:
        train_dataloader = accelerator.prepare(train_dataloader)

    ema_model = None
    if args.use_ema:
        ema_model = make_ema(
            unet, settings, model_cls=SimpleUNet2DModel, model_config=accelerator.unwrap_model(unet).config
        )
        ema_model.to(accelerator.device)
    # Autoguidance: after `guidance_step` updates the EMA weights (the weights without EMA) are frozen as the guiding
    # model; checkpoints from then on carry it, so that a resumed run guides with the same one.
    guidance_step = autoguidance_step(args.autoguidance_fraction, max_train_steps)
    if args.autoguidance_fraction > 0 and guidance_step is None:
        logger.warning(
            f"Autoguidance is off: `--autoguidance_fraction {args.autoguidance_fraction}` of {max_train_steps} updates "
            "leaves no update between the guide and the final weights, so guidance would change nothing; the samples "
            "are drawn unguided."
        )
        args.autoguidance_fraction, args.eval_guidance_scale = 0.0, 1.0
    guidance_unet = None

    def exported_unet() -> SimpleUNet2DModel:
        # A copy of the weights a pipeline gets, the EMA's when there is one, in evaluation mode.
        trained = accelerator.unwrap_model(unet)
        if ema_model is not None:
            return ema_unet(ema_model, trained)
        model = SimpleUNet2DModel.from_config(trained.config)
        model.load_state_dict(trained.state_dict())
        return model.to(trained.device).eval()

    training_step = DiffusionTrainingStep(
        noise_scheduler,
        optimizer,
        lr_scheduler,
        ema_model=ema_model,
        max_grad_norm=settings.max_grad_norm,
        snr_gamma=settings.snr_gamma,
        num_class_embeds=len(class_names) if class_names else None,
        class_dropout_prob=settings.class_dropout_prob,
        caption_embeddings=caption_embeddings,
        caption_dropout=args.caption_dropout,
        memory_format=memory_format,
        backward=accelerator.backward,
        clip_grad_norm=accelerator.clip_grad_norm_,
    )

    # Checkpoints hold the model (and its EMA) in diffusers format; accelerate adds optimizer, schedule and RNG states.
    # The training time of the sessions before a resume travels in each checkpoint, so that the card counts them all.
    training_clock = {"previous_seconds": 0.0, "session_start": time.perf_counter()}

    def training_seconds() -> float:
        return training_clock["previous_seconds"] + time.perf_counter() - training_clock["session_start"]

    def save_model_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            write_training_time(output_dir, training_seconds())
            if ema_model is not None:
                ema_model.save_pretrained(os.path.join(output_dir, "unet_ema"))
            if guidance_unet is not None:
                guidance_unet.save_pretrained(os.path.join(output_dir, GUIDANCE_UNET_FOLDER))
            for model in models:
                accelerator.unwrap_model(model).save_pretrained(os.path.join(output_dir, "unet"))
                weights.pop()

    def load_model_hook(models, input_dir):
        nonlocal guidance_unet
        saved_config = SimpleUNet2DModel.load_config(os.path.join(input_dir, "unet"))
        differences = model_config_differences(saved_config, accelerator.unwrap_model(unet).config)
        if differences:
            raise ValueError(
                f"Checkpoint {input_dir} holds another network than this run builds ({'; '.join(differences)}): resume "
                "with the flags of the run that saved it (`--model_config`, `--class_conditional`, `--resolution`, "
                "...), or train into a new `--output_dir`."
            )
        training_clock["previous_seconds"] = read_training_time(input_dir)
        if guidance_step is not None and os.path.isdir(os.path.join(input_dir, GUIDANCE_UNET_FOLDER)):
            guidance_unet = SimpleUNet2DModel.from_pretrained(input_dir, subfolder=GUIDANCE_UNET_FOLDER)
            guidance_unet = guidance_unet.to(accelerator.device).eval().requires_grad_(False)
        if ema_model is not None:
            saved_ema = EMAModel.from_pretrained(os.path.join(input_dir, "unet_ema"), SimpleUNet2DModel)
            ema_model.load_state_dict(saved_ema.state_dict())
            ema_model.to(accelerator.device)
        while models:
            model = accelerator.unwrap_model(models.pop())
            saved = SimpleUNet2DModel.from_pretrained(input_dir, subfolder="unet")
            model.load_state_dict(saved.state_dict())

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)

    if accelerator.is_main_process:
        if args.overwrite_output_dir and not args.resume_from_checkpoint:
            remove_previous_run(args.output_dir, args.logging_dir)
        os.makedirs(args.output_dir, exist_ok=True)
        accelerator.init_trackers("train_simple_ddpm", config=tracker_config(args))

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(f"  Num examples = {len(dataset)}")
    logger.info(f"  Num epochs = {num_epochs}")
    logger.info(f"  Instantaneous batch size per device = {args.train_batch_size}")
    logger.info(f"  Total train batch size (w. parallel, distributed & accumulation) = {total_batch_size}")
    logger.info(f"  Gradient accumulation steps = {args.gradient_accumulation_steps}")
    logger.info(f"  Total optimization steps = {max_train_steps}")
    logger.info(
        f"  Network = --model_config {args.model_config} ({resolve_preset(args.model_config, accelerator.device.type)}"
        f"), {sum(parameter.numel() for parameter in unet.parameters()):,} parameters"
    )

    global_step = 0
    first_epoch = 0
    if resume_checkpoint is not None:
        accelerator.print(f"Resuming from checkpoint {resume_checkpoint}")
        accelerator.load_state(str(resume_checkpoint))
        global_step = checkpoint_step(resume_checkpoint)
        first_epoch = global_step // updates_per_epoch
        if guidance_step is not None and global_step >= guidance_step and guidance_unet is None:
            raise ValueError(
                f"Checkpoint {resume_checkpoint} has no {GUIDANCE_UNET_FOLDER}/, the guiding model that "
                f"`--autoguidance_fraction {args.autoguidance_fraction}` takes after update {guidance_step}: it was "
                "saved by a run without autoguidance. Resume with `--autoguidance_fraction 0`."
            )
        if global_step >= max_train_steps:
            # A finished run (or one killed after its last checkpoint) only exports: no update beyond the asked ones.
            accelerator.print(f"Step {global_step} reaches --max_train_steps {max_train_steps}: nothing left to train.")
            first_epoch = num_epochs
    elif args.resume_from_checkpoint:
        accelerator.print(f"No checkpoint in {args.output_dir} yet: starting a new run.")

    # The sample grids and the evaluation sample under the autocast of the training's mixed precision.
    sampling_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision)

    def sampling_guidance_scale(pipeline: SimpleDDPMPipeline) -> float:
        # An autoguided run's pipelines have no guiding model before `guidance_step`: their grids are drawn unguided.
        unguided = guidance_step is not None and pipeline.guidance_unet is None
        return 1.0 if unguided else args.eval_guidance_scale

    def save_sample_grid(pipeline: SimpleDDPMPipeline, step: int) -> str:
        sampling_pipeline, _ = with_scheduler(pipeline, args.eval_scheduler, clip_sample=args.eval_clip_sample)
        generator = torch.Generator(device="cpu").manual_seed(args.seed)
        if isinstance(pipeline, SimpleDDPMTextPipeline):
            prompts = pipeline.config.sample_prompts
            condition = {"prompt": in_turn(prompts, args.eval_batch_size)}
        else:
            labels = in_turn(range(len(class_names)), args.eval_batch_size) if class_names else None
            condition = {"batch_size": args.eval_batch_size, "class_labels": labels}
        num_inference_steps = args.ddpm_num_inference_steps or args.eval_num_inference_steps
        with torch.autocast(accelerator.device.type, dtype=sampling_dtype, enabled=sampling_dtype is not None):
            images = sampling_pipeline(
                generator=generator,
                num_inference_steps=num_inference_steps,
                guidance_scale=sampling_guidance_scale(pipeline),
                **condition,
            ).images
        grid = make_sample_grid(images, scale=GRID_SCALE if args.resolution < 64 else 1)
        grid_path = os.path.join(args.output_dir, SAMPLE_GRID_NAME)
        grid.save(grid_path)
        tracker = accelerator.get_tracker(args.logger, unwrap=True)
        if args.logger == "tensorboard":
            tracker.add_image("samples", np.asarray(grid.convert("RGB")), step, dataformats="HWC")
        else:
            import wandb

            tracker.log({"samples": wandb.Image(grid)}, step=step)
        return grid_path

    def export_pipeline() -> SimpleDDPMPipeline:
        model = exported_unet()
        if text_encoder is not None:
            pipeline = SimpleDDPMTextPipeline(
                unet=model,
                scheduler=noise_scheduler,
                text_encoder=text_encoder,
                tokenizer=tokenizer,
                text_encoder_source=text_encoder_source,
                text_encoder_license=text_encoder_license,
                sample_prompts=sample_prompts,
            )
        else:
            pipeline = SimpleDDPMPipeline(
                unet=model, scheduler=noise_scheduler, class_names=class_names, guidance_unet=guidance_unet
            )
        pipeline.set_progress_bar_config(desc="Sampling", leave=False)
        return pipeline

    def check_loss(loss_sum: torch.Tensor) -> float:
        value = loss_sum.item()
        if not math.isfinite(value):
            raise RuntimeError(
                f"The training loss became {value} at step {global_step}; stopping before anything is saved. Lower "
                "`--learning_rate`, use `--mixed_precision bf16` or `no` instead of fp16, or resume from the last "
                "checkpoint."
            )
        return value

    progress_bar = tqdm(
        total=max_train_steps, initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )
    loss_sum = torch.zeros((), device=accelerator.device)
    logged_batches = 0
    interval_start, interval_images = time.perf_counter(), 0
    training_clock["session_start"] = time.perf_counter()
    for epoch in range(first_epoch, num_epochs):
        unet.train()
        skipped = (global_step - epoch * updates_per_epoch) * args.gradient_accumulation_steps
        if device_batches is not None:
            skipped = max(skipped, 0)
            epoch_batches = EpochBatches(
                device_batches.epoch_batches(epoch, skip=skipped), len(device_batches) - skipped
            )
        else:
            train_dataloader.set_epoch(epoch)
            train_dataloader.dataset.set_epoch(epoch)
            epoch_batches = (
                accelerator.skip_first_batches(train_dataloader, skipped) if skipped > 0 else train_dataloader
            )
        for batch in epoch_batches:
            clean_images = batch["input"]
            with accelerator.accumulate(unet):
                loss = training_step(
                    unet, clean_images, batch.get("class_labels"), sync_gradients=accelerator.sync_gradients
                )
            loss_sum += loss
            logged_batches += 1
            interval_images += clean_images.shape[0] * accelerator.num_processes

            if not accelerator.sync_gradients:
                continue
            global_step += 1
            progress_bar.update(1)
            if global_step == guidance_step:
                guidance_unet = exported_unet().requires_grad_(False)
                logger.info(f"Took the guiding model of autoguidance after update {global_step}.")

            if global_step % args.logging_steps == 0 or global_step == max_train_steps:
                mean_loss = check_loss(accelerator.reduce(loss_sum, reduction="mean")) / logged_batches
                images_per_second = interval_images / (time.perf_counter() - interval_start)
                logs = {"loss": mean_loss, "lr": lr_scheduler.get_last_lr()[0], "images_per_s": images_per_second}
                if ema_model is not None:
                    logs["ema_decay"] = ema_model.cur_decay_value
                progress_bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{logs['lr']:.2e}", img_s=f"{images_per_second:.0f}")
                accelerator.log(logs, step=global_step)
                loss_sum.zero_()
                logged_batches = 0
                interval_start, interval_images = time.perf_counter(), 0

            if global_step % args.checkpointing_steps == 0:
                check_loss(loss_sum)
                checkpoint = save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
                logger.info(f"Saved state to {checkpoint}")
            if args.save_images_steps and global_step % args.save_images_steps == 0 and accelerator.is_main_process:
                save_sample_grid(export_pipeline(), global_step)
            if global_step >= max_train_steps:
                break

        last_epoch = epoch == num_epochs - 1 or global_step >= max_train_steps
        if accelerator.is_main_process and not last_epoch:
            if (epoch + 1) % args.save_images_epochs == 0:
                save_sample_grid(export_pipeline(), global_step)
            if (epoch + 1) % args.save_model_epochs == 0:
                export_pipeline().save_pretrained(args.output_dir)
        if global_step >= max_train_steps:
            break
    progress_bar.close()
    wall_time = training_seconds()

    check_loss(loss_sum)
    check_processes_in_sync(accelerator, unet)
    accelerator.print(f"All {accelerator.num_processes} processes hold identical weights.")
    if accelerator.is_main_process:
        pipeline = export_pipeline()
        grid_path = save_sample_grid(pipeline, global_step)
        evaluation = None
        if builtin_mnist and args.eval_num_images:
            evaluation = evaluate_on_mnist(
                pipeline,
                args.eval_num_images,
                scheduler=args.eval_scheduler,
                clip_sample=args.eval_clip_sample,
                num_inference_steps=args.eval_num_inference_steps,
                seed=args.seed,
                autocast_dtype=sampling_dtype,
                guidance_scale=sampling_guidance_scale(pipeline),
            )
            accelerator.log({"eval/fast_fd": next(iter(evaluation.metrics.values()))}, step=global_step)
        hardware = hardware_description(accelerator.device, accelerator.num_processes)
        card_dataset_name, card_dataset_id = training_data_for_card(
            args.dataset_name, args.train_data_dir, args.dataset_card_name
        )
        pipeline.training_details = TrainingDetails(
            dataset_name=card_dataset_name,
            dataset_id=card_dataset_id,
            num_train_steps=global_step,
            num_epochs=global_step / updates_per_epoch,
            train_batch_size=args.train_batch_size,
            num_processes=accelerator.num_processes,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            learning_rate=args.learning_rate,
            lr_scheduler=args.lr_scheduler,
            lr_warmup_steps=lr_warmup_steps,
            mixed_precision=args.mixed_precision,
            use_ema=args.use_ema,
            ema_max_decay=args.ema_max_decay,
            ema_inv_gamma=args.ema_inv_gamma,
            ema_power=args.ema_power,
            snr_gamma=args.snr_gamma,
            hardware=hardware,
            wall_time_seconds=wall_time,
            seed=args.seed,
            evaluation=evaluation,
            sample_grid=grid_path,
            model_config=(
                f"auto: {resolve_preset('auto', accelerator.device.type)}"
                if args.model_config == "auto"
                else os.path.basename(args.model_config)
            ),
            autoguidance_step=guidance_step if guidance_unet is not None else None,
            caption_dropout=args.caption_dropout if text_encoder is not None else None,
        )
        # Saved here first, so that a failed upload leaves the pipeline in the folder to upload again.
        pipeline.save_pretrained(args.output_dir, repo_id=args.hub_model_id, include_code=args.include_code)
        if args.push_to_hub:
            try:
                pipeline.push_to_hub(
                    args.hub_model_id, token=args.hub_token, private=args.hub_private_repo, include_code=args.include_code
                )
            except Exception as error:
                raise RuntimeError(
                    f"The pipeline is saved in {args.output_dir}, but its upload to {args.hub_model_id} failed "
                    f"({type(error).__name__}: {error}). Upload the folder, model card included, once the Hub is "
                    f"reachable: `hf upload {args.hub_model_id} {args.output_dir} --exclude 'checkpoint-*' "
                    "--exclude 'logs/*'`."
                ) from error
        logger.info(f"Trained {global_step} steps in {wall_time / 60:.1f} min on {hardware}.")
        if evaluation is not None:
            for name, value in {**evaluation.metrics, **evaluation.floors}.items():
                accelerator.print(f"{name}: {value:.4g}")
        accelerator.print(
            f"Pipeline saved to {args.output_dir} (load it with {type(pipeline).__name__}.from_pretrained("
            f"{args.output_dir!r})); "
            f"sample grid: {os.path.join(args.output_dir, SAMPLE_GRID_NAME)}"
        )
    end_training(accelerator)


def remove_failed_start(output_dir: str | os.PathLike, keep_folder: bool) -> None:
    """
    Removes what a run that failed before saving anything wrote into its (formerly empty or missing) `output_dir`:
    tracker logs, partial checkpoints, sample grids. Left alone when it holds a checkpoint or a pipeline, which a rerun
    resumes or keeps.

    Args:
        output_dir (`str` or `os.PathLike`): The run's `--output_dir`.
        keep_folder (`bool`): Whether the folder existed before the run (it is then emptied, not removed).
    """
    folder = Path(output_dir)
    if not folder.is_dir() or list_checkpoints(folder) or (folder / SimpleDDPMPipeline.config_name).exists():
        return
    if not keep_folder:
        shutil.rmtree(folder)
        return
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def main(argv: list[str] | None = None) -> None:
    """
    Parses the command line (`argv`, default `sys.argv[1:]`) and trains.

    A run into a new or empty `--output_dir` that fails before its first checkpoint leaves the folder as it found it, so
    the rerun is not refused as "not empty".

    Args:
        argv (`list[str]`, *optional*): The arguments, as typed after `scripts/train.py`.
    """
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir_existed = output_dir.exists()
    fresh_output_dir = not output_dir_existed or not any(output_dir.iterdir())
    try:
        train(args)
    except BaseException:
        # Only the main process writes into the output folder (RANK is set by `accelerate launch` for each process).
        if fresh_output_dir and int(os.environ.get("RANK", "0")) == 0:
            remove_failed_start(output_dir, keep_folder=output_dir_existed)
        raise


if __name__ == "__main__":
    main()
