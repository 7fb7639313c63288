"""Shared parts of the benchmark scripts: environment header, report writing, PNG charts, models, loops and samplers.

Every benchmark writes `<output_dir>/benchmarks/<name>.md` (with `-cuda` appended on a GPU) and its PNG charts beside
it, then regenerates `<output_dir>/benchmarks.md`, which concatenates all the section files present, so that each
script refreshes its own section without touching the others.
"""

import argparse
import ctypes
import datetime
import gc
import importlib.metadata
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel
from diffusers_simple_ddpm.cli import positive_int
from diffusers_simple_ddpm.data import load_mnist_arrays
from diffusers_simple_ddpm.sampling import with_scheduler
from diffusers_simple_ddpm.training_step import (
    DEFAULT_SETTINGS,
    DiffusionTrainingStep,
    OptimizationSettings,
    make_ema,
    make_optimizer,
)
from diffusers_simple_ddpm.training_args import DEFAULT_BETA_SCHEDULE, DEFAULT_PREDICTION_TYPE
from diffusers_simple_ddpm.training_utils import MODEL_PRESETS, cpu_model_name

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPOSITORY_ROOT / "scripts" / "train.py"
INDEX_NAME = "benchmarks.md"
SECTIONS_FOLDER = "benchmarks"
# Order of the sections in the index; a section not listed here comes after these, by name.
SECTION_ORDER = ("training", "scheduler", "sampling", "ablation", "quality", "recipe", "autoguidance", "conditional")
LIBRARIES = ("torch", "diffusers", "accelerate", "numpy", "diffusers-simple-ddpm")
# The samplers of the reports, by label: the scheduler name of `diffusers_simple_ddpm.sampling.with_scheduler` (the
# command line's `--scheduler`) and whether to clip the predicted clean image to [-1, 1] at every step (`--clip_sample`).
SAMPLERS = {
    "DDPM": ("ddpm", False),
    "DDPM clip": ("ddpm", True),
    "DDIM": ("ddim", False),
    "DPM-Solver++": ("dpm", False),
    "DPM-Solver++ clip": ("dpm", True),
}
MEBIBYTE = 2**20


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `--output_dir`, `--quick`, `--device` and `--seed`, which every benchmark takes."""
    parser.add_argument(
        "--output_dir",
        type=str,
        default=str(REPOSITORY_ROOT / "docs"),
        help="Folder of the report: the section goes to OUTPUT_DIR/benchmarks/, the index to OUTPUT_DIR/benchmarks.md.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="A smoke test at tiny sizes (CI): checks that the report is written."
    )
    parser.add_argument(
        "--device",
        type=str,
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Where to run: cpu or cuda. Default: cuda when available.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of weights, data order and noise.")
    parser.add_argument(
        "--num_threads",
        type=positive_int,
        default=1,
        help="CPU threads of torch (and OMP_NUM_THREADS of training subprocesses). On a machine shared with other "
        "jobs fewer threads can be faster: OpenMP threads wait on each other when a core is taken.",
    )


def add_report_name_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """Adds `--report_name` (default `name`): the stem of the report's section and charts, so that a second run with
    other settings keeps the first one's report."""
    parser.add_argument(
        "--report_name",
        type=str,
        default=name,
        help="Stem of the report's section and charts in docs/benchmarks/ (a second run keeps the first's report).",
    )


def report_title(title: str, name: str, report_name: str) -> str:
    """The heading of a benchmark's section: `title`, with the `--report_name` appended when it is not the default
    `name` (a second run with other settings)."""
    return title if report_name == name else f"{title} ({report_name})"


