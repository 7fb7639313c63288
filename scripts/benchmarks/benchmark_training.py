"""Training throughput (images/s), peak memory and model FLOPs utilisation: `scripts/train.py` beside bare loops.

    python scripts/benchmarks/benchmark_training.py [--batch_sizes 64 128] [--num_steps 10] [--quick]
    python scripts/benchmarks/benchmark_training.py --device cuda   # batches 64, 256, 1024, compiled, with MFU

For 28x28 grayscale (the built-in MNIST) and 32x32 RGB (a generated folder of random PNGs), at every batch size:
`scripts/train.py` run through `accelerate launch` (its defaults: bf16 autocast, channels_last, EMA; on a GPU with
`--compile` and the data held on the device), the bare loop (`benchmark_utils.BareTrainer`, which runs the script's
own update, `diffusers_simple_ddpm.training_step.DiffusionTrainingStep`), the notebook's own loop
(`DiffusionModel.p_losses` + Adam), and on the CPU diffusers' `UNet2DModel` of about the same size in the bare loop.
The presets of each format come from `MODEL_PRESETS` (see `presets_for_format`). On a GPU it also times sampling:
`--num_sampling_images` images with DPM-Solver++ (20 steps) in one batch, eager and compiled.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchmark_utils import (
    BareTrainer,
    add_common_arguments,
    bar_chart,
    chart_path,
    count_parameters,
    diffusers_unet_like,
    make_diffusers_unet,
    make_simple_unet,
    markdown_table,
    mnist_tensor,
    run_train_script,
    setup,
    synchronize,
    time_steps,
    write_report,
)
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler
from diffusers_simple_ddpm.notebook import DiffusionModel, SimpleUNet
from diffusers_simple_ddpm.sampling import with_scheduler
from diffusers_simple_ddpm.training_args import AUTO_PRESETS, MODEL_PRESETS

NAME = "training"
# The widths of the diffusers UNet2DModel beside the notebook network (about its parameter count); residual presets get
# `diffusers_unet_like`, scaled to theirs.
NOTEBOOK_DIFFUSERS_WIDTHS = (32, 64, 128)
# (resolution, channels, data) of the two image formats.
FORMATS = {"28x28x1": (28, 1, "mnist"), "32x32x3": (32, 3, "random RGB PNGs")}
# The name part that marks a `MODEL_PRESETS` entry as made for a format's dataset (see `presets_for_format`).
FORMAT_DATASETS = {"28x28x1": "mnist", "32x32x3": "cifar"}
# Dense bf16 peak of an H100 or H200 SXM (989.4 TFLOP/s without sparsity), the default for model FLOPs utilisation.
H100_BF16_PEAK_TFLOPS = 989.0


def notebook_step(
    diffusion_model: DiffusionModel, optimizer: torch.optim.Optimizer, images: torch.Tensor, batch_size: int
):
    """One iteration of the notebook's `train_diffusion` (on a random batch of `images`, without its printing)."""
    x = images[torch.randint(0, len(images), (batch_size,), device=images.device)]
    batch_size = x.shape[0]
    optimizer.zero_grad()
    t = torch.randint(0, diffusion_model.timesteps, (batch_size,), device=images.device).long()
    loss = diffusion_model.p_losses(x, t)
    loss.backward()
    optimizer.step()
    return loss.detach()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        choices=list(MODEL_PRESETS),
        help="MODEL_PRESETS to measure on every format. Default: the presets made for each format's data set (see "
        "presets_for_format).",
    )
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS), help="Image formats.")
    parser.add_argument(
        "--batch_sizes",
        type=int,
        nargs="+",
        default=None,
        help="Batch sizes. Default: 64 256 1024 on a GPU, else 64 128.",
    )
    parser.add_argument("--num_steps", type=int, default=10, help="Timed updates of every bare loop.")
    parser.add_argument("--num_warmup_steps", type=int, default=3, help="Untimed updates before them (and compiling).")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Also time the bare loop compiled (torch.compile), and run scripts/train.py with --compile. Default: on a "
        "GPU only.",
    )
    parser.add_argument(
        "--train_script_steps",
        type=int,
        default=None,
        help="Updates of every scripts/train.py run; it logs images_per_s every --train_script_logging_steps and the "
        "first interval (warm-up, compilation) is dropped. Default: 30 on the CPU, 150 on a GPU.",
    )
    parser.add_argument(
        "--train_script_logging_steps",
        type=int,
        default=None,
        help="The script's --logging_steps. Default: 5 on the CPU, 25 on a GPU.",
    )
    parser.add_argument("--num_random_images", type=int, default=512, help="Images of the random RGB folder.")
    parser.add_argument("--skip_train_script", action="store_true", help="Measure the bare loops only.")
    parser.add_argument(
        "--peak_tflops",
        type=float,
        default=H100_BF16_PEAK_TFLOPS,
        help="The GPU's dense bf16 peak in TFLOP/s, for model FLOPs utilisation (989 for an H100 or H200 SXM).",
    )
    parser.add_argument(
        "--num_sampling_images",
        type=int,
        default=None,
        help="Images sampled in one batch with DPM-Solver++ per preset (0 skips). Default: 10000 on a GPU, 0 on a CPU.",
    )
    parser.add_argument("--sampling_steps", type=int, default=20, help="DPM-Solver++ steps of that measure.")
    parser.add_argument(
        "--profile_batch_size",
        type=int,
        default=None,
        help="Also profile a few updates of the first reference bare loop (compiled with --compile) at this batch "
        "size with torch.profiler, and add the operations taking the most device time to the report.",
    )
    args = parser.parse_args(argv)
    on_gpu = args.device.startswith("cuda")
    defaults = {
        "batch_sizes": [64, 256, 1024] if on_gpu else [64, 128],
        "compile": on_gpu,
        "train_script_steps": 150 if on_gpu else 30,
        "train_script_logging_steps": 25 if on_gpu else 5,
        "num_sampling_images": 10000 if on_gpu else 0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.models, args.formats, args.batch_sizes = ["default"], ["32x32x3"], [4]
        args.num_steps, args.num_warmup_steps = 1, 1
        args.train_script_steps, args.train_script_logging_steps, args.num_random_images = 10, 5, 8
        args.num_sampling_images, args.sampling_steps = 4, 2
    for name in ("num_steps", "train_script_steps", "train_script_logging_steps", "sampling_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be at least 1, got {getattr(args, name)}.")
    if min(args.batch_sizes) < 1 or args.num_sampling_images < 0 or args.peak_tflops <= 0:
        raise ValueError("`--batch_sizes` must be at least 1, `--num_sampling_images` 0 or more, `--peak_tflops` > 0.")
    return args


def diffusers_counterpart(preset: str, resolution: int, channels: int) -> torch.nn.Module:
    """Diffusers' `UNet2DModel` of about the size of the `MODEL_PRESETS` entry `preset`, for the CPU comparison."""
    if MODEL_PRESETS[preset].get("layers_per_block") is None:
        return make_diffusers_unet(NOTEBOOK_DIFFUSERS_WIDTHS, resolution, channels)
    return diffusers_unet_like(preset, resolution, channels)


def presets_for_format(image_format: str, models: list[str] | None, device_type: str) -> list[str]:
    """
    The `MODEL_PRESETS` measured on `image_format`: `models` when given, else the presets whose name names the format's
    data set (`FORMAT_DATASETS`, e.g. "cifar" for "cifar10"), else the `--model_config auto` preset of the device
    (`AUTO_PRESETS`: the MNIST presets "default" on a CPU, "large" on a GPU).
    """
    if models:
        return models
    dataset = FORMAT_DATASETS[image_format]
    return [name for name in MODEL_PRESETS if dataset in name.lower()] or [AUTO_PRESETS.get(device_type, "default")]


def make_random_image_folder(folder: Path, num_images: int, resolution: int, seed: int) -> None:
    """Writes `num_images` PNGs of uniform random RGB pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(num_images):
        pixels = rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")


def train_script_throughput(
    preset: str,
    resolution: int,
    batch_size: int,
    num_steps: int,
    logging_steps: int,
    data_dir: Path | None,
    workdir: Path,
    seed: int,
    extra_args: list[str],
) -> dict:
    """Runs `scripts/train.py` for `num_steps` updates; returns its logged images/s and its processes' peak RSS."""
    output_dir = workdir / f"train-{preset}-{resolution}-{batch_size}"
    script_args = [
        "--model_config",
        preset,
        "--resolution",
        str(resolution),
        "--train_batch_size",
        str(batch_size),
        "--max_train_steps",
        str(num_steps),
        "--logging_steps",
        str(logging_steps),
        "--checkpointing_steps",
        str(10**9),
        "--seed",
        str(seed),
        *extra_args,
    ]
    if data_dir is not None:
        script_args += ["--train_data_dir", str(data_dir)]
    run = run_train_script(output_dir, script_args)
    # The tracker writes to logs/<project>/; find the scalars wherever they are.
    values = []
    for events_file in sorted((output_dir / "logs").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events_file))
        accumulator.Reload()
        if "images_per_s" in accumulator.Tags()["scalars"]:
            values = [event.value for event in accumulator.Scalars("images_per_s")]
    if not values:
        raise RuntimeError(f"No images_per_s in the tensorboard log of {output_dir}.")
    steady = values[1:] or values
    return {"images_per_s": float(np.mean(steady)), "peak_mib": run["peak_rss_mib"]}


