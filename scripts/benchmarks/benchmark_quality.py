"""Sample quality at a fixed training budget on MNIST: samplers and steps, EMA against raw weights, and diffusers'
`UNet2DModel` trained for the same time.

    python scripts/benchmarks/benchmark_quality.py [--budget_minutes 10] [--num_samples 500] [--quick]

`scripts/train.py` trains the `--model_config` preset for as many updates as fit in the budget (counted from the
bare loop's speed; the report gives the script's actual time). Its EMA weights (the exported pipeline) and raw weights
(the last checkpoint's `unet/`) generate digits with each sampler; diffusers' `UNet2DModel` of about the same size
trains in the bare loop for the same budget. Every figure stands beside its floor (real digits).
"""

import argparse
import tempfile
from pathlib import Path

import torch
from benchmark_utils import (
    BareTrainer,
    add_common_arguments,
    bar_chart,
    chart_path,
    count_parameters,
    make_diffusers_unet,
    markdown_table,
    mnist_tensor,
    sampling_pipeline,
    setup,
    train_script_for_budget,
    write_report,
)

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleUNet2DModel
from diffusers_simple_ddpm.evaluation import SampleEvaluator
from diffusers_simple_ddpm.sampling import generate_images

NAME = "quality"
# (sampler, steps) of the comparison; DDPM 1000 is the notebook's ancestral sampler.
SAMPLER_SETTINGS = (("DDPM", 1000), ("DDIM", 50), ("DDIM", 100), ("DPM-Solver++", 10), ("DPM-Solver++", 20))
DIFFUSERS_WIDTHS = {"notebook": (32, 64, 128), "default": (16, 32, 64)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--budget_minutes", type=float, default=10.0, help="Training wall-clock budget per model.")
    parser.add_argument("--model_config", type=str, default="default", choices=list(DIFFUSERS_WIDTHS), help="Preset.")
    parser.add_argument("--batch_size", type=int, default=64, help="Training batch size.")
    parser.add_argument("--num_samples", type=int, default=500, help="Digits per figure of the fast metrics.")
    parser.add_argument(
        "--num_ddpm_samples", type=int, default=100, help="Digits of the DDPM 1000-step figures (slow on a CPU)."
    )
    parser.add_argument(
        "--num_fid_samples", type=int, default=100, help="Digits (the first of each set) scored by Inception FID."
    )
    parser.add_argument(
        "--num_fid_reference", type=int, default=1000, help="MNIST test digits of the Inception FID reference."
    )
    parser.add_argument("--sample_batch_size", type=int, default=100, help="Digits per pipeline call.")
    parser.add_argument("--skip_fid", action="store_true", help="Leave out the Inception FID.")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget_minutes, args.batch_size, args.sample_batch_size = 0.01, 8, 10
        args.num_samples = args.num_ddpm_samples = args.num_fid_samples = 10
        args.num_fid_reference, args.skip_fid = 10, True
    return args


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    images = mnist_tensor("train")
    budget_s = args.budget_minutes * 60
    settings = SAMPLER_SETTINGS if not args.quick else (("DDPM", 4), ("DDIM", 2), ("DPM-Solver++", 2))

    with tempfile.TemporaryDirectory() as workdir:
        output_dir = Path(workdir) / "pipeline"
        run = train_script_for_budget(
            output_dir, args.model_config, images, args.batch_size, budget_s, device, args.seed, keep_checkpoint=True
        )
        num_steps = run["steps"]
        # (name in the table, name in the chart, model)
        models = [
            (
                "SimpleUNet2DModel, EMA (exported pipeline)",
                "ours EMA",
                SimpleDDPMPipeline.from_pretrained(output_dir).unet,
            ),
            (
                "SimpleUNet2DModel, raw (last checkpoint)",
                "ours raw",
                SimpleUNet2DModel.from_pretrained(output_dir / f"checkpoint-{num_steps}", subfolder="unet"),
            ),
        ]
    torch.manual_seed(args.seed)
    diffusers_unet = make_diffusers_unet(DIFFUSERS_WIDTHS[args.model_config], 28, 1)
    # fp32 on the CPU: diffusers' UNet2DModel trains faster there than under bf16 autocast (training benchmark).
    precision = "bf16" if device.type == "cuda" else "no"
    trainer = BareTrainer(
        diffusers_unet, images, args.batch_size, device, precision, channels_last=precision == "bf16", seed=args.seed
    )
    diffusers_run = trainer.train_for(budget_s)
    models.append(
        (f"diffusers UNet2DModel {DIFFUSERS_WIDTHS[args.model_config]}, EMA", "UNet2DModel EMA", trainer.ema_copy())
    )

    fast = SampleEvaluator(metrics=("fast",), device=device)
    fid = (
        None
        if args.skip_fid
        else SampleEvaluator(metrics=("fid",), num_reference=args.num_fid_reference, device=device)
    )
    rows, labels, values, floors = [], [], [], []
    for model_name, chart_name, model in models:
        model = model.to(device).eval()
        for sampler, steps in settings:
            count = args.num_ddpm_samples if sampler == "DDPM" else args.num_samples
            samples = generate_images(
                sampling_pipeline(model, sampler),
                count,
                steps,
                seed=args.seed,
                batch_size=args.sample_batch_size,
                output_type="pt",
            )
            metrics = fast.evaluate(samples, include_floor=True)
            row = [
                model_name,
                f"{sampler} {steps}",
                count,
                metrics["fast_fd"],
                metrics["fast_fd_floor"],
                metrics["kid"],
                metrics["kid_floor"],
                metrics["classifier_is"],
                metrics["classifier_is_floor"],
                min(metrics["class_coverage"]),
            ]
            if fid is not None:
                fid_metrics = fid.evaluate(samples[: args.num_fid_samples], include_floor=True)
                row += [fid_metrics["fid"], fid_metrics["fid_floor"]]
            rows.append(row)
            labels.append(f"{chart_name}, {sampler} {steps}")
            values.append(metrics["fast_fd"])
            floors.append(metrics["fast_fd_floor"])
            print(row, flush=True)

    headers = [
        "model",
        "sampler",
        "digits",
        "fast FD",
        "floor",
        "KID",
        "floor",
        "classifier IS",
        "floor",
        "rarest digit share",
    ]
    if fid is not None:
        headers += [f"FID ({args.num_fid_samples} digits)", "floor"]
    precision_name = "bf16 + channels_last" if precision == "bf16" else "fp32, its faster precision on this CPU"
    body = [
        f"Training budget {args.budget_minutes:g} min. `scripts/train.py --model_config {args.model_config}` "
        f"(bf16, channels_last, EMA, cosine schedule, batch {args.batch_size}) ran {num_steps} updates, the number the "
        f"bare loop's speed fits in the budget; the whole command took {run['seconds']:.0f} s (start-up and saving "
        f"included). Diffusers' `UNet2DModel` ({count_parameters(diffusers_unet) / 1e6:.2f}M parameters) trained in "
        f"the bare loop for the budget ({precision_name}): {diffusers_run['steps']} updates in "
        f"{diffusers_run['seconds']:.0f} s (constant learning rate after warm-up).",
        "",
        f"Fast metrics on {args.num_samples} digits per sampler ({args.num_ddpm_samples} for DDPM 1000, which is slow "
        f"on a CPU) against the 10000 MNIST test digits; Inception FID on the first {args.num_fid_samples} of them "
        f"against {args.num_fid_reference} test digits. Each floor is as many real training digits as the figure "
        f'beside it. "Rarest digit share" is the classifier\'s share of the least generated digit (0.1 is uniform).',
        "",
        *markdown_table(headers, rows),
        "",
        bar_chart(
            chart_path(args.output_dir, NAME, device),
            "Fast FD by model and sampler (lower is better; tick: floor)",
            labels,
            values,
            "",
            references=floors,
        ),
    ]
    path = write_report(args.output_dir, NAME, "Quality at a fixed training budget", environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