def setup(args: argparse.Namespace) -> tuple[torch.device, list[str]]:
    """
    Applies `--num_threads` (here and for subprocesses) and `--seed`.

    Returns:
        `tuple[torch.device, list[str]]`: the device of `--device`, and the report's environment header, read now,
        at the start of the run (see `environment_lines`).
    """
    torch.set_num_threads(args.num_threads)
    os.environ["OMP_NUM_THREADS"] = str(args.num_threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    return device, environment_lines(device)


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def environment_lines(device: torch.device) -> list[str]:
    """The hardware, library versions and machine load that every report states before its figures."""
    if device.type == "cuda":
        hardware = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), host CPU: {cpu_model_name()}"
    else:
        hardware = f"{cpu_model_name()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    versions = []
    for library in LIBRARIES:
        try:
            versions.append(f"{library} {importlib.metadata.version(library)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{library} (not installed)")
    return [
        f"- Hardware: {hardware}; {psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
        f"- Software: Python {platform.python_version()}, {', '.join(versions)}",
        f"- Load average (1, 5, 15 min) at start: {load_average()}",
        f"- Run: {datetime.datetime.now().isoformat(timespec='seconds')}, command `{command_line()}`",
    ]


def command_line() -> str:
    """The command that ran the benchmark, relative to the repository root where possible."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPOSITORY_ROOT)
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def markdown_table(headers: list[str], rows: list[list]) -> list[str]:
    """A Markdown table; floats are written with 3 significant figures, `None` as an en dash."""

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            if value == 0 or not math.isfinite(value):
                return str(value)
            digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
            return f"{value:,.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


def section_name(name: str, device: torch.device) -> str:
    """The file name stem of a section: the benchmark's name, with `-cuda` for a GPU run."""
    return name if device.type == "cpu" else f"{name}-{device.type}"


def chart_path(output_dir: str | os.PathLike, name: str, device: torch.device, suffix: str = "") -> Path:
    """The path of a chart of a benchmark's section, in the sections folder (created if missing)."""
    sections = Path(output_dir) / SECTIONS_FOLDER
    sections.mkdir(parents=True, exist_ok=True)
    return sections / f"{section_name(name, device)}{suffix}.png"


def write_report(
    output_dir: str | os.PathLike,
    name: str,
    title: str,
    environment: list[str],
    body: list[str],
    device: torch.device,
) -> Path:
    """
    Writes a benchmark's section and regenerates the index.

    Args:
        output_dir (`str` or `os.PathLike`): The report folder (`docs/` by default).
        name (`str`): The benchmark's name, the stem of its section file.
        title (`str`): The section's heading.
        environment (`list[str]`): The environment header read at the start (from `setup`); the load average at the
            end is added to it.
        body (`list[str]`): The section's Markdown lines, after the environment header. Images are linked by file
            name, relative to the section file.
        device (`torch.device`): The device the benchmark ran on.

    Returns:
        `Path`: the section file.
    """
    sections = Path(output_dir) / SECTIONS_FOLDER
    sections.mkdir(parents=True, exist_ok=True)
    heading = title if device.type == "cpu" else f"{title} ({device.type.upper()})"
    environment = [*environment, f"- Load average (1, 5, 15 min) at the end: {load_average()}"]
    lines = [f"## {heading}", "", *environment, "", *body, ""]
    path = sections / f"{section_name(name, device)}.md"
    path.write_text("\n".join(lines))
    write_index(output_dir)
    return path


