"""The `simple-ddpm` command line: `sample`, `evaluate`, `convert` and `train`."""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import PIL.Image
import torch

from .training_args import build_parser as build_training_parser

if TYPE_CHECKING:
    from .pipeline_simple_ddpm import SimpleDDPMPipeline

# The commands import the package's heavy modules (🤗 Diffusers, the evaluation networks) when they run, so that
# `simple-ddpm train --help` answers at once.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def int_at_least(minimum: int):
    """An argparse type: an integer of at least `minimum`."""
    expected = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {value}")
        return number

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def device_name(value: str) -> str:
    """An argparse type: a torch device that this machine has (`cpu`, `cuda`, `cuda:1`, `mps`, ...)."""
    try:
        device = torch.device(value)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"must be a torch device such as cpu or cuda, got {value!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"is {value!r}, but this torch sees no CUDA device: use cpu")
    return value


# The `sample`/`evaluate` arguments that only sampling a model uses, by destination: `evaluate --images` refuses them.
SAMPLING_ONLY_ARGUMENTS = {
    "num_images": "--num_images", "scheduler": "--scheduler", "steps": "--steps", "dtype": "--dtype",
    "class_labels": "--class", "prompts": "--prompt", "guidance_scale": "--guidance_scale", "eta": "--eta",
    "clip_sample": "--clip_sample",
}  # fmt: skip


