"""Training throughput (images/s) and peak memory: `scripts/train.py` beside bare PyTorch loops.

    python scripts/benchmarks/benchmark_training.py [--batch_sizes 64 128] [--num_steps 10] [--quick]

For 28x28 grayscale (the built-in MNIST) and 32x32 RGB (a generated folder of random PNGs), at every batch size:
`scripts/train.py` run through `accelerate launch` (its defaults: bf16 autocast, channels_last, EMA), a bare loop with
the same model and update (fp32, and bf16 + channels_last), the notebook's own loop (`DiffusionModel.p_losses` + Adam),
and diffusers' `UNet2DModel` of about the same size in the bare loop.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from benchmark_utils import (
    BareTrainer,
    add_common_arguments,
    bar_chart,
    chart_path,
    count_parameters,
    make_diffusers_unet,
    make_simple_unet,
    markdown_table,
    mnist_tensor,
    run_train_script,
    setup,
    time_steps,
    write_report,
)
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from diffusers_simple_ddpm.notebook import DiffusionModel, SimpleUNet

NAME = "training"
# The diffusers UNet2DModel widths matching each preset's parameter count (see `make_diffusers_unet`).
DIFFUSERS_WIDTHS = {"notebook": (32, 64, 128), "default": (16, 32, 64)}
# (resolution, channels, data) of the two image formats.
FORMATS = {"28x28x1": (28, 1, "mnist"), "32x32x3": (32, 3, "random RGB PNGs")}


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
    parser.add_argument("--models", nargs="+", default=["notebook", "default"], help="MODEL_PRESETS to measure.")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS), help="Image formats.")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 128], help="Batch sizes.")
    parser.add_argument("--num_steps", type=int, default=10, help="Timed updates of every bare loop.")
    parser.add_argument("--num_warmup_steps", type=int, default=2, help="Untimed updates before them.")
    parser.add_argument(
        "--train_script_steps",
        type=int,
        default=30,
        help="Updates of every scripts/train.py run; it logs images_per_s every 5 and the first interval is dropped.",
    )
    parser.add_argument("--num_random_images", type=int, default=512, help="Images of the random RGB folder.")
    parser.add_argument("--skip_train_script", action="store_true", help="Measure the bare loops only.")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.formats, args.batch_sizes = ["default"], ["32x32x3"], [4]
        args.num_steps, args.num_warmup_steps = 1, 1
        args.train_script_steps, args.num_random_images = 10, 8
    return args


def make_random_image_folder(folder: Path, num_images: int, resolution: int, seed: int) -> None:
    """Writes `num_images` PNGs of uniform random RGB pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(num_images):
        pixels = rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")


