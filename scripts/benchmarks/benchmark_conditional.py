"""Class-conditional MNIST: how often the evaluation classifier sees the requested digit, by guidance scale.

    python scripts/benchmarks/benchmark_conditional.py [--budget_minutes 10] [--num_per_class 50] [--quick]

`scripts/train.py --class_conditional` trains for as many updates as fit in the budget (counted from the bare loop's
speed), or `--pretrained_pipeline` names a pipeline an earlier run kept with `--pipeline_dir`; the pipeline then
generates `--num_per_class` digits of every class with each sampler at each guidance scale, and the report gives the
share the MNIST classifier assigns to the requested class and the Fréchet distance of the classifier features per
class, beside the floor (as many real training digits of that class).
"""

import argparse
import re
import tempfile
from pathlib import Path

import numpy as np
import torch
from benchmark_utils import (
    SAMPLERS,
    add_common_arguments,
    bar_chart,
    chart_path,
    markdown_table,
    mnist_labels,
    mnist_tensor,
    sampling_pipeline,
    setup,
    train_script_for_budget,
    write_report,
)
from diffusers.utils import numpy_to_pil

from diffusers_simple_ddpm import SimpleDDPMPipeline
from diffusers_simple_ddpm.data import load_mnist_arrays
from diffusers_simple_ddpm.evaluation import (
    NUM_CLASSES,
    classifier_features,
    feature_statistics,
    frechet_distance,
    load_classifier,
)
from diffusers_simple_ddpm.image_utils import make_sample_grid
from diffusers_simple_ddpm.sampling import generate_images
from diffusers_simple_ddpm.training_args import DEFAULT_TRAIN_BATCH_SIZE

NAME = "conditional"