def write_index(output_dir: str | os.PathLike) -> Path:
    """Concatenates every section of `output_dir/benchmarks/` into `output_dir/benchmarks.md`."""
    sections = Path(output_dir) / SECTIONS_FOLDER

    def order(path: Path) -> tuple:
        base, _, device = path.stem.partition("-")
        rank = SECTION_ORDER.index(base) if base in SECTION_ORDER else len(SECTION_ORDER)
        return rank, base, device

    parts = [
        "# Benchmarks",
        "",
        "Generated by the scripts in `scripts/benchmarks/` (one section each, kept in `docs/benchmarks/`); rerun a "
        "script to refresh its section. Timings on a shared machine are noisy: each section states the hardware, "
        "library versions and load average it ran with.",
        "",
        "GPU figures come from a device machine: `scripts/benchmarks/run_device_quality.sh` (the MNIST main job and "
        "CIFAR-10 quality, about 9 minutes on one H200) says in its header how to prepare it "
        "(`bash scripts/benchmarks/run_device_quality.sh prepare`) and gives the two `run` calls: "
        '`run(command="ls -l .devq1", carry=[".devq1"], timeout_s=60)`, then '
        '`run(command="bash scripts/benchmarks/run_device_quality.sh", carry=[".devq2", ".whl"], timeout_s=600)`.',
        "",
    ]
    for path in sorted(sections.glob("*.md"), key=order):
        text = path.read_text()
        # Image links are relative to the section file; the index sits one folder up.
        text = re.sub(r"!\[([^\]]*)\]\((?![a-z]+://)", rf"![\1]({SECTIONS_FOLDER}/", text)
        parts += [text.rstrip(), ""]
    index = Path(output_dir) / INDEX_NAME
    index.write_text("\n".join(parts))
    return index


def label_font() -> ImageFont.ImageFont:
    """The font of the charts' text: DejaVu Sans where the system has it (it draws Greek letters such as the β of
    "cosine β schedule", which PIL's default font draws as a box), else PIL's default font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 10)
    except OSError:
        return ImageFont.load_default()


def bar_chart(
    path: str | os.PathLike,
    title: str,
    labels: list[str],
    values: list[float],
    unit: str,
    references: list[float | None] | None = None,
) -> str:
    """
    Draws a horizontal bar chart as a PNG with PIL.

    Args:
        path (`str` or `os.PathLike`): The PNG file to write.
        title (`str`): The chart's title.
        labels (`list[str]`): One label per bar.
        values (`list[float]`): One value per bar (non-negative).
        unit (`str`): The unit written after each value.
        references (`list[float | None]`, *optional*): A mark per bar (a floor, say), drawn as a black tick.

    Returns:
        `str`: the Markdown line that shows the chart from a file beside it.
    """
    row_height, label_width, bar_width, margin = 22, 330, 420, 10
    width = label_width + bar_width + 150
    height = 40 + row_height * len(labels) + margin
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.font = label_font()
    draw.text((margin, 10), title, fill="black")
    marks = [mark for mark in (references or []) if mark is not None]
    largest = max([*values, *marks, 1e-12])
    for row, (label, value) in enumerate(zip(labels, values)):
        top = 36 + row * row_height
        draw.text((margin, top + 4), label[:52], fill="black")
        length = int(bar_width * max(value, 0.0) / largest)
        draw.rectangle([label_width, top + 2, label_width + length, top + row_height - 4], fill=(70, 110, 200))
        draw.text((label_width + length + 6, top + 4), f"{value:.3g} {unit}", fill="black")
        if references and references[row] is not None:
            x = label_width + int(bar_width * references[row] / largest)
            draw.line([x, top, x, top + row_height - 2], fill="black", width=2)
    image.save(path)
    return f"![{title}]({Path(path).name})"


def grids_chart(path: Path, rows: list[dict]) -> str:
    """
    One image of the rows' sample grids (`row["grid"]`), four to a line, each under its `name` and its fast Fréchet
    distance against the `floor`; saved to `path`. Returns its Markdown line.
    """
    margin, caption = 8, 30
    width = max(row["grid"].width for row in rows)
    height = max(row["grid"].height for row in rows)
    columns = min(4, len(rows))
    lines = (len(rows) + columns - 1) // columns
    chart = Image.new("L", (columns * (width + margin) + margin, lines * (height + caption + margin) + margin), 255)
    draw = ImageDraw.Draw(chart)
    draw.font = label_font()
    for index, row in enumerate(rows):
        left = margin + (index % columns) * (width + margin)
        top = margin + (index // columns) * (height + caption + margin)
        draw.text((left, top), row["name"], fill=0)
        draw.text((left, top + 14), f"FD {row['fd']:.1f} ({row['fd'] / row['floor']:.1f}x floor)", fill=0)
        chart.paste(row["grid"], (left, top + caption))
    chart.save(path)
    return f"![Sample grids]({path.name})"


def release_free_memory() -> None:
    """
    Returns the memory the C allocator holds free to the system (glibc's `malloc_trim`), so that the RSS counts only
    live memory and a measurement does not start above what an earlier one left behind. A no-op without glibc.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """
    Measures the peak memory of the code inside a `with` block.

    On CUDA it reads `torch.cuda.max_memory_allocated`; on the CPU a thread samples the resident set size (RSS) of the
    process (and of its children, for a training subprocess) every `interval_s`, and the figure is the peak minus the
    RSS at entry, after the allocator's free memory was returned to the system (or the peak itself with
    `absolute=True`). `peak_mib` holds the result after the block.

    Args:
        device (`torch.device`): Where the measured code runs.
        process (`psutil.Process`, *optional*): The process to watch on the CPU; defaults to this one.
        absolute (`bool`, defaults to `False`): On the CPU, report the peak RSS itself instead of its growth.
        interval_s (`float`, defaults to 0.005): Sampling period on the CPU.
    """

    def __init__(
        self,
        device: torch.device,
        process: psutil.Process | None = None,
        absolute: bool = False,
        interval_s: float = 0.005,
    ):
        self.device = device
        self.process = process or psutil.Process()
        self.absolute = absolute
        self.interval_s = interval_s
        self.peak_mib: float | None = None

    def resident_bytes(self) -> int:
        """The RSS of the process and its children (processes that have just exited count as 0)."""
        try:
            processes = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.resident_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            release_free_memory()
            self._peak = self.resident_bytes()
            self._start = 0 if self.absolute else self._peak
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - self._start) / MEBIBYTE
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (self._peak - self._start) / MEBIBYTE


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work, so that wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_simple_unet(preset: str | dict, resolution: int, channels: int, **overrides) -> SimpleUNet2DModel:
    """A `SimpleUNet2DModel` from a `MODEL_PRESETS` name or a config dict, with `overrides` on top."""
    config = dict(MODEL_PRESETS[preset]) if isinstance(preset, str) else dict(preset)
    config.update(overrides)
    return SimpleUNet2DModel(sample_size=resolution, in_channels=channels, out_channels=channels, **config)


