"""Sample quality at equal training time: our preset, the notebook network and diffusers' `UNet2DModel`.

    python scripts/benchmarks/benchmark_quality.py [--dataset mnist] [--model_config auto] [--budget_minutes 10]
    python scripts/benchmarks/benchmark_quality.py --dataset cifar10 --train_data_dir DIR/train --num_samples 10000

Three networks train for the same wall-clock budget with the same recipe, the training program's update in the bare
loop of `benchmark_utils.BareTrainer` (AdamW with the program's defaults, warm-up then a constant learning rate,
gradient clipping, EMA, bf16 autocast; batches drawn from images held in memory): the `--model_config` preset
(`auto`: the device's preset, as `scripts/train.py` picks it), the notebook network (`notebook` preset) and diffusers'
`UNet2DModel` in the DDPM paper's layout scaled to about the preset's parameter count, with attention at the preset's
levels. The training program itself trains only `SimpleUNet2DModel`, hence the bare loop for all three. Each EMA
network samples with each sampler through `diffusers_simple_ddpm.sampling.generate_images`, and each figure stands
beside its floor (real images at the same count): fast Fréchet distance in the MNIST classifier's features for MNIST,
Inception FID (pytorch-fid protocol) against the 50,000 training images for CIFAR-10 (their statistics are cached,
keyed by the folder's content).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from benchmark_utils import (
    SAMPLERS,
    BareTrainer,
    add_common_arguments,
    bar_chart,
    chart_path,
    count_parameters,
    diffusers_unet_like,
    make_simple_unet,
    markdown_table,
    mnist_tensor,
    sampling_pipeline,
    setup,
    write_report,
)
from diffusers.utils import numpy_to_pil

from diffusers_simple_ddpm.evaluation import SampleEvaluator
from diffusers_simple_ddpm.evaluation_images import image_file_paths, load_image_files, to_image_tensor
from diffusers_simple_ddpm.image_utils import make_sample_grid
from diffusers_simple_ddpm.sampling import generate_images
from diffusers_simple_ddpm.training_args import (
    AUTO_PRESETS,
    DEFAULT_BETA_SCHEDULE,
    DEFAULT_EVAL_NUM_INFERENCE_STEPS,
    DEFAULT_PREDICTION_TYPE,
    DEFAULT_TRAIN_BATCH_SIZE,
    MODEL_PRESETS,
)

NAME = "quality"
# The training program's default evaluation sampler (`--eval_scheduler ddpm` with clipping), as a `SAMPLERS` setting.
EVAL_SAMPLER = ("DDPM clip", DEFAULT_EVAL_NUM_INFERENCE_STEPS)
# (sampler label of `benchmark_utils.SAMPLERS`, steps); DDPM 1000 is the notebook's ancestral sampler.
SAMPLER_SETTINGS = (
    ("DDPM", 1000),
    EVAL_SAMPLER,
    ("DDIM", 50),
    ("DPM-Solver++", 20),
    ("DPM-Solver++", 10),
    ("DPM-Solver++ clip", 20),
    ("DPM-Solver++ clip", 10),
)
QUICK_SAMPLER_SETTINGS = (("DDPM", 4), ("DDIM", 2), ("DPM-Solver++", 2), ("DPM-Solver++ clip", 2))
# The sampler of the grids (the training program's evaluation sampler), else the first of the run.
GRID_SAMPLER = EVAL_SAMPLER
# Settings with more steps than this sample `--num_ddpm_samples` images (slow on a CPU).
SLOW_SAMPLER_STEPS = 250
GRID_SIDE = 8
GRID_SCALE = 3
DATASETS = {"mnist": (28, 1), "cifar10": (32, 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--dataset", type=str, default="mnist", choices=list(DATASETS), help="What to train on.")
    parser.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help="CIFAR-10's train/ folder (class subfolders of JPEGs): the training images and the FID reference.",
    )
    parser.add_argument(
        "--floor_data_dir",
        type=str,
        default=None,
        help="CIFAR-10 images of the floor (default: the test/ folder beside --train_data_dir).",
    )
    parser.add_argument(
        "--model_config",
        type=str,
        default="auto",
        choices=["auto", *(name for name in MODEL_PRESETS if name != "notebook")],
        help="Our preset; auto: the training program's choice for the device.",
    )
    parser.add_argument("--budget_minutes", type=float, default=10.0, help="Training wall-clock budget per network.")
    parser.add_argument(
        "--batch_size", type=int, default=DEFAULT_TRAIN_BATCH_SIZE, help="Training batch size (the training program's)."
    )
    parser.add_argument(
        "--num_samples", type=int, default=None, help="Samples per figure (default: 10,000 on a GPU, 1,000 on a CPU)."
    )
    parser.add_argument(
        "--num_ddpm_samples",
        type=int,
        default=None,
        help=f"Samples of the figures of samplers with more than {SLOW_SAMPLER_STEPS} steps (DDPM 1000; default: "
        "--num_samples on a GPU, 200 on a CPU).",
    )
    parser.add_argument("--sample_batch_size", type=int, default=None, help="Samples per pipeline call.")
    parser.add_argument(
        "--samplers",
        type=str,
        nargs="+",
        default=None,
        help=f"Samplers as LABEL:STEPS, LABEL one of {', '.join(SAMPLERS)} (default: "
        f"{' '.join(f'{label}:{steps}' for label, steps in SAMPLER_SETTINGS)}).",
    )
    parser.add_argument(
        "--models",
        type=str,
        nargs="+",
        default=["ours", "notebook", "diffusers"],
        choices=["ours", "notebook", "diffusers"],
        help="The networks to compare.",
    )
    args = parser.parse_args(argv)
    if args.dataset == "cifar10" and args.train_data_dir is None:
        parser.error("--dataset cifar10 needs --train_data_dir (the train/ folder of cifar10-jpg.tar.gz).")
    if args.dataset == "mnist" and args.train_data_dir is not None:
        parser.error("--train_data_dir is for --dataset cifar10; MNIST is built in.")
    on_gpu = args.device.startswith("cuda")
    if args.model_config == "auto":
        args.model_config = "cifar10" if args.dataset == "cifar10" else AUTO_PRESETS["cuda" if on_gpu else "cpu"]
    if args.num_samples is None:
        args.num_samples = 10_000 if on_gpu else 1_000
    if args.num_ddpm_samples is None:
        args.num_ddpm_samples = args.num_samples if on_gpu else min(args.num_samples, 200)
    if args.sample_batch_size is None:
        args.sample_batch_size = 1000 if on_gpu else 100
    args.samplers = parse_samplers(parser, args.samplers, QUICK_SAMPLER_SETTINGS if args.quick else SAMPLER_SETTINGS)
    if args.quick:
        args.budget_minutes, args.batch_size, args.sample_batch_size = 0.02, 8, 16
        args.num_samples = args.num_ddpm_samples = 16
    for name in ("num_samples", "num_ddpm_samples"):
        if getattr(args, name) < 2:
            parser.error(f"--{name} must be at least 2 (a covariance needs two samples), got {getattr(args, name)}.")
    return args


def parse_samplers(
    parser: argparse.ArgumentParser, samplers: list[str] | None, default: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    """The `--samplers` values as (label, steps) pairs, or `default` when none are given."""
    if samplers is None:
        return default
    settings = []
    for sampler in samplers:
        label, _, steps = sampler.rpartition(":")
        if label not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
            parser.error(f"--samplers takes LABEL:STEPS with LABEL one of {', '.join(SAMPLERS)}, got {sampler!r}.")
        settings.append((label, int(steps)))
    return tuple(settings)


def folder_tensor(folder: str | Path) -> torch.Tensor:
    """The images of a folder (sorted by path) as a float tensor [N, C, H, W] in [-1, 1], as training sees them."""
    return to_image_tensor(load_image_files(image_file_paths(folder, "--train_data_dir"))).float() / 127.5 - 1.0


def build_models(args: argparse.Namespace, resolution: int, channels: int) -> dict[str, tuple[str, torch.nn.Module]]:
    """The networks to compare, by key of `--models`: (name in the report, freshly initialised network)."""
    builders = {
        "ours": (
            f"SimpleUNet2DModel `{args.model_config}`",
            lambda: make_simple_unet(args.model_config, resolution, channels),
        ),
        "notebook": ("SimpleUNet2DModel `notebook`", lambda: make_simple_unet("notebook", resolution, channels)),
        "diffusers": ("diffusers UNet2DModel", lambda: diffusers_unet_like(args.model_config, resolution, channels)),
    }
    models = {}
    for key in args.models:
        torch.manual_seed(args.seed)
        name, build = builders[key]
        models[key] = (name, build())
    return models


def save_grid(samples: torch.Tensor, path: Path) -> None:
    """The first 8x8 samples in a grid, enlarged `GRID_SCALE` times (nearest neighbour) to be judged by eye."""
    count = min(len(samples), GRID_SIDE * GRID_SIDE)
    images = numpy_to_pil(samples[:count].permute(0, 2, 3, 1).numpy())
    grid = make_sample_grid(images, columns=GRID_SIDE)
    grid.resize((grid.width * GRID_SCALE, grid.height * GRID_SCALE), PIL.Image.Resampling.NEAREST).save(path)


class Scorer:
    """The dataset's figure and its floor at the same sample count: fast FD (MNIST) or Inception FID (CIFAR-10)."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.dataset = args.dataset
        if args.dataset == "mnist":
            self.metric, self.floor_images = "fast FD", None
            self.evaluator = SampleEvaluator(metrics=("fast",), device=device)
        else:
            self.metric = "Inception FID"
            self.evaluator = SampleEvaluator(reference=args.train_data_dir, metrics=("fid",), device=device)
            floor_dir = args.floor_data_dir or Path(args.train_data_dir).resolve().parent / "test"
            self.floor_images = to_image_tensor(load_image_files(image_file_paths(floor_dir, "--floor_data_dir")))
        self.floors = {}

    def score(self, samples: torch.Tensor) -> tuple[float, float]:
        """Returns the figure of `samples` and its floor (real images, as many as `samples`)."""
        if self.dataset == "mnist":
            results = self.evaluator.evaluate(samples, include_floor=True)
            return results["fast_fd"], results["fast_fd_floor"]
        count = len(samples)
        if count > len(self.floor_images):
            raise ValueError(f"The floor has {len(self.floor_images)} images, fewer than the {count} samples.")
        if count not in self.floors:
            chosen = np.sort(np.random.default_rng(0).choice(len(self.floor_images), count, replace=False))
            self.floors[count] = self.evaluator.evaluate(self.floor_images[torch.from_numpy(chosen)])["fid"]
        return self.evaluator.evaluate(samples)["fid"], self.floors[count]


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    resolution, channels = DATASETS[args.dataset]
    images = mnist_tensor("train") if args.dataset == "mnist" else folder_tensor(args.train_data_dir)
    budget_s = args.budget_minutes * 60
    settings = args.samplers
    grid_setting = GRID_SAMPLER if GRID_SAMPLER in settings else settings[0]
    precision = "bf16"
    scorer = Scorer(args, device)
    name = NAME if args.dataset == "mnist" else f"{NAME}-{args.dataset}"

    rows, training_rows, grid_lines, labels, values, floors = [], [], [], [], [], []
    for key, (model_name, model) in build_models(args, resolution, channels).items():
        trainer = BareTrainer(model, images, args.batch_size, device, precision, seed=args.seed)
        run = trainer.train_for(budget_s)
        training_rows.append(
            [model_name, f"{count_parameters(model) / 1e6:.2f}M", run["steps"], f"{run['seconds']:.0f}", run["loss"]]
        )
        ema_model = trainer.ema_copy()
        del trainer
        for sampler, steps in settings:
            count = args.num_ddpm_samples if steps > SLOW_SAMPLER_STEPS else args.num_samples
            samples = generate_images(
                sampling_pipeline(ema_model, sampler),
                count,
                steps,
                seed=args.seed,
                batch_size=args.sample_batch_size,
                output_type="pt",
            )
            value, floor = scorer.score(samples)
            rows.append([model_name, f"{sampler} {steps}", count, value, floor, value / floor])
            labels.append(f"{key}, {sampler} {steps}")
            values.append(value)
            floors.append(floor)
            print(rows[-1], flush=True)
            if (sampler, steps) == grid_setting:
                grid_path = chart_path(args.output_dir, name, device, f"-samples-{key}")
                save_grid(samples, grid_path)
                grid_lines += [f"{model_name}, {sampler} {steps}:", "", f"![{model_name}]({grid_path.name})", ""]
        del ema_model

    reference = (
        "the 10,000 MNIST test digits; floor: as many MNIST training digits as samples"
        if args.dataset == "mnist"
        else f"the {len(images):,} training images of `{args.train_data_dir}` (JPEG copies of CIFAR-10, not the "
        "published statistics); floor: as many test images as samples, drawn at random"
    )
    body = [
        f"Dataset {args.dataset}; every network trained for {args.budget_minutes:g} min of wall time with the same "
        "recipe: the training program's update in the bare loop (AdamW with the program's defaults, warm-up then a "
        f"constant learning rate, gradient clipping, EMA, {precision} autocast, batch {args.batch_size}, prediction "
        f"type {DEFAULT_PREDICTION_TYPE}, β schedule {DEFAULT_BETA_SCHEDULE}). The training program trains only "
        "`SimpleUNet2DModel`, so all three train in the bare loop. Diffusers' `UNet2DModel` has the DDPM paper's "
        "layout with the preset's levels, residual blocks per level and attention levels, its widths scaled to about "
        "the preset's parameter count.",
        "",
        *markdown_table(["network", "parameters", "updates", "seconds", "last loss"], training_rows),
        "",
        f"{scorer.metric} of the EMA weights against {reference}. Samples per figure: {args.num_samples} "
        f"({args.num_ddpm_samples} for samplers of more than {SLOW_SAMPLER_STEPS} steps). \"clip\": the predicted "
        "clean image clipped to [-1, 1] at every step (DDPM's `clip_sample`, DPM-Solver++'s dynamic thresholding at "
        "1.0).",
        "",
        *markdown_table(["network", "sampler", "samples", scorer.metric, "floor", "x floor"], rows),
        "",
        bar_chart(
            chart_path(args.output_dir, name, device),
            f"{scorer.metric} by network and sampler (lower is better; tick: floor)",
            labels,
            values,
            "",
            references=floors,
        ),
        "",
        f"Samples ({GRID_SIDE}x{GRID_SIDE}, enlarged {GRID_SCALE}x, seeds {args.seed} onwards):",
        "",
        *grid_lines,
    ]
    title = f"Quality at equal training time ({args.dataset})"
    path = write_report(args.output_dir, name, title, environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