def train_script_throughput(
    preset: str, resolution: int, batch_size: int, num_steps: int, data_dir: Path | None, workdir: Path, seed: int
) -> dict:
    """Runs `scripts/train.py` for `num_steps` updates; returns its logged images/s and the peak RSS of its processes."""
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
        "5",
        "--checkpointing_steps",
        str(10**9),
        "--seed",
        str(seed),
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


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    rows, overhead_rows, charts = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        for image_format in args.formats:
            resolution, channels, data = FORMATS[image_format]
            data_dir = None
            if data != "mnist" and not args.skip_train_script:
                data_dir = workdir / "random-rgb"
                make_random_image_folder(data_dir, args.num_random_images, resolution, args.seed)
            images = training_images(data, resolution, channels, 4096, args.seed).to(device)
            chart_labels, chart_values = [], []
            for batch_size in args.batch_sizes:
                for preset in args.models:

                    def measure(model: nn.Module, loop: str, precision: str, step) -> float:
                        seconds, peak_mib = time_steps(step, args.num_steps, args.num_warmup_steps, device)
                        images_per_s = args.num_steps * batch_size / seconds
                        rows.append(
                            [
                                image_format,
                                batch_size,
                                preset,
                                f"{count_parameters(model) / 1e6:.2f}M",
                                loop,
                                precision,
                                images_per_s,
                                peak_mib,
                            ]
                        )
                        if batch_size == args.batch_sizes[0]:
                            chart_labels.append(f"{preset}: {loop}, {precision}")
                            chart_values.append(images_per_s)
                        return images_per_s

                    bare = {}
                    for name, build in (
                        ("bare loop, SimpleUNet2DModel", lambda: make_simple_unet(preset, resolution, channels)),
                        (
                            "bare loop, diffusers UNet2DModel",
                            lambda: make_diffusers_unet(DIFFUSERS_WIDTHS[preset], resolution, channels),
                        ),
                    ):
                        for precision, mixed_precision, channels_last in (
                            ("fp32", "no", False),
                            ("bf16 + channels_last", "bf16", True),
                        ):
                            torch.manual_seed(args.seed)
                            model = build()
                            trainer = BareTrainer(
                                model, images, batch_size, device, mixed_precision, channels_last, seed=args.seed
                            )
                            bare[(name, precision)] = measure(model, name, precision, trainer.step)
                            del trainer, model
                    if preset == "notebook":
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
                            "notebook loop (p_losses + Adam)",
                            "fp32",
                            lambda: notebook_step(diffusion, optimizer, images, batch_size),
                        )
                        del diffusion, optimizer
                    if not args.skip_train_script:
                        result = train_script_throughput(
                            preset, resolution, batch_size, args.train_script_steps, data_dir, workdir, args.seed
                        )
                        reference = bare[("bare loop, SimpleUNet2DModel", "bf16 + channels_last")]
                        overhead_rows.append(
                            [
                                image_format,
                                batch_size,
                                preset,
                                result["images_per_s"],
                                reference,
                                f"{100 * (reference / result['images_per_s'] - 1):+.0f}%",
                                result["peak_mib"] if device.type == "cpu" else None,
                            ]
                        )
                        if batch_size == args.batch_sizes[0]:
                            chart_labels.append(f"{preset}: scripts/train.py, bf16 + channels_last")
                            chart_values.append(result["images_per_s"])
            chart = chart_path(args.output_dir, NAME, device, suffix=f"-{image_format}")
            title = f"Training images/s, {image_format}, batch {args.batch_sizes[0]} (higher is better)"
            charts.append(bar_chart(chart, title, chart_labels, chart_values, "img/s"))

    body = [
        f"Every bare loop samples batches from a tensor in memory and runs `scripts/train.py`'s update (random "
        f"timestep, `add_noise`, ε-MSE, AdamW, gradient clipping, EMA): {args.num_warmup_steps} untimed then "
        f"{args.num_steps} timed updates. The notebook loop is the notebook's `train_diffusion` iteration "
        f"(`DiffusionModel.p_losses` of the notebook's `SimpleUNet`, Adam at 1e-4, fp32, no EMA). Diffusers' "
        f"`UNet2DModel` has three resolutions of one ResNet layer each, widths {DIFFUSERS_WIDTHS['notebook']} beside "
        f"the notebook network and {DIFFUSERS_WIDTHS['default']} beside the `default` preset. 28x28x1 trains on MNIST "
        f"digits, 32x32x3 on uniform random pixels (the script reads a folder of {args.num_random_images} random PNGs).",
        "",
        "Peak memory: on the CPU the growth of the resident set size over the run (gradients, optimizer state and "
        "activations; the weights exist before), sampled every 5 ms; on a GPU `torch.cuda.max_memory_allocated` "
        "above the memory allocated at the start.",
        "",
        *markdown_table(
            ["format", "batch", "model", "parameters", "loop", "precision", "images/s", "peak memory (MiB)"], rows
        ),
        "",
    ]
    if overhead_rows:
        body += [
            "### scripts/train.py beside the bare loop",
            "",
            f"`accelerate launch scripts/train.py` with its defaults (bf16 autocast, channels_last, EMA, DataLoader "
            f"with per-sample augmentation seeds, one process) for {args.train_script_steps} updates; images/s is "
            f"the mean of the `images_per_s` it logs to tensorboard every 5 updates, the first interval (warm-up) "
            f"left out. The bare loop is the same model and update in bf16 + channels_last. The script's memory is "
            f"the peak RSS of its whole process tree (absolute, not a growth), CPU runs only.",
            "",
            *markdown_table(
                [
                    "format",
                    "batch",
                    "model",
                    "scripts/train.py (img/s)",
                    "bare loop (img/s)",
                    "bare loop faster by",
                    "script peak RSS (MiB)",
                ],
                overhead_rows,
            ),
            "",
        ]
    body += charts
    path = write_report(args.output_dir, NAME, "Training throughput", environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