def make_diffusers_unet(
    block_out_channels: tuple[int, ...],
    resolution: int,
    channels: int,
    layers_per_block: int = 1,
    attention_levels: tuple[int, ...] = (),
    attention_head_dim: int = 8,
    norm_num_groups: int = 8,
) -> UNet2DModel:
    """
    Diffusers' `UNet2DModel` in the DDPM paper's layout: one resolution level per entry of `block_out_channels`,
    `DownBlock2D`/`UpBlock2D` blocks, `AttnDownBlock2D`/`AttnUpBlock2D` at the levels in `attention_levels` (0 is the
    finest), and its attention in the middle block only with attention at some level (without any, the ResNet-only
    network of the training benchmark).

    With the defaults, `(32, 64, 128)` has 2.5M parameters at one channel (the notebook network: 2.4M); `(16, 32, 64)`
    has 0.64M.
    """
    num_levels = len(block_out_channels)
    down_block_types = tuple("AttnDownBlock2D" if level in attention_levels else "DownBlock2D" for level in range(num_levels))
    up_block_types = tuple(
        "AttnUpBlock2D" if level in attention_levels else "UpBlock2D" for level in reversed(range(num_levels))
    )
    return UNet2DModel(
        sample_size=resolution,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        down_block_types=down_block_types,
        up_block_types=up_block_types,
        add_attention=bool(attention_levels),
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
    )


