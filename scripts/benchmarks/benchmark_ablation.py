"""Architecture ablation: every option of `SimpleUNet2DModel` beyond the notebook, trained for the same wall-clock time.

    python scripts/benchmarks/benchmark_ablation.py [--budget_minutes 5] [--num_samples 500] [--quick]

Each configuration trains in the bare loop of `scripts/train.py`'s update (bf16 autocast, channels_last, AdamW, EMA)
on MNIST for the same wall-clock budget, then its EMA weights generate digits with one fixed sampler, scored by the
Fréchet distance of the MNIST classifier's features (with KID and the classifier Inception Score) beside the floor.
"""

import argparse
import os

import torch
from benchmark_utils import (
    SAMPLERS,
    BareTrainer,
    add_common_arguments,
    bar_chart,
    chart_path,
    count_parameters,
    make_simple_unet,
    markdown_table,
    mnist_tensor,
    sampling_pipeline,
    setup,
    write_report,
)

from diffusers_simple_ddpm.evaluation import SampleEvaluator
from diffusers_simple_ddpm.sampling import generate_images

NAME = "ablation"
NOTEBOOK_WIDTHS = (64, 128, 256)
NARROW_WIDTHS = (32, 64, 128)
DROPOUT = 0.1
# Configurations: the notebook, each option alone on top of it, all of them together, and combinations of them.
CONFIGS = {
    "notebook": {},
    "+ sinusoidal embedding": {"time_embedding_type": "sinusoidal"},
    "+ time injection at every block": {"time_injection": "all"},
    "+ GroupNorm(8)": {"norm_num_groups": 8},
    f"+ dropout {DROPOUT}": {"dropout": DROPOUT},
    f"widths {NARROW_WIDTHS}": {"block_out_channels": NARROW_WIDTHS},
    "combination (all of the above)": {
        "time_embedding_type": "sinusoidal",
        "time_injection": "all",
        "norm_num_groups": 8,
        "dropout": DROPOUT,
        "block_out_channels": NARROW_WIDTHS,
    },
    f"widths {NARROW_WIDTHS} + sinusoidal + time injection at every block + GroupNorm(8)": {
        "time_embedding_type": "sinusoidal",
        "time_injection": "all",
        "norm_num_groups": 8,
        "block_out_channels": NARROW_WIDTHS,
    },
    f"widths {NARROW_WIDTHS} + sinusoidal + time injection at every block": {
        "time_embedding_type": "sinusoidal",
        "time_injection": "all",
        "block_out_channels": NARROW_WIDTHS,
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--budget_minutes", type=float, default=5.0, help="Training time per configuration.")
    parser.add_argument("--batch_size", type=int, default=64, help="Training batch size.")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="Configurations to run (names above).")
    parser.add_argument(
        "--sampler", type=str, default="DPM-Solver++", choices=list(SAMPLERS), help="Scoring sampler."
    )
    parser.add_argument("--num_inference_steps", type=int, default=20, help="Steps of the scoring sampler.")
    parser.add_argument("--num_samples", type=int, default=500, help="Generated digits per configuration.")
    parser.add_argument("--sample_batch_size", type=int, default=100, help="Digits per pipeline call.")
    args = parser.parse_args(argv)
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        raise ValueError(f"`--configs` must be among {list(CONFIGS)}, got {sorted(unknown)}.")
    if args.quick:
        args.configs, args.budget_minutes, args.batch_size = ["notebook", f"widths {NARROW_WIDTHS}"], 0.02, 8
        args.num_inference_steps, args.num_samples, args.sample_batch_size = 2, 20, 20
    return args


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    images = mnist_tensor("train")
    evaluator = SampleEvaluator(metrics=("fast",), device=device)
    floor = evaluator.floor(args.num_samples)
    rows, labels, scores = [], [], []
    for name in args.configs:
        load_at_start = os.getloadavg()[0]
        torch.manual_seed(args.seed)
        model = make_simple_unet(CONFIGS[name], 28, 1)
        trainer = BareTrainer(model, images, args.batch_size, device, "bf16", True, seed=args.seed)
        result = trainer.train_for(args.budget_minutes * 60)
        samples = generate_images(
            sampling_pipeline(trainer.ema_copy(), args.sampler),
            args.num_samples,
            args.num_inference_steps,
            seed=args.seed,
            batch_size=args.sample_batch_size,
            output_type="pt",
        )
        metrics = evaluator.evaluate(samples)
        rows.append(
            [
                name,
                f"{count_parameters(model) / 1e6:.2f}M",
                result["steps"],
                result["images_per_s"],
                result["loss"],
                metrics["fast_fd"],
                metrics["kid"],
                metrics["classifier_is"],
                f"{load_at_start:.1f}",
            ]
        )
        labels.append(name)
        scores.append(metrics["fast_fd"])
        print(f"{name}: {rows[-1]}", flush=True)

    best = min(range(len(scores)), key=scores.__getitem__)
    baseline = scores[args.configs.index("notebook")] if "notebook" in args.configs else None
    summary = f"Best: **{labels[best]}**, fast FD {scores[best]:.3g}"
    if baseline is not None and labels[best] != "notebook":
        summary += f" against {baseline:.3g} for the notebook network ({scores[best] / baseline:.2f}x)"
    body = [
        f"Every configuration trains on the MNIST training digits for as many updates as fit in "
        f"{args.budget_minutes:g} min at the speed of its first 11 updates (batch {args.batch_size}, bf16 autocast "
        f"+ channels_last, AdamW 3e-4 after 200 warm-up steps, gradient clipping, EMA: `scripts/train.py`'s update in "
        f"a bare loop, constant learning rate after warm-up), then its EMA weights generate {args.num_samples} digits "
        f"with "
        f"{args.sampler} {args.num_inference_steps} steps (fp32). Scores against the 10000 MNIST test digits; the "
        f"floor is {args.num_samples} real training digits: fast FD {floor['fast_fd']:.3g}, KID {floor['kid']:.3g}, "
        f"classifier IS {floor['classifier_is']:.3g}. Lower FD and KID, higher IS are better. The 1-minute load "
        f"average at each configuration's start is given, since configurations share the machine with other jobs.",
        "",
        *markdown_table(
            [
                "configuration",
                "parameters",
                "updates",
                "images/s",
                "final loss",
                "fast FD",
                "KID",
                "classifier IS",
                "load",
            ],
            rows,
        ),
        "",
        summary + ".",
        "",
        bar_chart(
            chart_path(args.output_dir, NAME, device),
            "Fast FD after the same training time (lower is better; tick: floor)",
            labels,
            scores,
            "",
            references=[floor["fast_fd"]] * len(scores),
        ),
    ]
    path = write_report(
        args.output_dir, NAME, "Architecture ablation at a fixed training time", environment, body, device
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
