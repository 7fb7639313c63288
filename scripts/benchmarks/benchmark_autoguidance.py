"""Autoguidance of a finished MNIST run: its EMA pipeline guided by the EMA weights of its checkpoints, by guidance scale.

python scripts/benchmarks/benchmark_autoguidance.py --run_dir ddpm-mnist [--checkpoints 500 1000 2000] [--scales 1.5 2]
    [--guide_run_dir ddpm-mnist-small]

Every row samples the same seeds with the training program's evaluation sampler (the pipeline's DDPM sampler with
clipping, under bf16 autocast) and scores them as its model card does: the fast Fréchet distance against the MNIST
test split beside its floor, and the share of digits the MNIST classifier recognises.
"""

import argparse
import time
from pathlib import Path

import torch
from benchmark_utils import (
    add_common_arguments,
    add_report_name_argument,
    chart_path,
    grids_chart,
    markdown_table,
    report_title,
    setup,
    write_report,
)

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleUNet2DModel
from diffusers_simple_ddpm.evaluation import evaluate_images
from diffusers_simple_ddpm.image_utils import make_sample_grid
from diffusers_simple_ddpm.sampling import generate_images, with_scheduler
from diffusers_simple_ddpm.training_args import DEFAULT_EVAL_NUM_INFERENCE_STEPS, DEFAULT_EVAL_SCHEDULER
from diffusers_simple_ddpm.training_utils import CHECKPOINT_PREFIX, checkpoint_step, list_checkpoints

NAME = "autoguidance"
# Images of each row's sample grid in the report: the first 64 samples, drawn twice as large.
GRID_IMAGES = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    add_report_name_argument(parser, NAME)
    parser.add_argument(
        "--run_dir",
        type=str,
        required=True,
        help="The --output_dir of a finished scripts/train.py run on MNIST, with its checkpoint-N/ folders.",
    )
    parser.add_argument(
        "--guide_run_dir",
        type=str,
        default=None,
        help="The run whose checkpoints guide (default: --run_dir), such as a smaller network trained on the same data.",
    )
    parser.add_argument(
        "--checkpoints",
        type=int,
        nargs="+",
        default=[500, 1000, 2000],
        help="Updates of the checkpoints whose EMA weights (unet_ema/) guide the final pipeline.",
    )
    parser.add_argument("--scales", type=float, nargs="+", default=[1.5, 2.0, 2.5], help="Guidance scales (above 1).")
    parser.add_argument("--num_samples", type=int, default=1000, help="Digits each row samples and scores.")
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_EVAL_NUM_INFERENCE_STEPS, help="Steps of the evaluation sampler."
    )
    parser.add_argument("--batch_size", type=int, default=250, help="Images per pipeline call.")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_samples, args.steps, args.batch_size = 16, 2, 16
    if args.num_samples < 2 or args.steps < 1 or args.batch_size < 1:
        raise ValueError("--num_samples must be at least 2, --steps and --batch_size at least 1.")
    if not all(scale > 1 for scale in args.scales):
        raise ValueError(f"--scales must all be above 1 (1 is the unguided row, always measured), got {args.scales}.")
    guide_argument = "--run_dir" if args.guide_run_dir is None else "--guide_run_dir"
    args.guide_run_dir = args.guide_run_dir or args.run_dir
    available = [checkpoint_step(path) for path in list_checkpoints(args.guide_run_dir)]
    missing = [step for step in args.checkpoints if step not in available]
    if missing:
        raise ValueError(
            f"--checkpoints {missing} are not checkpoints of {guide_argument} {args.guide_run_dir}; it has "
            f"{available or 'none'}."
        )
    return args


def describe_network(unet: SimpleUNet2DModel) -> str:
    """The widths and parameter count of a network, for the report."""
    widths = "/".join(str(width) for width in unet.config.block_out_channels)
    return f"widths {widths}, {sum(parameter.numel() for parameter in unet.parameters()):,} parameters"