def diffusers_unet_like(preset: str, resolution: int, channels: int) -> UNet2DModel:
    """
    Diffusers' `UNet2DModel` (see `make_diffusers_unet`) with the levels, residual blocks per level, attention levels,
    head size and GroupNorm groups of a residual `MODEL_PRESETS` preset, and its widths scaled by one factor (rounded
    to multiples of the GroupNorm groups) so that its parameter count is close to the preset's: diffusers' blocks hold
    more parameters at equal widths (an up block has one more ResNet layer than a down block).
    """
    config = MODEL_PRESETS[preset]
    if config.get("layers_per_block") is None:
        raise ValueError(f"`preset` must be a residual preset (one with `layers_per_block`), got {preset!r}.")
    groups = config["norm_num_groups"]

    def build(scale: float) -> UNet2DModel:
        widths = tuple(max(groups, round(width * scale / groups) * groups) for width in config["block_out_channels"])
        return make_diffusers_unet(
            widths,
            resolution,
            channels,
            layers_per_block=config["layers_per_block"],
            attention_levels=tuple(config.get("attention_levels", ())),
            attention_head_dim=config.get("attention_head_dim", 32),
            norm_num_groups=groups,
        )

    # Parameters grow with the square of the widths.
    ratio = count_parameters(make_simple_unet(preset, resolution, channels)) / count_parameters(build(1.0))
    return build(math.sqrt(ratio))


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def mnist_tensor(split: str = "train", num_images: int | None = None) -> torch.Tensor:
    """The built-in MNIST digits as a float tensor [N, 1, 28, 28] in [-1, 1], as the training transform gives them."""
    images = load_mnist_arrays(split)[0][:num_images]
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)[:, None]


def mnist_labels(split: str = "train", num_images: int | None = None) -> torch.Tensor:
    return torch.from_numpy(load_mnist_arrays(split)[1][:num_images].copy())


def bare_loop_scheduler() -> SimpleDDPMScheduler:
    """The noise schedule `BareTrainer` trains with: the training program's default one (its default β schedule and
    prediction type)."""
    return SimpleDDPMScheduler(beta_schedule=DEFAULT_BETA_SCHEDULE, prediction_type=DEFAULT_PREDICTION_TYPE)


