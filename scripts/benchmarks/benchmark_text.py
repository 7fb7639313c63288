"""Text-conditional MNIST: how often the evaluation classifier sees the digit the prompt names, for the phrasings of
training and for phrasings held out of it.

    python scripts/benchmarks/benchmark_text.py [--budget_minutes 30] [--num_per_class 50] [--quick]

`scripts/train.py --text_conditional` trains on the built-in MNIST, captioned with `MNIST_TRAINING_TEMPLATES` (one
phrasing drawn per image), for as many updates as fit in the budget (the speed of the script is measured first by two
short runs), or `--pretrained_pipeline` names a pipeline an earlier run kept with `--pipeline_dir`. The pipeline then
generates `--num_per_class` digits of every class from the training phrasings and as many from the held-out ones
(`MNIST_HELD_OUT_TEMPLATES`: other wordings, number words where training saw numerals), with DPM-Solver++ at each
guidance scale, and the report gives the share the MNIST classifier assigns to the class the prompt names.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from benchmark_conditional import add_guided_sampling_arguments, describe_pretrained, save_class_grid
from benchmark_utils import (
    SAMPLERS,
    add_common_arguments,
    bar_chart,
    chart_path,
    markdown_table,
    run_train_script,
    setup,
    write_report,
)

from diffusers_simple_ddpm import SimpleDDPMTextPipeline
from diffusers_simple_ddpm.evaluation import NUM_CLASSES, classifier_features, load_classifier
from diffusers_simple_ddpm.sampling import generate_images, with_scheduler
from diffusers_simple_ddpm.text_utils import (
    DEFAULT_TEXT_ENCODER_SOURCE,
    MNIST_HELD_OUT_TEMPLATES,
    MNIST_TRAINING_TEMPLATES,
    mnist_caption,
)

NAME = "text"
PHRASINGS = {"training": MNIST_TRAINING_TEMPLATES, "held out": MNIST_HELD_OUT_TEMPLATES}
# Updates of the two short runs that time the script; their difference removes the start-up cost.
CALIBRATION_STEPS = (10, 40)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    add_guided_sampling_arguments(parser, "text-conditional MNIST")
    parser.add_argument(
        "--text_encoder_name_or_path",
        type=str,
        default=None,
        help=f"The text encoder of scripts/train.py. Default: {DEFAULT_TEXT_ENCODER_SOURCE} from its offline wheel.",
    )
    # The target is stated for guidance 3 or less; digits are spread over the phrasings of a set (8 held out).
    parser.set_defaults(
        budget_minutes=30.0,
        guidance_scales=[1, 2, 3],
        num_per_class=48,
        sample_batch_size=96,
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.budget_minutes, args.batch_size, args.guidance_scales = 0.0, 8, [1.0, 3.0]
        args.num_per_class, args.num_inference_steps, args.sample_batch_size = 2, 2, 20
        args.samplers = args.samplers[:1]
    return args


def train_pipeline(args: argparse.Namespace, output_dir: Path) -> str:
    """Trains a text pipeline into `output_dir` for the budget; returns the report's sentence on it."""
    script_args = [
        "--text_conditional",
        "--model_config", args.model_config,
        "--train_batch_size", str(args.batch_size),
        "--checkpointing_steps", str(10**9),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if args.text_encoder_name_or_path:
        script_args += ["--text_encoder_name_or_path", args.text_encoder_name_or_path]
    if args.quick:
        num_steps = 2
    else:
        short, long = (
            run_train_script(output_dir, [*script_args, "--max_train_steps", str(steps)]) for steps in CALIBRATION_STEPS
        )
        seconds_per_update = (long["seconds"] - short["seconds"]) / (CALIBRATION_STEPS[1] - CALIBRATION_STEPS[0])
        num_steps = max(CALIBRATION_STEPS[1], int(args.budget_minutes * 60 / seconds_per_update))
    run = run_train_script(output_dir, [*script_args, "--max_train_steps", str(num_steps)])
    encoder = args.text_encoder_name_or_path or DEFAULT_TEXT_ENCODER_SOURCE
    return (
        f"`scripts/train.py --text_conditional --model_config {args.model_config}` (encoder {encoder}, frozen; "
        f"captions dropped to the empty one 10% of the time, bf16, EMA, batch {args.batch_size}) for a "
        f"{args.budget_minutes:g}-minute budget: {num_steps} updates, {run['seconds']:.0f} s for the whole command."
    )


def prompts_for(templates: tuple[str, ...], num_per_class: int) -> tuple[list[str], torch.Tensor]:
    """`num_per_class` prompts per digit, cycling through `templates`, and the digit each prompt names."""
    digits = torch.arange(NUM_CLASSES).repeat_interleave(num_per_class)
    prompts = [mnist_caption(int(digit), templates[index % len(templates)]) for index, digit in enumerate(digits)]
    return prompts, digits


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    with tempfile.TemporaryDirectory() as workdir:
        if args.pretrained_pipeline:
            output_dir = Path(args.pretrained_pipeline)
            training = describe_pretrained(output_dir)
        else:
            output_dir = Path(args.pipeline_dir or Path(workdir) / "pipeline")
            training = train_pipeline(args, output_dir)
        pipeline = SimpleDDPMTextPipeline.from_pretrained(output_dir).to(device)
    pipeline.set_progress_bar_config(disable=True)

    classifier = load_classifier(device=device)
    settings = [
        (sampler, phrasing, scale)
        for sampler in args.samplers
        for phrasing in PHRASINGS
        for scale in args.guidance_scales
    ]
    rows, accuracies, sample_sets = [], [], []
    for sampler, phrasing, scale in settings:
        scheduler, clip_sample = SAMPLERS[sampler]
        prompts, digits = prompts_for(PHRASINGS[phrasing], args.num_per_class)
        samples = generate_images(
            with_scheduler(pipeline, scheduler, clip_sample=clip_sample)[0],
            len(prompts),
            args.num_inference_steps,
            seed=args.seed,
            batch_size=args.sample_batch_size,
            guidance_scale=scale,
            output_type="pt",
            prompts=prompts,
        )
        sample_sets.append((samples, digits))
        _, probabilities = classifier_features(samples, classifier, device=device)
        correct = probabilities.argmax(axis=1) == digits.numpy()
        per_class = [float(np.mean(correct[digits.numpy() == digit])) for digit in range(NUM_CLASSES)]
        accuracies.append(float(np.mean(correct)))
        percentages = [f"{100 * value:.0f}" for value in per_class]
        rows.append([sampler, phrasing, f"{scale:g}", f"{100 * accuracies[-1]:.1f}%", *percentages])
        print(rows[-1], flush=True)

    held_out = [index for index, (_, phrasing, _) in enumerate(settings) if phrasing == "held out"]
    best = max(held_out, key=lambda index: accuracies[index])
    best_sampler, _, best_scale = settings[best]
    samples, digits = sample_sets[best]
    columns = min(args.grid_columns, args.num_per_class)
    grid_path = chart_path(args.output_dir, NAME, device, suffix="-samples")
    save_class_grid(samples, digits, columns, grid_path)
    phrasing_lines = [
        f"- {name}: " + ", ".join(f'"{mnist_caption(7, template)}"' for template in templates)
        for name, templates in PHRASINGS.items()
    ]
    body = [
        f"{training} Its EMA pipeline generated {args.num_per_class} digits per class for each set of phrasings "
        f"(cycling through its templates), with each sampler ({args.num_inference_steps} steps, fp32) at each "
        "classifier-free guidance scale (against the empty prompt). \"clip\" clips the predicted clean image to "
        "[-1, 1] at every step (dynamic thresholding with `sample_max_value=1.0`). The phrasings, shown for 7:",
        "",
        *phrasing_lines,
        "",
        "### Share of digits classified as the class the prompt names (%)",
        "",
        *markdown_table(["sampler", "phrasings", "guidance scale", "all", *map(str, range(NUM_CLASSES))], rows),
        "",
        f"Best on held-out phrasings: **{best_sampler}, guidance scale {best_scale:g}**, {100 * accuracies[best]:.1f}% "
        f"of the digits as named. Its first {columns} digits of each class, one row per class (0 at the top):",
        "",
        f"![Digits 0 to 9 from held-out phrasings, {best_sampler}, guidance scale {best_scale:g}]({grid_path.name})",
        "",
        bar_chart(
            chart_path(args.output_dir, NAME, device),
            "Share of digits as the prompt names, by sampler, phrasings and guidance scale",
            [f"{sampler}, {phrasing}, guidance {scale:g}" for sampler, phrasing, scale in settings],
            [100 * value for value in accuracies],
            "%",
        ),
    ]
    path = write_report(args.output_dir, NAME, "Text-conditional generation", environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