def measure(pipeline: SimpleDDPMPipeline, args: argparse.Namespace, guidance_scale: float) -> dict:
    """Samples and scores `--num_samples` images of `pipeline` at `guidance_scale`, as the model card's evaluation."""
    sampling_pipeline, _ = with_scheduler(pipeline, DEFAULT_EVAL_SCHEDULER, clip_sample=True)
    start = time.perf_counter()
    with torch.autocast(pipeline.device.type, dtype=torch.bfloat16):
        images = generate_images(
            sampling_pipeline,
            args.num_samples,
            args.steps,
            seed=args.seed,
            batch_size=args.batch_size,
            guidance_scale=guidance_scale,
        )
    seconds = time.perf_counter() - start
    results = evaluate_images(images, reference="mnist-test", metrics=("fast",), include_floor=True)
    return {
        "fd": results["fast_fd"],
        "floor": results["fast_fd_floor"],
        "recognised": results["recognised_share"],
        "recognised_floor": results["recognised_share_floor"],
        "seconds": seconds,
        "grid": make_sample_grid(images[:GRID_IMAGES], scale=2).convert("L"),
    }


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    run_dir, guide_run_dir = Path(args.run_dir), Path(args.guide_run_dir)
    pipeline = SimpleDDPMPipeline.from_pretrained(run_dir, guidance_unet=None).to(device)
    pipeline.set_progress_bar_config(disable=True)
    rows = [{"name": "unguided", "guide": "–", "scale": 1.0, **measure(pipeline, args, 1.0)}]
    print(f"unguided: FD {rows[0]['fd']:.2f} (floor {rows[0]['floor']:.2f}), {rows[0]['recognised']:.1%} recognised")
    for step in args.checkpoints:
        guide = SimpleUNet2DModel.from_pretrained(guide_run_dir / f"{CHECKPOINT_PREFIX}{step}", subfolder="unet_ema")
        guided = SimpleDDPMPipeline(
            unet=pipeline.unet, scheduler=pipeline.scheduler, guidance_unet=guide.to(device).eval()
        )
        guided.set_progress_bar_config(disable=True)
        for scale in args.scales:
            rows.append({"name": f"update {step}, {scale:g}", "guide": f"update {step}", "scale": scale,
                         **measure(guided, args, scale)})  # fmt: skip
            row = rows[-1]
            print(f"{row['name']}: FD {row['fd']:.2f} (floor {row['floor']:.2f}), {row['recognised']:.1%} recognised")
    table = markdown_table(
        ["Guiding model (EMA weights after)", "Guidance scale", "Fast FD", "Floor", "FD / floor", "Recognised",
         "Sampling seconds"],
        [
            [row["guide"], row["scale"], row["fd"], row["floor"], row["fd"] / row["floor"], f"{row['recognised']:.1%}",
             row["seconds"]]
            for row in rows
        ],
    )  # fmt: skip
    grids = grids_chart(chart_path(args.output_dir, args.report_name, device, "-samples"), rows)
    final_step = checkpoint_step(list_checkpoints(run_dir)[-1])
    if guide_run_dir == run_dir:
        guides = "its earlier checkpoints"
    else:
        guides = f"the checkpoints of the run in `{guide_run_dir.name}` ({describe_network(guide)})"
    body = [
        f"The final EMA pipeline of the run in `{run_dir.name}` ({describe_network(pipeline.unet)}; last checkpoint: "
        f"update {final_step}), guided by the EMA weights of {guides} (`guidance_unet`, autoguidance: `weak + scale * "
        f"(strong - weak)`). "
        f"Each row: {args.num_samples} digits, seeds {args.seed} to {args.seed + args.num_samples - 1}, the "
        f"`{DEFAULT_EVAL_SCHEDULER}` sampler with {args.steps} steps, the predicted clean image clipped, bf16 autocast; "
        f"fast Fréchet distance against the MNIST test split beside the floor ({args.num_samples} real training "
        f"digits), and the share of digits the MNIST classifier gives one class a probability of 0.9 or more (real "
        f"digits: {rows[0]['recognised_floor']:.1%}). A guided row runs two networks per step.",
        "",
        *table,
        "",
        grids,
    ]
    title = report_title("Autoguidance", NAME, args.report_name)
    path = write_report(args.output_dir, args.report_name, title, environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