def finite_float_at_least(minimum: float, meaning: str):
    """An argparse type: a finite number of at least `minimum`; `meaning` says what the minimum does."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a finite number of at least {minimum} ({meaning}), got {value!r}"
            )
        return number

    return parse


def check_output_path(path: str, argument: str, folder: bool = False) -> None:
    """
    Raises a `ValueError` naming `argument` when `path` cannot be written, so that the command fails before it loads
    a model or samples.

    Args:
        path (`str`): The file (or, with `folder`, the folder, created with its parents when missing) to write.
        argument (`str`): The command-line flag that gave `path`, quoted in the error.
        folder (`bool`, *optional*, defaults to `False`): Whether `path` is a folder rather than a file.
    """
    target = os.path.abspath(path)
    if folder:
        if os.path.exists(target) and not os.path.isdir(target):
            raise ValueError(f"`{argument}` {path!r} exists and is not a folder.")
        existing = target
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise ValueError(f"`{argument}` {path!r} cannot be created: {existing!r} is a file, not a folder.")
    else:
        if os.path.isdir(target):
            raise ValueError(f"`{argument}` {path!r} is a folder; give the path of a file.")
        existing = os.path.dirname(target)
        if not os.path.isdir(existing):
            raise ValueError(f"`{argument}` {path!r} cannot be written: the folder {existing!r} does not exist.")
        if os.path.exists(target) and not os.access(target, os.W_OK):
            raise ValueError(f"`{argument}` {path!r} is not writable.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"`{argument}` {path!r} cannot be written: the folder {existing!r} is not writable.")


def check_image_path(path: str, argument: str) -> None:
    """Raises a `ValueError` naming `argument` when the image file `path` cannot be written or has no image suffix."""
    check_output_path(path, argument)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in PIL.Image.registered_extensions():
        raise ValueError(f"`{argument}` {path!r} needs the suffix of an image format, such as .png.")


def load_pipeline(model: str, device: str, dtype: str) -> "SimpleDDPMPipeline":
    """Loads a pipeline folder or Hub repo id, of the class its `model_index.json` names, on `device` in `dtype`."""
    from .pipeline_simple_ddpm import SimpleDDPMPipeline
    from .pipeline_simple_ddpm_text import SimpleDDPMTextPipeline

    pipeline_classes = {cls.__name__: cls for cls in (SimpleDDPMPipeline, SimpleDDPMTextPipeline)}
    pipeline_class = pipeline_classes.get(SimpleDDPMPipeline.load_config(model)["_class_name"], SimpleDDPMPipeline)
    pipeline = pipeline_class.from_pretrained(model, dtype=DTYPES[dtype])
    return pipeline.to(device)


def parse_class_labels(labels: list[str] | None, class_names: list[str] | None) -> list[int | str] | None:
    """
    Class labels as typed: a label that is one of `class_names` is that class, another integer is a class index,
    anything else a class name (which the pipeline checks).

    Args:
        labels (`list[str]`, *optional*): The labels of `--class`.
        class_names (`list[str]`, *optional*): The pipeline's class names (its `class_names` config), such as the
            names of the class subfolders it was trained on: "1", "2", "3" are names there, not indices.

    Returns:
        `list[int | str]` or `None`: the labels, `None` when `labels` is `None`.
    """
    if labels is None:
        return None
    names = set(class_names or ())
    return [int(label) if label not in names and label.removeprefix("-").isdigit() else label for label in labels]


def check_output_folder_is_free_of_images(path: str, argument: str) -> None:
    """
    Raises a `ValueError` naming `argument` when the folder `path` already holds image files (those that
    `evaluate --images` reads), so that the images of two runs are not mixed.

    Args:
        path (`str`): The output folder; it may not exist yet.
        argument (`str`): The command-line flag that gave `path`, quoted in the error.
    """
    from .evaluation_images import IMAGE_EXTENSIONS
    from .image_utils import image_files

    count = sum(1 for _ in image_files(path, IMAGE_EXTENSIONS)) if os.path.isdir(path) else 0
    if count:
        raise ValueError(
            f"`{argument}` {path!r} already holds {count} image files: the new images would overwrite some of them and "
            "mix with the others. Give another folder, or empty this one."
        )


def check_sampling_arguments(args: argparse.Namespace) -> None:
    """Raises a `ValueError` for `sample`/`evaluate` arguments that cannot work, before a model is loaded."""
    from .sampling import check_class_label_count, clipping_overrides, resolve_scheduler

    scheduler_class, _ = resolve_scheduler(args.scheduler)
    if args.clip_sample and scheduler_class is not None:
        clipping_overrides(scheduler_class)
    check_class_label_count(args.class_labels, args.num_images)
    check_class_label_count(args.prompts, args.num_images, argument="--prompt")
    if args.prompts is not None and args.class_labels is not None:
        raise ValueError("Give `--prompt` (text pipelines) or `--class` (class-conditional pipelines), not both.")


def generate_from_args(args: argparse.Namespace, pipeline: "SimpleDDPMPipeline") -> list:
    """Generates the images that the `sample` and `evaluate` arguments ask for."""
    from .pipeline_simple_ddpm_text import SimpleDDPMTextPipeline
    from .sampling import generate_images, in_turn, with_scheduler

    is_text_pipeline = isinstance(pipeline, SimpleDDPMTextPipeline)
    if args.prompts is not None and not is_text_pipeline:
        raise ValueError(f"`--prompt` needs a text pipeline; {args.model} is a {type(pipeline).__name__}: use --class.")
    if args.class_labels is not None and is_text_pipeline:
        raise ValueError(f"{args.model} is a text pipeline: give `--prompt`, not `--class`.")
    prompts = args.prompts
    if is_text_pipeline and prompts is None:
        prompts = pipeline.config.sample_prompts
        if not prompts:
            raise ValueError(f"{args.model} is a text pipeline without sample prompts: give `--prompt`.")
        prompts = in_turn(prompts, args.num_images)
    class_labels = parse_class_labels(args.class_labels, pipeline.config.get("class_names"))
    if class_labels is None and not is_text_pipeline and pipeline.num_classes:
        # As the model card's evaluation samples a class-conditional model: the classes in turn.
        class_labels = in_turn(range(pipeline.num_classes), args.num_images)
    sampling_pipeline, default_steps = with_scheduler(pipeline, args.scheduler, clip_sample=args.clip_sample)
    return generate_images(
        sampling_pipeline,
        args.num_images,
        default_steps if args.steps is None else args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        class_labels=class_labels,
        guidance_scale=args.guidance_scale,
        eta=args.eta,
        prompts=prompts,
    )


def sample_command(args: argparse.Namespace) -> None:
    from .image_utils import make_sample_grid

    if args.grid is None and args.output_dir is None:
        args.grid = "samples.png"
    if args.grid:
        check_image_path(args.grid, "--grid")
    if args.output_dir:
        check_output_path(args.output_dir, "--output_dir", folder=True)
        check_output_folder_is_free_of_images(args.output_dir, "--output_dir")
    check_sampling_arguments(args)
    pipeline = load_pipeline(args.model, args.device, args.dtype)
    images = generate_from_args(args, pipeline)
    if args.grid:
        make_sample_grid(images).save(args.grid)
        print(f"Wrote a grid of {len(images)} images to {args.grid}")
    if args.output_dir:
        output_dir = Path(args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            image.save(output_dir / f"{index:05d}.png")
        print(f"Wrote {len(images)} images to {output_dir}")


def evaluate_command(args: argparse.Namespace) -> None:
    from .evaluation import (
        REFERENCES,
        SampleEvaluator,
        check_sample_count,
        format_results_table,
        warn_if_too_few_for_fid,
    )
    from .evaluation_images import to_image_tensor

    if (args.model is None) == (args.images is None):
        raise ValueError("`simple-ddpm evaluate` takes either a model (folder or repo id) or `--images DIR`.")
    if args.json:
        check_output_path(args.json, "--json")
    include_floor = args.reference in REFERENCES
    if args.images is not None:
        given = [flag for name, flag in SAMPLING_ONLY_ARGUMENTS.items() if getattr(args, name) != args.sampling_defaults[name]]
        if given:
            raise ValueError(
                f"`{'`, `'.join(given)}` set how a model samples; `--images` evaluates the images as they are."
            )
        # The samples are read and counted before the reference features are computed.
        images = to_image_tensor(args.images, "`--images`")
        check_sample_count(len(images), args.reference, include_floor, argument="`--images`")
    else:
        check_sampling_arguments(args)
        check_sample_count(args.num_images, args.reference, include_floor, argument="`--num_images`")
        if "fid" in args.metrics:
            warn_if_too_few_for_fid(args.num_images, "`--num_images`")
    # The reference and `--num_reference` are checked (and the reference features computed) before any sampling.
    evaluator = SampleEvaluator(
        reference=args.reference,
        metrics=tuple(args.metrics),
        num_reference=args.num_reference,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
    )
    if args.model is not None:
        pipeline = load_pipeline(args.model, args.device, args.dtype)
        images = generate_from_args(args, pipeline)
    results = evaluator.evaluate(images, include_floor=include_floor)
    print(format_results_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"Wrote {args.json}")


def convert_command(args: argparse.Namespace) -> None:
    from .convert_notebook import convert_notebook_checkpoint

    check_output_path(args.output_dir, "--output_dir", folder=True)
    convert_notebook_checkpoint(args.checkpoint, args.output_dir, sample_size=args.sample_size)
    print(f"Saved the pipeline to {args.output_dir}; load it with SimpleDDPMPipeline.from_pretrained({args.output_dir!r}).")


def accelerate_launch_options(mixed_precision: str) -> list[str]:
    """
    The options of `accelerate launch` for a training run: none where `accelerate config` has written a default
    configuration, else the values accelerate would pick itself (and warn about on every launch), with the run's own
    mixed precision.
    """
    from accelerate.commands.config import default_config_file

    if os.path.isfile(default_config_file):
        return []
    num_gpus = torch.cuda.device_count()
    options = ["--num_processes", str(max(num_gpus, 1)), "--num_machines", "1", "--dynamo_backend", "no"]
    return options + ["--mixed_precision", mixed_precision] + (["--multi_gpu"] if num_gpus > 1 else [])


def train_command(extra: list[str]) -> int:
    """
    Runs the package's training program (`diffusers_simple_ddpm.training`) through `accelerate launch`.

    `--help` and misspelt flags are answered before anything is launched; a failed run ends with the program's own
    error, not with accelerate's traceback of the launch (`--quiet`).
    """
    training_args = build_training_parser(prog="simple-ddpm train").parse_args(extra)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--quiet"]
    launch += accelerate_launch_options(training_args.mixed_precision)
    return subprocess.call([*launch, "-m", "diffusers_simple_ddpm.training", *extra])


def add_sampling_arguments(parser: argparse.ArgumentParser, num_images: int) -> None:
    parser.add_argument("--num_images", type=positive_int, default=num_images, help="How many images to generate.")
    parser.add_argument(
        "--scheduler",
        default="ddpm",
        help="ddpm (the pipeline's own, all its training steps: 1000 by default), ddim (50), dpm (DPM-Solver++, 20), "
        "euler (50), SimpleDDPMScheduler, or the class name of a diffusers scheduler of discrete-time diffusion (50).",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="Denoising steps (default: the scheduler's, above)."
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="Image i uses a generator seeded with seed + i."
    )
    parser.add_argument("--batch_size", type=positive_int, default=64, help="Images generated per forward pass.")
    parser.add_argument(
        "--device", type=device_name, default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, ..."
    )
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES), help="Model weights dtype.")
    parser.add_argument(
        "--class",
        dest="class_labels",
        nargs="+",
        default=None,
        help="For a class-conditional model: one class for all images, or one per image; a class name, or an index "
        "where no class has that name. Default: the classes in turn, as the model card's evaluation draws them.",
    )
    parser.add_argument(
        "--prompt",
        dest="prompts",
        nargs="+",
        default=None,
        help="For a text pipeline: one prompt for all images, or one per image. Default: its sample prompts in turn.",
    )
    parser.add_argument(
        "--guidance_scale",
        type=finite_float_at_least(1.0, "1 means no guidance"),
        default=1.0,
        help="Guidance (1 = none): classifier-free for a class-conditional model with --class or a text pipeline, "
        "autoguidance for an unconditional pipeline with a guidance_unet (what the training program saves).",
    )
    parser.add_argument(
        "--eta",
        type=finite_float_at_least(0.0, "0 is deterministic DDIM"),
        default=0.0,
        help="DDIM η (only schedulers that take it use it).",
    )
    parser.add_argument(
        "--clip_sample",
        action="store_true",
        help="Clip the predicted clean image to [-1, 1] at every step (ddpm, dpm and other schedulers that can; not "
        "ddim or euler). With guidance it gives far more digits of the requested class (docs/benchmarks.md).",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simple-ddpm", description="Sample, evaluate, convert and train SimpleDDPM pipelines."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample", help="Generate images with a pipeline folder or Hub repo id.")
    sample.add_argument("model", help="A pipeline folder or a Hub repo id (user/repo).")
    add_sampling_arguments(sample, num_images=16)
    sample.add_argument("--grid", default=None, help="Write the images as one grid PNG here (default samples.png).")
    sample.add_argument("--output_dir", default=None, help="Write every image as a PNG into this folder.")

    evaluate = commands.add_parser("evaluate", help="Measure sample quality (FID, fast Fréchet distance, KID, ...).")
    evaluate.add_argument("model", nargs="?", default=None, help="A pipeline folder or Hub repo id to sample from.")
    evaluate.add_argument("--images", default=None, help="Evaluate a folder of images instead of a model.")
    evaluate.add_argument(
        "--reference", default="mnist-test", help="mnist-test (built-in MNIST test split) or a folder of images."
    )
    evaluate.add_argument(
        "--metrics", nargs="+", default=["fast"], choices=("fast", "fid"), help="fast (MNIST classifier) and/or fid."
    )
    evaluate.add_argument(
        "--num_reference",
        type=int_at_least(2),
        default=None,
        help="Reference images to use, a random subset of a folder drawn with --seed (default: all; FID on a CPU "
        "computes about 6-10 images/s, then caches MNIST's).",
    )
    evaluate.add_argument("--json", default=None, help="Also write the results as JSON here.")
    add_sampling_arguments(evaluate, num_images=1000)
    evaluate.set_defaults(sampling_defaults={name: evaluate.get_default(name) for name in SAMPLING_ONLY_ARGUMENTS})

    convert = commands.add_parser("convert", help="Turn a notebook SimpleUNet state_dict into a pipeline folder.")
    convert.add_argument("--checkpoint", required=True, help="torch.save(unet.state_dict(), path) of the notebook.")
    convert.add_argument("--output_dir", required=True, help="Where to write the pipeline.")
    convert.add_argument("--sample_size", type=int, default=32, help="The training resolution (multiple of 4).")

    commands.add_parser(
        "train",
        help="Train through accelerate launch (the program of scripts/train.py); every further argument goes to it.",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":
        return train_command(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    {"sample": sample_command, "evaluate": evaluate_command, "convert": convert_command}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
