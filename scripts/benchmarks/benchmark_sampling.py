"""Sampling cost: `SimpleDDPMPipeline` against a bare loop with the same model, and seconds per image per sampler.

python scripts/benchmarks/benchmark_sampling.py [--models notebook default] [--batch_size 16] [--quick]
"""

import argparse
import time

import torch
from benchmark_utils import (
    add_common_arguments,
    bar_chart,
    chart_path,
    count_parameters,
    make_simple_unet,
    markdown_table,
    sampling_pipeline,
    setup,
    synchronize,
    write_report,
)

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler
from diffusers_simple_ddpm.sampling import generate_images

NAME = "sampling"
# (sampler, steps) pairs whose cost per image the report gives.
SAMPLER_SETTINGS = (("DDPM", 1000), ("DDIM", 50), ("DPM-Solver++", 20))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--models", nargs="+", default=["notebook", "default"], help="MODEL_PRESETS to time.")
    parser.add_argument("--resolution", type=int, default=28, help="Side of the (grayscale) images.")
    parser.add_argument("--batch_size", type=int, default=16, help="Images per pipeline call.")
    parser.add_argument(
        "--overhead_steps", type=int, default=100, help="DDPM steps of the pipeline-against-bare-loop comparison."
    )
    parser.add_argument("--repeats", type=int, default=3, help="Passes of that comparison; the fastest counts.")
    parser.add_argument(
        "--ddpm_steps", type=int, default=1000, help="Steps of the DDPM row (1000 is the full ancestral sampler)."
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.resolution, args.batch_size = ["default"], 8, 2
        args.overhead_steps, args.repeats, args.ddpm_steps = 3, 1, 4
    return args


@torch.no_grad()
def bare_loop(unet, scheduler, latents: torch.Tensor, num_inference_steps: int, generator: torch.Generator):
    """What the pipeline computes, written out: the model and `scheduler.step` for every timestep."""
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    for timestep in scheduler.timesteps:
        model_output = unet(latents, timestep).sample
        latents = scheduler.step(model_output, timestep, latents, generator=generator).prev_sample
    return (latents / 2 + 0.5).clamp(0, 1)


def timed(function, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    overhead_rows, cost_rows, labels, values = [], [], [], []
    for preset in args.models:
        unet = make_simple_unet(preset, args.resolution, 1).to(device).eval()
        pipeline = SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler())
        pipeline.set_progress_bar_config(disable=True)
        shape = (args.batch_size, 1, args.resolution, args.resolution)

        def run_pipeline():
            pipeline(
                batch_size=args.batch_size,
                num_inference_steps=args.overhead_steps,
                generator=torch.Generator(device=device).manual_seed(args.seed),
                output_type="pt",
            )

        def run_bare():
            generator = torch.Generator(device=device).manual_seed(args.seed)
            latents = torch.randn(shape, generator=generator, device=device)
            bare_loop(unet, SimpleDDPMScheduler(), latents, args.overhead_steps, generator)

        run_bare()  # warm-up
        # Alternating the two keeps a change in the machine's load from favouring one of them.
        pipeline_times, bare_times = [], []
        for _ in range(args.repeats):
            pipeline_times.append(timed(run_pipeline, device))
            bare_times.append(timed(run_bare, device))
        pipeline_s, bare_s = min(pipeline_times), min(bare_times)
        overhead_rows.append(
            [
                preset,
                f"{count_parameters(unet) / 1e6:.2f}M",
                args.overhead_steps,
                pipeline_s,
                bare_s,
                f"{100 * (pipeline_s / bare_s - 1):+.1f}%",
            ]
        )

        for sampler, steps in SAMPLER_SETTINGS:
            steps = args.ddpm_steps if sampler == "DDPM" else steps
            sampler_pipeline = sampling_pipeline(unet, sampler)
            seconds = timed(
                lambda: generate_images(
                    sampler_pipeline, args.batch_size, steps, seed=args.seed, batch_size=args.batch_size, output_type="pt"
                ),
                device,
            )
            cost_rows.append([preset, f"{sampler} {steps}", seconds, seconds / args.batch_size])
            labels.append(f"{preset}, {sampler} {steps}")
            values.append(seconds / args.batch_size)

    size = f"{args.resolution}x{args.resolution}x1"
    body = [
        f"Untrained weights (the cost does not depend on them), images {size}, batch {args.batch_size}, fp32 on "
        f"{device.type}.",
        "",
        f"### Pipeline overhead (DDPM, {args.overhead_steps} steps, fastest of {args.repeats} alternating runs)",
        "",
        "The bare loop calls the model and `SimpleDDPMScheduler.step` and nothing else; the pipeline adds input "
        "checks, the noise draw, `scale_model_input` and the conversion to a tensor in [0, 1].",
        "",
        *markdown_table(["model", "parameters", "steps", "pipeline (s)", "bare loop (s)", "overhead"], overhead_rows),
        "",
        "### Seconds per image by sampler (one pass)",
        "",
        "One call of `diffusers_simple_ddpm.sampling.generate_images` (what `simple-ddpm sample` runs: one seeded "
        "generator per image) for the whole batch.",
        "",
        *markdown_table(["model", "sampler", f"batch of {args.batch_size} (s)", "s/image"], cost_rows),
        "",
        bar_chart(
            chart_path(args.output_dir, NAME, device), "Sampling cost per image (lower is better)", labels, values, "s"
        ),
    ]
    path = write_report(args.output_dir, NAME, "Sampling cost", environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