class BareTrainer:
    """
    The training update of `scripts/train.py` (`diffusers_simple_ddpm.training_step.DiffusionTrainingStep`, with the
    same optimizer, EMA and defaults) without accelerate, the DataLoader, logging or checkpoints.

    It samples batches from a tensor held in memory, on the device, and runs the shared update with warm-up then a
    constant learning rate.

    Args:
        model (`nn.Module`): A `SimpleUNet2DModel` or a diffusers `UNet2DModel`.
        images (`torch.Tensor`): Training images [N, C, H, W] in [-1, 1].
        batch_size (`int`): Images per update.
        device (`torch.device`): Where to train.
        mixed_precision (`str`): `"no"` or `"bf16"` (autocast).
        channels_last (`bool`): Whether to use the channels_last memory format.
        use_ema (`bool`): Whether to keep the EMA of the weights, as the script does by default.
        labels (`torch.Tensor`, *optional*): Class labels for a class-conditional `SimpleUNet2DModel`.
        seed (`int`): Seed of the batch draws and noise.
        compile (`bool`): Whether to compile the model with `torch.compile` (the first update compiles it).
        settings (`OptimizationSettings`): The optimisation settings; the training program's defaults when not given.
    """

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        batch_size: int,
        device: torch.device,
        mixed_precision: str = "bf16",
        channels_last: bool = True,
        use_ema: bool = True,
        labels: torch.Tensor | None = None,
        seed: int = 0,
        compile: bool = False,
        settings: OptimizationSettings = DEFAULT_SETTINGS,
    ):
        if mixed_precision not in ("no", "bf16"):
            raise ValueError(f"`mixed_precision` must be 'no' or 'bf16', got {mixed_precision!r}.")
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=memory_format).train()
        if compile:
            self.model.compile()
        self.images = images.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.batch_size = batch_size
        self.device = device
        optimizer = make_optimizer(self.model.parameters(), settings, device)
        self.training_step = DiffusionTrainingStep(
            bare_loop_scheduler(),
            optimizer,
            get_scheduler("constant_with_warmup", optimizer=optimizer, num_warmup_steps=settings.lr_warmup_steps),
            ema_model=make_ema(self.model, settings) if use_ema else None,
            max_grad_norm=settings.max_grad_norm,
            snr_gamma=settings.snr_gamma,
            num_class_embeds=self.model.config.num_class_embeds if labels is not None else None,
            class_dropout_prob=settings.class_dropout_prob,
            memory_format=memory_format,
            autocast_dtype=torch.bfloat16 if mixed_precision == "bf16" else None,
        )
        self.ema_model = self.training_step.ema_model
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.num_steps = 0

    def step(self) -> torch.Tensor:
        """One update on a random batch; returns the loss (without waiting for the device)."""
        indices = torch.randint(0, len(self.images), (self.batch_size,), device=self.device, generator=self.generator)
        labels = self.labels[indices] if self.labels is not None else None
        loss = self.training_step(self.model, self.images[indices], labels, generator=self.generator)
        self.num_steps += 1
        return loss

    def train_for(self, budget_s: float) -> dict[str, float]:
        """
        Trains for the number of updates that fit in `budget_s` seconds at the speed of a few timed updates (counted in
        the total), so that the update count does not shrink when other jobs share the machine later.

        Returns:
            `dict`: `steps` (all updates), `seconds` (wall-clock time of the whole call), `images_per_s` and the last
            `loss`.
        """
        start = time.perf_counter()
        num_steps = steps_for_budget(self, budget_s)
        loss = None
        while self.num_steps < num_steps:
            loss = self.step()
        synchronize(self.device)
        seconds = time.perf_counter() - start
        return {
            "steps": self.num_steps,
            "seconds": seconds,
            "images_per_s": self.num_steps * self.batch_size / seconds,
            "loss": float(loss) if loss is not None else float("nan"),
        }

    def ema_copy(self) -> nn.Module:
        """A copy of the model holding the EMA weights (or the trained weights without EMA), in eval mode."""
        model = type(self.model).from_config(self.model.config).to(self.device)
        if self.ema_model is not None:
            self.ema_model.copy_to(model.parameters())
        else:
            model.load_state_dict(self.model.state_dict())
        return model.eval()


def time_steps(step, num_steps: int, num_warmup: int, device: torch.device) -> tuple[float, float]:
    """
    Runs `step()` `num_warmup` times, then `num_steps` times.

    Returns:
        `tuple[float, float]`: the seconds of the timed steps, and the peak memory growth (MiB) over all of them
        (gradients, optimizer state and activations; the weights exist before).
    """
    with PeakMemory(device) as memory:
        for _ in range(num_warmup):
            step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(num_steps):
            step()
        synchronize(device)
        seconds = time.perf_counter() - start
    return seconds, memory.peak_mib


def run_train_script(output_dir: str | os.PathLike, script_args: list[str]) -> dict[str, float]:
    """
    Runs `accelerate launch scripts/train.py` (one process) into `output_dir`, without intermediate sample grids,
    pipeline saves or the final evaluation, and measures it.

    Args:
        output_dir (`str` or `os.PathLike`): The run's `--output_dir` (overwritten).
        script_args (`list[str]`): Further arguments of the script.

    Returns:
        `dict`: `seconds` (wall-clock time of the whole command) and `peak_rss_mib` (peak resident set size of its
        process tree, sampled).
    """
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--dynamo_backend",
        "no",
        str(TRAIN_SCRIPT),
        "--output_dir",
        str(output_dir),
        "--overwrite_output_dir",
        "--save_images_epochs",
        str(10**6),
        "--save_model_epochs",
        str(10**6),
        "--eval_num_images",
        "0",
        "--ddpm_num_inference_steps",
        "2",
        "--eval_batch_size",
        "1",
        *script_args,
    ]
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # A process tree's RSS costs a few ms to read: sampling it every 5 ms would take a core from the training run.
    with PeakMemory(torch.device("cpu"), process=process, absolute=True, interval_s=0.2) as memory:
        output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"scripts/train.py failed:\n{output[-3000:]}")
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": memory.peak_mib}