def training_images(data: str, resolution: int, channels: int, count: int, seed: int) -> torch.Tensor:
    """The bare loops' training images in [-1, 1]: MNIST digits, or uniform noise like the random PNG folder."""
    if data == "mnist":
        return mnist_tensor("train", count)
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((count, channels, resolution, resolution), generator=generator) * 2 - 1


def training_flops_per_image(model: nn.Module, resolution: int, channels: int, batch_size: int = 2) -> float:
    """
    The FLOPs of one training image (forward and backward pass of the model) counted by torch's `FlopCounterMode`
    on the CPU: matrix products and convolutions, which is what model FLOPs utilisation counts.
    """
    model = model.float().train()
    images = torch.randn(batch_size, channels, resolution, resolution)
    timesteps = torch.randint(0, 1000, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        output = model(images, timesteps)
        output = output.sample if hasattr(output, "sample") else output
        output.float().square().mean().backward()
    return counter.get_total_flops() / batch_size


def sampling_seconds(preset: str, resolution: int, channels: int, args, device: torch.device, compile: bool) -> float:
    """
    Seconds to sample `args.num_sampling_images` images in one batch with DPM-Solver++ (`args.sampling_steps` steps)
    from a `preset` model (untrained: speed only), under bf16 autocast on a GPU, after one untimed run (which compiles).
    """
    torch.manual_seed(args.seed)
    unet = make_simple_unet(preset, resolution, channels).to(device).eval()
    if compile:
        unet.compile()
    pipeline, _ = with_scheduler(SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler()), "dpm")
    pipeline.set_progress_bar_config(disable=True)

    def run() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            pipeline(
                batch_size=args.num_sampling_images,
                num_inference_steps=args.sampling_steps,
                generator=torch.Generator(device=device).manual_seed(args.seed),
                output_type="pt",
            )

    run()
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def profile_table(trainer: BareTrainer, device: torch.device, num_steps: int = 5, rows: int = 15) -> str:
    """The `rows` operations of `num_steps` updates of `trainer` that take the most device (or CPU) time."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    synchronize(device)
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(num_steps):
            trainer.step()
        synchronize(device)
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=rows)


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    on_gpu = device.type == "cuda"
    rows, overhead_rows, sampling_rows, charts, profiles = [], [], [], [], []
    script_extra = ["--compile"] if args.compile else []

    def report() -> Path:
        return write_report(
            args.output_dir, NAME, "Training throughput", environment,
            report_body(args, rows, overhead_rows, sampling_rows, charts + profiles, on_gpu), device,
        )  # fmt: skip

    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        for image_format in args.formats:
            resolution, channels, data = FORMATS[image_format]
            presets = presets_for_format(image_format, args.models, device.type)
            data_dir = None
            if data != "mnist" and not args.skip_train_script:
                data_dir = workdir / "random-rgb"
                make_random_image_folder(data_dir, args.num_random_images, resolution, args.seed)
            images = training_images(data, resolution, channels, 4096, args.seed).to(device)
            chart_labels, chart_values = [], []
            for batch_size in args.batch_sizes:

                def measure(model: nn.Module, preset: str, loop: str, precision: str, step, flops: float) -> float:
                    seconds, peak_mib = time_steps(step, args.num_steps, args.num_warmup_steps, device)
                    images_per_s = args.num_steps * batch_size / seconds
                    utilisation = flops * images_per_s / (args.peak_tflops * 1e12) if on_gpu else None
                    rows.append(
                        [image_format, batch_size, preset, f"{count_parameters(model) / 1e6:.2f}M", loop, precision,
                         images_per_s, peak_mib, flops / 1e9, f"{100 * utilisation:.1f}%" if on_gpu else None]
                    )  # fmt: skip
                    if batch_size == args.batch_sizes[0]:
                        chart_labels.append(f"{preset}: {loop}, {precision}")
                        chart_values.append(images_per_s)
                    return images_per_s

                for preset in presets:
                    flops = training_flops_per_image(
                        make_simple_unet(preset, resolution, channels), resolution, channels
                    )
                    builds = [("bare loop, SimpleUNet2DModel", lambda: make_simple_unet(preset, resolution, channels))]
                    precisions = [("bf16 + channels_last", "bf16", True, False)]
                    if args.compile:
                        precisions.append(("bf16 + channels_last, compiled", "bf16", True, True))
                    if not on_gpu:
                        # The CPU comparison of earlier reports: fp32, and diffusers' UNet2DModel of about that size.
                        builds.append(
                            (
                                "bare loop, diffusers UNet2DModel",
                                lambda: diffusers_counterpart(preset, resolution, channels),
                            )
                        )
                        precisions.insert(0, ("fp32", "no", False, False))
                    bare = {}
                    for name, build in builds:
                        for precision, mixed_precision, channels_last, compile in precisions:
                            if compile and name != "bare loop, SimpleUNet2DModel":
                                continue
                            torch.manual_seed(args.seed)
                            model = build()
                            model_flops = flops if name.startswith("bare loop, Simple") else training_flops_per_image(
                                build(), resolution, channels
                            )  # fmt: skip
                            trainer = BareTrainer(
                                model, images, batch_size, device, mixed_precision, channels_last, seed=args.seed,
                                compile=compile,
                            )  # fmt: skip
                            bare[(name, precision)] = measure(model, preset, name, precision, trainer.step, model_flops)
                            reference_loop = name == builds[0][0] and precision == precisions[-1][0]
                            if batch_size == args.profile_batch_size and reference_loop and not profiles:
                                profile = profile_table(trainer, device)
                                print(profile)
                                profiles += [
                                    f"### Profile: {image_format}, {preset}, {name}, {precision}, batch {batch_size}",
                                    "", "```", profile.rstrip(), "```", "",
                                ]  # fmt: skip
                            del trainer, model
                    if not args.skip_train_script:
                        result = train_script_throughput(
                            preset, resolution, batch_size, args.train_script_steps, args.train_script_logging_steps,
                            data_dir, workdir, args.seed, script_extra,
                        )  # fmt: skip
                        reference_precision = precisions[-1][0]
                        reference = bare[("bare loop, SimpleUNet2DModel", reference_precision)]
                        utilisation = flops * result["images_per_s"] / (args.peak_tflops * 1e12)
                        overhead_rows.append(
                            [image_format, batch_size, preset, result["images_per_s"], reference_precision, reference,
                             f"{100 * (reference / result['images_per_s'] - 1):+.0f}%",
                             f"{100 * utilisation:.1f}%" if on_gpu else None,
                             result["peak_mib"] if not on_gpu else None]
                        )  # fmt: skip
                        if batch_size == args.batch_sizes[0]:
                            chart_labels.append(f"{preset}: scripts/train.py, {reference_precision}")
                            chart_values.append(result["images_per_s"])
                    report()

                torch.manual_seed(args.seed)
                diffusion = DiffusionModel(SimpleUNet(channels=channels)).to(device)
                # The notebook keeps its schedule tables as plain attributes, which `.to()` leaves on the CPU
                # (its loop fails so on a GPU); moving them is the only change made to it.
                for name, value in vars(diffusion).items():
                    if isinstance(value, torch.Tensor):
                        setattr(diffusion, name, value.to(device))
                optimizer = torch.optim.Adam(diffusion.parameters(), lr=1e-4)
                measure(
                    diffusion.model,
                    "notebook network",
                    "notebook loop (p_losses + Adam)",
                    "fp32",
                    lambda: notebook_step(diffusion, optimizer, images, batch_size),
                    training_flops_per_image(SimpleUNet(channels=channels), resolution, channels),
                )
                del diffusion, optimizer
                report()
            if args.num_sampling_images:
                for preset in presets:
                    for compile in sorted({False, args.compile}):
                        seconds = sampling_seconds(preset, resolution, channels, args, device, compile)
                        sampling_rows.append(
                            [image_format, preset, "compiled" if compile else "eager", args.num_sampling_images,
                             seconds, args.num_sampling_images / seconds]
                        )  # fmt: skip
                        report()
            chart = chart_path(args.output_dir, NAME, device, suffix=f"-{image_format}")
            title = f"Training images/s, {image_format}, batch {args.batch_sizes[0]} (higher is better)"
            charts.append(bar_chart(chart, title, chart_labels, chart_values, "img/s"))
    print(f"Wrote {report()}")


def report_body(args, rows: list, overhead_rows: list, sampling_rows: list, charts: list, on_gpu: bool) -> list[str]:
    """The Markdown of the section, from the rows measured so far (the report is rewritten after each group)."""
    body = [
        f"Every bare loop samples batches from a tensor held on the device and runs `scripts/train.py`'s own update "
        f"(`diffusers_simple_ddpm.training_step.DiffusionTrainingStep`: random timestep, `add_noise`, ε-MSE, AdamW "
        f"(fused on CUDA), gradient clipping, EMA with foreach updates): {args.num_warmup_steps} untimed then "
        f"{args.num_steps} timed updates; 'compiled' runs the model through `torch.compile` (default mode). The "
        f"notebook loop is the notebook's `train_diffusion` iteration (`DiffusionModel.p_losses` of the notebook's "
        f"`SimpleUNet`, Adam at 1e-4, fp32, no EMA). 28x28x1 trains on MNIST digits, 32x32x3 on uniform random "
        f"pixels (the script reads a folder of {args.num_random_images} random PNGs).",
        "",
        "Peak memory: on the CPU the growth of the resident set size over the run (gradients, optimizer state and "
        "activations; the weights exist before), sampled every 5 ms; on a GPU `torch.cuda.max_memory_allocated` "
        "above the memory allocated at the start. GFLOP/image: forward and backward pass of one training image, "
        "counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions). Model FLOPs "
        f"utilisation (MFU, GPU only): GFLOP/image x images/s / {args.peak_tflops:g} TFLOP/s, the dense bf16 peak "
        "used (989 TFLOP/s is that of an H100 or H200 SXM).",
        "",
        *markdown_table(
            ["format", "batch", "model", "parameters", "loop", "precision", "images/s", "peak memory (MiB)",
             "GFLOP/image", "MFU"],
            rows,
        ),  # fmt: skip
        "",
    ]
    if overhead_rows:
        compiled = " with `--compile`" if args.compile else ""
        body += [
            "### scripts/train.py beside the bare loop",
            "",
            f"`accelerate launch scripts/train.py`{compiled} with its defaults (bf16 autocast, channels_last, EMA, "
            "`--data_on_device auto`: the data held in device memory when it fits, the DataLoader otherwise; one "
            f"process) for {args.train_script_steps} updates; images/s is the mean of the `images_per_s` it logs to tensorboard "
            f"every {args.train_script_logging_steps} updates, the first interval (warm-up) left out. The bare loop is "
            f"the same model and update at the precision named. The script's memory is the peak RSS of its whole "
            f"process tree (absolute, not a growth), CPU runs only.",
            "",
            *markdown_table(
                ["format", "batch", "model", "scripts/train.py (img/s)", "bare loop", "bare loop (img/s)",
                 "bare loop faster by", "script MFU", "script peak RSS (MiB)"],
                overhead_rows,
            ),  # fmt: skip
            "",
        ]
    if sampling_rows:
        body += [
            "### Sampling",
            "",
            f"`SimpleDDPMPipeline` with DPM-Solver++ ({args.sampling_steps} steps), all images in one batch "
            f"(`output_type='pt'`), bf16 autocast on a GPU, after one untimed run; 'compiled' calls "
            f"`pipeline.unet.compile()` first. The weights are untrained: this measures speed only.",
            "",
            *markdown_table(["format", "model", "unet", "images", "seconds", "images/s"], sampling_rows),
            "",
        ]
    return body + charts


if __name__ == "__main__":
    main(parse_args())
