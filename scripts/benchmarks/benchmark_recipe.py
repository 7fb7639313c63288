"""The training recipe, measured: the training program's own runs on MNIST, one per variant of its flags.

    python scripts/benchmarks/benchmark_recipe.py [--train_images 60000] [--variants defaults "min-SNR 5" ...]

Each variant is the README's main job (`accelerate launch scripts/train.py` on the built-in MNIST, `--model_config
auto`) with a few flags changed: learning rate, batch size, loss weighting (Min-SNR-γ), prediction type, EMA, the β
schedule (the pipeline samples with the schedule it was trained with), or with options of the CPU preset's network
changed (`MODEL_VARIANTS`, passed as a `--model_config` file). Every variant trains on the same number of
images (`--train_images`, so batch sizes compare at equal data and about equal CPU time, which the report gives), and
the run's own evaluation (`--eval_num_images`, the training program's default sampler) scores its EMA pipeline on
`--num_samples` digits: the fast Fréchet distance in the MNIST classifier's features beside its floor (as many real
training digits), read from its model card. The report shows each variant's 8x8 sample grid.
"""

import argparse
import json
import tempfile
from pathlib import Path

from benchmark_utils import (
    add_common_arguments,
    add_report_name_argument,
    bar_chart,
    chart_path,
    grids_chart,
    markdown_table,
    report_title,
    run_train_script,
    setup,
    write_report,
)
from huggingface_hub import ModelCard
from PIL import Image

from diffusers_simple_ddpm.training_args import (
    AUTO_PRESETS,
    DEFAULT_AUTOGUIDANCE_FRACTION,
    DEFAULT_AUTOGUIDANCE_SCALE,
    DEFAULT_EVAL_NUM_INFERENCE_STEPS,
    DEFAULT_EVAL_SCHEDULER,
    DEFAULT_PREDICTION_TYPE,
    DEFAULT_SETTINGS,
    DEFAULT_TRAIN_BATCH_SIZE,
    MODEL_PRESETS,
)
from diffusers_simple_ddpm.evaluation import SampleEvaluator
from diffusers_simple_ddpm.training_utils import FD_METRIC, RECOGNISED_METRIC

NAME = "recipe"
# Variant name -> the training program's flags that it changes from the defaults (the report states the defaults).
VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "min-SNR 5": ["--snr_gamma", "5"],
    "lr 2e-3": ["--learning_rate", "2e-3"],
    "lr 5e-4": ["--learning_rate", "5e-4"],
    "batch 32": ["--train_batch_size", "32"],
    "batch 128, lr 2e-3": ["--train_batch_size", "128", "--learning_rate", "2e-3"],
    "ε-prediction": ["--prediction_type", "epsilon"],
    "v-prediction, min-SNR 5": ["--prediction_type", "v_prediction", "--snr_gamma", "5"],
    "no EMA": ["--no-use_ema"],
    "min-SNR 5, batch 32": ["--snr_gamma", "5", "--train_batch_size", "32"],
    "min-SNR 5, batch 32, lr 2e-3": ["--snr_gamma", "5", "--train_batch_size", "32", "--learning_rate", "2e-3"],
    "min-SNR 5, batch 32, no EMA": ["--snr_gamma", "5", "--train_batch_size", "32", "--no-use_ema"],
    "min-SNR 5, batch 16": ["--snr_gamma", "5", "--train_batch_size", "16"],
    "linear β schedule": ["--ddpm_beta_schedule", "linear"],
    "scaled-linear β schedule": ["--ddpm_beta_schedule", "scaled_linear"],
}
# Variant name -> options of `SimpleUNet2DModel` that it changes in the CPU preset (`--model_config auto` on a CPU); the
# run gets the changed preset as a `--model_config` file.
MODEL_VARIANTS: dict[str, dict] = {
    "up-sampling: nearest + conv": {"upsample_type": "conv"},
    "up-sampling: transposed conv": {"upsample_type": "conv_transpose"},
}
QUICK_VARIANTS = ("defaults", "min-SNR 5")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--variants",
        type=str,
        nargs="+",
        default=list(VARIANTS),
        help=f"The variants to run, in order: any of {[*VARIANTS, *MODEL_VARIANTS]}.",
    )
    parser.add_argument(
        "--flags",
        type=str,
        nargs=argparse.REMAINDER,
        default=[],
        help="Flags of scripts/train.py that every variant gets (before its own), such as `--snr_gamma 5`; last on "
        "the command line.",
    )
    add_report_name_argument(parser, NAME)
    parser.add_argument("--train_images", type=int, default=60_000, help="Training images of each variant.")
    parser.add_argument("--num_samples", type=int, default=500, help="Digits each variant samples and scores.")
    args = parser.parse_args(argv)
    unknown = [name for name in args.variants if name not in VARIANTS and name not in MODEL_VARIANTS]
    if unknown:
        raise ValueError(f"--variants must be among {[*VARIANTS, *MODEL_VARIANTS]}, got {unknown}.")
    if args.train_images < 1 or args.num_samples < 2:
        raise ValueError("--train_images must be positive and --num_samples at least 2.")
    if args.quick:
        args.variants = [name for name in args.variants if name in QUICK_VARIANTS] or list(QUICK_VARIANTS)
        args.train_images, args.num_samples = 64, 16
        args.flags = ["--model_config", "notebook", *args.flags]
    return args