def train_script_for_budget(
    output_dir: str | os.PathLike,
    model_config: str,
    images: torch.Tensor,
    batch_size: int,
    budget_s: float,
    device: torch.device,
    seed: int,
    labels: torch.Tensor | None = None,
    keep_checkpoint: bool = False,
) -> dict[str, float]:
    """
    Runs `scripts/train.py` (see `run_train_script`) on the built-in MNIST for as many updates as fit in `budget_s` at
    the speed of the bare loop with the same preset, timed here first.

    Args:
        output_dir (`str` or `os.PathLike`): The run's `--output_dir`.
        model_config (`str`): The `--model_config` preset.
        images (`torch.Tensor`): The training images, for the timing of the bare loop.
        batch_size (`int`): `--train_batch_size`.
        budget_s (`float`): The training budget in seconds.
        device (`torch.device`): Where the bare loop is timed.
        seed (`int`): Seed of the bare loop's weights and of the script (`--seed`).
        labels (`torch.Tensor`, *optional*): The training labels: a `--class_conditional` run.
        keep_checkpoint (`bool`): Whether the script saves a checkpoint at its last update.

    Returns:
        `dict`: `steps` (the updates the script ran) and what `run_train_script` returns.
    """
    torch.manual_seed(seed)
    num_class_embeds = None if labels is None else int(labels.max()) + 1
    model = make_simple_unet(model_config, 28, 1, num_class_embeds=num_class_embeds)
    num_steps = steps_for_budget(BareTrainer(model, images, batch_size, device, labels=labels), budget_s)
    script_args = [
        "--model_config",
        model_config,
        "--train_batch_size",
        str(batch_size),
        "--max_train_steps",
        str(num_steps),
        "--checkpointing_steps",
        str(num_steps if keep_checkpoint else 10**9),
        "--seed",
        str(seed),
    ]
    if labels is not None:
        script_args.append("--class_conditional")
    return {"steps": num_steps, **run_train_script(output_dir, script_args)}


def steps_for_budget(trainer: "BareTrainer", budget_s: float, num_steps: int = 10) -> int:
    """The number of updates that fit in `budget_s`, from `num_steps` timed updates of `trainer` (after one warm-up)."""
    trainer.step()
    seconds, _ = time_steps(trainer.step, num_steps, 0, trainer.device)
    return max(trainer.num_steps, int(budget_s * num_steps / seconds))


def sampling_pipeline(
    unet: nn.Module, sampler: str, noise_scheduler: SimpleDDPMScheduler | None = None
) -> SimpleDDPMPipeline:
    """
    A `SimpleDDPMPipeline` of `unet` with a sampler of `SAMPLERS`, built as `simple-ddpm sample --scheduler` builds it,
    for `diffusers_simple_ddpm.sampling.generate_images` (without a progress bar).

    Args:
        unet (`nn.Module`): The model, on its device.
        sampler (`str`): A label of `SAMPLERS`.
        noise_scheduler (`SimpleDDPMScheduler`, *optional*): The schedule the model was trained with (a saved
            pipeline's scheduler); `BareTrainer`'s when not given.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"The sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}.")
    pipeline = SimpleDDPMPipeline(unet=unet, scheduler=noise_scheduler or bare_loop_scheduler())
    pipeline.set_progress_bar_config(disable=True)
    scheduler, clip_sample = SAMPLERS[sampler]
    return with_scheduler(pipeline, scheduler, clip_sample=clip_sample)[0]