def add_guided_sampling_arguments(parser: argparse.ArgumentParser, pipeline_kind: str) -> None:
    """
    Adds the arguments of the benchmarks that train a conditional pipeline on MNIST (or take one trained earlier) and
    measure its digits by sampler and guidance scale: this one and `benchmark_text.py`.

    Args:
        parser (`argparse.ArgumentParser`): The benchmark's parser, with `add_common_arguments` already added.
        pipeline_kind (`str`): What `--pretrained_pipeline` must be, as its help says it (such as "class-conditional").
    """
    parser.add_argument("--budget_minutes", type=float, default=10.0, help="Training time budget.")
    parser.add_argument("--model_config", type=str, default="default", help="The preset of scripts/train.py.")
    parser.add_argument(
        "--batch_size", type=int, default=DEFAULT_TRAIN_BATCH_SIZE, help="Training batch size (the training program's)."
    )
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1, 2, 3, 4, 5], help="Scales to test.")
    parser.add_argument("--num_per_class", type=int, default=50, help="Digits generated per class and scale.")
    parser.add_argument(
        "--samplers",
        type=str,
        nargs="+",
        default=["DPM-Solver++", "DPM-Solver++ clip"],
        choices=list(SAMPLERS),
        help='Samplers to test; "clip" clips the predicted clean image to [-1, 1] at every step.',
    )
    parser.add_argument("--num_inference_steps", type=int, default=20, help="Steps of the samplers.")
    parser.add_argument("--sample_batch_size", type=int, default=100, help="Digits per pipeline call.")
    parser.add_argument(
        "--pipeline_dir",
        type=str,
        default=None,
        help="Where the training run writes its pipeline, kept for later sampling. Default: a temporary folder.",
    )
    parser.add_argument(
        "--pretrained_pipeline",
        type=str,
        default=None,
        help=f"A {pipeline_kind} pipeline folder trained by scripts/train.py (say, an earlier run's --pipeline_dir) "
        "to measure instead of training one; the report quotes the training figures of its model card.",
    )
    parser.add_argument("--grid_columns", type=int, default=10, help="Digits per class in the report's sample grid.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    add_guided_sampling_arguments(parser, "class-conditional")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget_minutes, args.batch_size, args.guidance_scales = 0.01, 8, [1.0, 3.0]
        args.num_per_class, args.num_inference_steps, args.sample_batch_size = 2, 2, 20
    return args


def save_class_grid(samples: torch.Tensor, digits: torch.Tensor, columns: int, path: Path) -> None:
    """
    Saves a grid of digits, one row per class (0 at the top): the first `columns` samples of each class.

    Args:
        samples (`torch.Tensor`): Images [N, C, H, W] in [0, 1].
        digits (`torch.Tensor`): The class of each image.
        columns (`int`): Digits per row.
        path (`Path`): The PNG to write.
    """
    first_of_each_class = torch.cat([samples[digits == digit][:columns] for digit in range(NUM_CLASSES)])
    make_sample_grid(numpy_to_pil(first_of_each_class.permute(0, 2, 3, 1).float().numpy()), columns=columns).save(path)


def class_statistics(images, classifier, device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classifier features' mean and covariance, and the predicted classes, of a set of digits."""
    features, probabilities = classifier_features(images, classifier, device=device)
    return *feature_statistics(features), probabilities.argmax(axis=1)


def train_pipeline(args: argparse.Namespace, output_dir: Path, device: torch.device) -> str:
    """Trains a class-conditional pipeline into `output_dir` for the budget; returns the report's sentence on it."""
    run = train_script_for_budget(
        output_dir,
        args.model_config,
        mnist_tensor("train"),
        args.batch_size,
        args.budget_minutes * 60,
        device,
        args.seed,
        labels=mnist_labels("train"),
    )
    return (
        f'`scripts/train.py --class_conditional --model_config {args.model_config}` (labels dropped to "no class" '
        f"10% of the time, bf16, EMA, batch {args.batch_size}) for a {args.budget_minutes:g}-minute budget: "
        f"{run['steps']} updates, {run['seconds']:.0f} s for the whole command."
    )


def describe_pretrained(path: Path) -> str:
    """The report's sentence on a pipeline trained earlier: the training rows of its model card."""
    card = (path / "README.md").read_text() if (path / "README.md").is_file() else ""
    rows = re.findall(r"^\| (Optimizer updates|Batch size|Mixed precision|Training time) \| (.+?) \|$", card, re.M)
    figures = "; ".join(f"{name.lower()} {value}" for name, value in rows) or "its model card gives no training figures"
    return (
        f"The pipeline an earlier run of this script kept with `--pipeline_dir` (`scripts/train.py "
        f"--class_conditional`); from its model card: {figures}."
    )


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    with tempfile.TemporaryDirectory() as workdir:
        if args.pretrained_pipeline:
            output_dir = Path(args.pretrained_pipeline)
            training = describe_pretrained(output_dir)
        else:
            output_dir = Path(args.pipeline_dir or Path(workdir) / "pipeline")
            training = train_pipeline(args, output_dir, device)
        trained = SimpleDDPMPipeline.from_pretrained(output_dir)
        unet, noise_scheduler = trained.unet.to(device).eval(), trained.scheduler

    classifier = load_classifier(device=device)
    test_images, test_labels = load_mnist_arrays("test")
    train_images, train_labels = load_mnist_arrays("train")
    references = [
        class_statistics(test_images[test_labels == digit], classifier, device)[:2] for digit in range(NUM_CLASSES)
    ]
    floors = [
        frechet_distance(
            *class_statistics(train_images[train_labels == digit][: args.num_per_class], classifier, device)[:2],
            *references[digit],
        )
        for digit in range(NUM_CLASSES)
    ]
    requested = torch.arange(NUM_CLASSES).repeat_interleave(args.num_per_class)
    settings = [(sampler, scale) for sampler in args.samplers for scale in args.guidance_scales]
    accuracy_rows, distance_rows, accuracies, sample_sets = [], [], [], []
    for sampler, scale in settings:
        samples = generate_images(
            sampling_pipeline(unet, sampler, noise_scheduler),
            len(requested),
            args.num_inference_steps,
            seed=args.seed,
            batch_size=args.sample_batch_size,
            class_labels=requested.tolist(),
            guidance_scale=scale,
            output_type="pt",
        )
        sample_sets.append(samples)
        per_class_accuracy, per_class_distance = [], []
        for digit in range(NUM_CLASSES):
            digit_samples = samples[requested == digit]
            mu, sigma, predicted = class_statistics(digit_samples, classifier, device)
            per_class_accuracy.append(float(np.mean(predicted == digit)))
            per_class_distance.append(frechet_distance(mu, sigma, *references[digit]))
        accuracy = float(np.mean(per_class_accuracy))
        accuracies.append(accuracy)
        accuracy_rows.append(
            [sampler, f"{scale:g}", f"{100 * accuracy:.1f}%", *(f"{100 * value:.0f}" for value in per_class_accuracy)]
        )
        distance_rows.append([sampler, f"{scale:g}", float(np.mean(per_class_distance)), *per_class_distance])
        print(accuracy_rows[-1], flush=True)

    best = int(np.argmax(accuracies))
    best_sampler, best_scale = settings[best]
    grid_path = chart_path(args.output_dir, NAME, device, suffix="-samples")
    columns = min(args.grid_columns, args.num_per_class)
    save_class_grid(sample_sets[best], requested, columns, grid_path)
    digits = [str(digit) for digit in range(NUM_CLASSES)]
    distance_rows.append(["floor (real digits)", "", float(np.mean(floors)), *floors])
    body = [
        f"{training} Its EMA pipeline generated {args.num_per_class} digits per class with each sampler "
        f"({args.num_inference_steps} steps, fp32) at each classifier-free guidance scale. \"clip\" clips the "
        f"predicted clean image to [-1, 1] at every step (for DPM-Solver++: dynamic thresholding with "
        f"`sample_max_value=1.0`).",
        "",
        "### Share of digits classified as the requested class (%)",
        "",
        *markdown_table(["sampler", "guidance scale", "all", *digits], accuracy_rows),
        "",
        f"Best: **{best_sampler}, guidance scale {best_scale:g}**, {100 * accuracies[best]:.1f}% of the digits as "
        f"requested. The first {columns} digits of each class there, one row per class (0 at the top):",
        "",
        f"![Digits 0 to 9, {best_sampler}, guidance scale {best_scale:g}]({grid_path.name})",
        "",
        f"### Fast Fréchet distance per class ({args.num_per_class} digits against the MNIST test digits of the class)",
        "",
        *markdown_table(["sampler", "guidance scale", "mean", *digits], distance_rows),
        "",
        bar_chart(
            chart_path(args.output_dir, NAME, device),
            "Share of requested digits by sampler and guidance scale",
            [f"{sampler}, guidance {scale:g}" for sampler, scale in settings],
            [100 * value for value in accuracies],
            "%",
        ),
    ]
    path = write_report(args.output_dir, NAME, "Class-conditional generation", environment, body, device)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(parse_args())