def batch_size_of(flags: list[str]) -> int:
    """The `--train_batch_size` among a run's flags (the last one counts, as for argparse), else the default."""
    positions = [index for index, flag in enumerate(flags) if flag == "--train_batch_size"]
    return int(flags[positions[-1] + 1]) if positions else DEFAULT_TRAIN_BATCH_SIZE


def variant_flags(args: argparse.Namespace, name: str, folder: Path) -> tuple[list[str], str]:
    """
    The training program's flags of one variant, and how the report shows them. A variant of the network writes the CPU
    preset with its options changed to `folder/model_config.json` and passes that file as `--model_config`.
    """
    if name in VARIANTS:
        flags = [*args.flags, *VARIANTS[name]]
        return flags, " ".join(flags) or "(defaults)"
    preset = AUTO_PRESETS["cpu"]
    config_path = folder / "model_config.json"
    folder.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps({**MODEL_PRESETS[preset], **MODEL_VARIANTS[name]}), encoding="utf-8")
    flags = [*args.flags, "--model_config", str(config_path)]
    changes = ", ".join(f"{key}={value!r}" for key, value in MODEL_VARIANTS[name].items())
    return flags, " ".join([*args.flags, f"--model_config ({preset} with {changes})"])


def run_variant(args: argparse.Namespace, name: str, output_dir: Path, floor: float) -> dict:
    """Trains one variant with the training program, which scores its EMA pipeline; returns the report's row."""
    flags, shown_flags = variant_flags(args, name, output_dir.parent / f"{output_dir.name}-config")
    batch_size = batch_size_of(flags)
    num_steps = max(1, args.train_images // batch_size)
    num_inference_steps = 2 if args.quick else DEFAULT_EVAL_NUM_INFERENCE_STEPS
    script_args = [
        "--max_train_steps",
        str(num_steps),
        "--checkpointing_steps",
        str(10**9),
        "--seed",
        str(args.seed),
        # The run's own evaluation and sample grid, with its default sampler; the model card keeps the figures.
        "--eval_num_images",
        str(args.num_samples),
        "--eval_batch_size",
        "64",
        "--ddpm_num_inference_steps",
        str(num_inference_steps),
        "--eval_num_inference_steps",
        str(num_inference_steps),
        *flags,
    ]
    run = run_train_script(output_dir, script_args)
    card_metrics = ModelCard.load(output_dir / "README.md").data.to_dict()["model-index"][0]["results"][0]["metrics"]
    metrics = {metric["name"]: metric["value"] for metric in card_metrics}
    return {
        "name": name,
        "flags": shown_flags,
        "steps": num_steps,
        "batch_size": batch_size,
        "minutes": run["seconds"] / 60,
        "fd": metrics[FD_METRIC],
        "floor": floor,
        "recognised": metrics[RECOGNISED_METRIC],
        "grid": Image.open(output_dir / "sample_grid.png").convert("L"),
    }


def main(args: argparse.Namespace) -> None:
    device, environment = setup(args)
    if device.type != "cpu":
        raise ValueError("benchmark_recipe.py runs the training program on this machine's CPU: use --device cpu.")
    # The floor of every run's evaluation (real digits, as many as it samples, at 28x28), as its model card shows it.
    floor = SampleEvaluator(metrics=("fast",)).floor(args.num_samples)["fast_fd"]
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for name in args.variants:
            rows.append(run_variant(args, name, Path(temporary) / f"variant-{len(rows)}", floor))
            row = rows[-1]
            print(
                f"{name}: FD {row['fd']:.2f} (floor {row['floor']:.2f}), {row['recognised']:.1%} recognised, after "
                f"{row['steps']} updates, {row['minutes']:.1f} min"
            )
    table = markdown_table(
        ["Variant", "Flags", "Updates", "Batch", "Run minutes", "Fast FD", "Floor", "FD / floor", "Recognised"],
        [
            [row["name"], f"`{row['flags']}`", row["steps"], row["batch_size"], row["minutes"], row["fd"], row["floor"],
             row["fd"] / row["floor"], f"{row['recognised']:.1%}"]
            for row in rows
        ],
    )  # fmt: skip
    labels = [row["name"] for row in rows]
    chart = bar_chart(
        chart_path(args.output_dir, args.report_name, device),
        f"Fast FD of {args.num_samples} digits of the run's evaluation (tick: floor)",
        labels,
        [row["fd"] for row in rows],
        "",
        references=[row["floor"] for row in rows],
    )
    grids = grids_chart(chart_path(args.output_dir, args.report_name, device, "-samples"), rows)
    body = [
        f"Each variant: `accelerate launch scripts/train.py` on the built-in MNIST with the defaults (`--model_config "
        f"auto`, the `default` preset on a CPU; batch {DEFAULT_TRAIN_BATCH_SIZE}, learning rate "
        f"{DEFAULT_SETTINGS.learning_rate:g}, Min-SNR γ {DEFAULT_SETTINGS.snr_gamma}, prediction type "
        f"{DEFAULT_PREDICTION_TYPE}, EMA up to "
        f"{DEFAULT_SETTINGS.ema_max_decay}) and the flags shown, {args.train_images:,} training images (updates = "
        f"images / batch), seed {args.seed}; the run's own evaluation (`--eval_num_images {args.num_samples}`, its "
        f"default sampler `{DEFAULT_EVAL_SCHEDULER}` with {DEFAULT_EVAL_NUM_INFERENCE_STEPS} steps and clipping, with "
        f"autoguidance at scale {DEFAULT_AUTOGUIDANCE_SCALE:g} by the EMA weights after "
        f"{DEFAULT_AUTOGUIDANCE_FRACTION:.0%} of the updates unless the flags turn it off, under bf16 autocast) scores its EMA pipeline by the fast Fréchet distance against the MNIST test split beside the "
        "floor (as many real training digits), and the share of digits the MNIST classifier recognises (confidence at "
        "least 0.9; real digits: about 98%), as in its model card. Run minutes: the whole training command "
        "(start-up, training, saving, the grid and the evaluation).",
        "",
        *table,
        "",
        chart,
        "",
        grids,
    ]
    title = report_title("Training recipe", NAME, args.report_name)
    path = write_report(args.output_dir, args.report_name, title, environment, body, device)
    print(f"Report: {path}")


if __name__ == "__main__":
    main(parse_args())
