"""Scheduler cost: microseconds per `step()` of `SimpleDDPMScheduler` and diffusers' `DDPMScheduler`.

python scripts/benchmarks/benchmark_scheduler.py [--batch_sizes 1 64] [--repeats 3] [--quick]
"""

import argparse
import time

import torch
from benchmark_utils import (
    add_common_arguments,
    bar_chart,
    chart_path,
    markdown_table,
    setup,
    synchronize,
    write_report,
)
from diffusers import DDPMScheduler

from diffusers_simple_ddpm import SimpleDDPMScheduler

NAME = "scheduler"
SCHEDULERS = {"SimpleDDPMScheduler": SimpleDDPMScheduler, "DDPMScheduler": DDPMScheduler}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64], help="Batch sizes to time.")
    parser.add_argument("--resolution", type=int, default=28, help="Side of the (grayscale) samples.")
    parser.add_argument("--num_inference_steps", type=int, default=1000, help="Steps of one timed sampling pass.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed passes; the report gives the fastest.")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.num_inference_steps, args.repeats = [1, 2], 20, 1
    return args


def time_step(
    scheduler, sample: torch.Tensor, model_output: torch.Tensor, num_inference_steps: int, seed: int
) -> float:
    """Microseconds per `step()` over a whole pass of `num_inference_steps` timesteps (the model's output is fixed)."""
    scheduler.set_timesteps(num_inference_steps, device=sample.device)
    generator = torch.Generator(device=sample.device).manual_seed(seed)
    synchronize(sample.device)
    start = time.perf_counter()
    for timestep in scheduler.timesteps:
        sample = scheduler.step(model_output, timestep, sample, generator=generator).prev_sample
    synchronize(sample.device)
    return (time.perf_counter() - start) / len(scheduler.timesteps) * 1e6


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    rows, labels, values = [], [], []
    for batch_size in args.batch_sizes:
        shape = (batch_size, 1, args.resolution, args.resolution)
        generator = torch.Generator().manual_seed(args.seed)
        sample = torch.randn(shape, generator=generator).to(device)
        model_output = torch.randn(shape, generator=generator).to(device)
        timings = {}
        for name, scheduler_class in SCHEDULERS.items():
            scheduler = scheduler_class()
            time_step(scheduler, sample, model_output, args.num_inference_steps, args.seed)  # warm-up
            timings[name] = min(
                time_step(scheduler, sample, model_output, args.num_inference_steps, args.seed)
                for _ in range(args.repeats)
            )
            labels.append(f"{name}, batch {batch_size}")
            values.append(timings[name])
        simple, reference = timings["SimpleDDPMScheduler"], timings["DDPMScheduler"]
        rows.append([batch_size, simple, reference, reference / simple])

    body = [
        f"Microseconds per `step()` on {device.type}, the fastest of {args.repeats} passes over "
        f"{args.num_inference_steps} timesteps (DDPM, stochastic: each step draws noise), samples "
        f"{args.resolution}x{args.resolution}x1. Both schedulers use the notebook's linear β schedule of 1000 steps.",
        "",
        *markdown_table(["batch", "SimpleDDPMScheduler (µs/step)", "DDPMScheduler (µs/step)", "speed-up"], rows),
        "",
    ]
    chart = chart_path(args.output_dir, NAME, device)
    body.append(bar_chart(chart, "Scheduler step cost (lower is better)", labels, values, "µs"))
    path = write_report(args.output_dir, NAME, "Scheduler cost", environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
