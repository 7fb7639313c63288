"""Smoke tests of the benchmark scripts: each runs with `--quick` and must write its report section, its chart and
the index. They check the report's structure, never a timing."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_unet
from PIL import Image

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, training
from diffusers_simple_ddpm.cli import main
from diffusers_simple_ddpm.sampling import generate_images

BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks"
# benchmark name -> (charts it writes, table headers its section must hold)
EXPECTED = {
    "scheduler": (
        ["scheduler.png"],
        ["| batch | SimpleDDPMScheduler (µs/step) | DDPMScheduler (µs/step) | speed-up |"],
    ),
    "sampling": (
        ["sampling.png"],
        [
            "| model | parameters | steps | pipeline (s) | bare loop (s) | overhead |",
            "| model | sampler | batch of 2 (s) | s/image |",
        ],
    ),
    "training": (
        ["training-32x32x3.png"],
        [
            "| format | batch | model | parameters | loop | precision | images/s | peak memory (MiB) | GFLOP/image | MFU |",
            "| format | batch | model | scripts/train.py (img/s) | bare loop | bare loop (img/s) | bare loop faster by | "
            "script MFU | script peak RSS (MiB) |",
            "| format | model | unet | images | seconds | images/s |",
        ],
    ),
    "ablation": (
        ["ablation.png"],
        ["| configuration | parameters | updates | images/s | final loss | fast FD | KID | classifier IS | load |"],
    ),
    "quality": (
        ["quality.png", "quality-samples-ours.png", "quality-samples-notebook.png", "quality-samples-diffusers.png"],
        [
            "| network | parameters | updates | seconds | last loss |",
            "| network | sampler | samples | fast FD | floor | x floor |",
            "| SimpleUNet2DModel `default` | DPM-Solver++ clip 2 | 16 |",
            "| diffusers UNet2DModel | DDPM 4 | 16 |",
        ],
    ),
    "recipe": (
        ["recipe.png", "recipe-samples.png"],
        [
            "| Variant | Flags | Updates | Batch | Run minutes | Fast FD | Floor | FD / floor | Recognised |",
            "| defaults | `--model_config notebook` | 1 | 64 |",
            "| min-SNR 5 | `--model_config notebook --snr_gamma 5` | 1 | 64 |",
        ],
    ),
    "conditional": (
        ["conditional.png"],
        [
            "| sampler | guidance scale | all | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |",
            "| sampler | guidance scale | mean | 0 |",
        ],
    ),
}


@pytest.fixture
def benchmark_module(monkeypatch):
    """Imports a benchmark script as its own folder's module would see it, and restores torch's thread count."""
    monkeypatch.syspath_prepend(str(BENCHMARKS_DIR))
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    threads = torch.get_num_threads()
    yield lambda name: importlib.import_module(f"benchmark_{name}")
    torch.set_num_threads(threads)


# Benchmarks whose quick run trains (a subprocess of scripts/train.py or the bare loop): tens of seconds each.
TRAINING_BENCHMARKS = ("training", "ablation", "quality", "recipe", "conditional")


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in TRAINING_BENCHMARKS else name for name in EXPECTED]
)
def test_quick_run_writes_its_section_and_the_index(name, benchmark_module, tmp_path):
    module = benchmark_module(name)
    module.main(module.parse_args(["--quick", "--device", "cpu", "--output_dir", str(tmp_path)]))

    charts, headers = EXPECTED[name]
    section = (tmp_path / "benchmarks" / f"{name}.md").read_text()
    assert section.startswith("## ")
    assert "- Hardware: " in section and "torch " in section and "- Load average (1, 5, 15 min) at start: " in section
    assert "- Load average (1, 5, 15 min) at the end: " in section
    for header in headers:
        assert header in section
    for chart in charts:
        assert f"]({chart})" in section
        with Image.open(tmp_path / "benchmarks" / chart) as image:
            assert image.format == "PNG" and image.width > 100
    index = (tmp_path / "benchmarks.md").read_text()
    assert section.splitlines()[0] in index
    for chart in charts:
        assert f"](benchmarks/{chart})" in index


def test_index_keeps_the_other_sections(benchmark_module, tmp_path):
    utils = benchmark_module("utils")
    device = torch.device("cpu")
    environment = utils.environment_lines(device)
    utils.write_report(tmp_path, "sampling", "Sampling cost", environment, ["sampling table"], device)
    utils.write_report(tmp_path, "scheduler", "Scheduler cost", environment, ["first run"], device)
    utils.write_report(tmp_path, "scheduler", "Scheduler cost", environment, ["second run"], device)

    index = (tmp_path / "benchmarks.md").read_text()
    assert "second run" in index and "first run" not in index
    # Sections follow SECTION_ORDER whatever order the scripts ran in.
    assert index.index("## Scheduler cost") < index.index("## Sampling cost")
    assert "sampling table" in index


def test_unknown_ablation_config_is_rejected(benchmark_module):
    module = benchmark_module("ablation")
    with pytest.raises(ValueError, match="--configs"):
        module.parse_args(["--configs", "notebook", "+ attention"])


def test_every_recipe_variant_is_a_valid_training_command_line(benchmark_module, tmp_path):
    from diffusers_simple_ddpm import training

    module = benchmark_module("recipe")
    for name, flags in module.VARIANTS.items():
        args = training.parse_args(["--output_dir", str(tmp_path / "out"), *flags])
        assert args.train_batch_size == module.batch_size_of(flags), name
    linear = training.parse_args(["--output_dir", str(tmp_path / "out"), *module.VARIANTS["linear β schedule"]])
    assert linear.ddpm_beta_schedule == "linear"


def test_every_network_variant_of_the_recipe_is_the_cpu_preset_with_its_changes(benchmark_module, tmp_path):
    from diffusers_simple_ddpm import SimpleUNet2DModel
    from diffusers_simple_ddpm.training_utils import load_model_config

    module = benchmark_module("recipe")
    args = module.parse_args(["--variants", *module.MODEL_VARIANTS, "--flags", "--snr_gamma", "5"])
    assert args.variants == list(module.MODEL_VARIANTS)
    for index, (name, changes) in enumerate(module.MODEL_VARIANTS.items()):
        flags, shown = module.variant_flags(args, name, tmp_path / str(index))
        assert flags[:3] == ["--snr_gamma", "5", "--model_config"]
        config = load_model_config(flags[3])
        as_tuples = {key: tuple(value) if isinstance(value, list) else value for key, value in config.items()}
        assert as_tuples == {**load_model_config("auto", "cpu"), **changes}
        model = SimpleUNet2DModel(sample_size=28, in_channels=1, out_channels=1, **config)
        assert all(model.config[key] == value for key, value in changes.items())
        assert shown.startswith("--snr_gamma 5 --model_config (default with ")
    with pytest.raises(ValueError, match="--variants must be among.*up-sampling"):
        module.parse_args(["--variants", "wider"])


def test_bare_trainer_rejects_fp16(benchmark_module):
    utils = benchmark_module("utils")
    model = utils.make_simple_unet("notebook", 8, 1)
    with pytest.raises(ValueError, match="mixed_precision"):
        utils.BareTrainer(model, torch.zeros(4, 1, 8, 8), 2, torch.device("cpu"), mixed_precision="fp16")


@pytest.mark.slow
def test_conditional_measures_a_kept_pipeline_without_training(benchmark_module, tmp_path):
    module = benchmark_module("conditional")
    pipeline_dir = tmp_path / "pipeline"
    first_run = ["--quick", "--output_dir", str(tmp_path / "first"), "--pipeline_dir", str(pipeline_dir)]
    module.main(module.parse_args(first_run))
    assert (pipeline_dir / "model_index.json").is_file()

    second_run = ["--quick", "--output_dir", str(tmp_path / "second"), "--pretrained_pipeline", str(pipeline_dir)]
    module.main(module.parse_args(second_run))
    section = (tmp_path / "second" / "benchmarks" / "conditional.md").read_text()
    # The training figures come from the kept pipeline's model card, not from a new run.
    assert "from its model card: optimizer updates " in section and "training time " in section
    assert "for a 0.01-minute budget" not in section
    # The sample grid holds one row of 28x28 digits per class, as many columns as digits per class (2 in quick mode).
    assert "](conditional-samples.png)" in section
    with Image.open(tmp_path / "second" / "benchmarks" / "conditional-samples.png") as grid:
        assert grid.size == (2 * 28, 10 * 28)


@pytest.mark.parametrize("sampler", ["DDPM clip", "DDIM", "DPM-Solver++ clip"])
def test_benchmarks_sample_what_the_command_line_samples(sampler, benchmark_module, tmp_path):
    utils = benchmark_module("utils")
    unet = make_tiny_unet()
    scheduler, clip_sample = utils.SAMPLERS[sampler]
    noise_scheduler = SimpleDDPMScheduler(prediction_type="epsilon")
    SimpleDDPMPipeline(unet=unet, scheduler=noise_scheduler).save_pretrained(tmp_path / "model")
    command = ["sample", str(tmp_path / "model"), "--num_images", "3", "--steps", "4", "--scheduler", scheduler]
    main([*command, "--output_dir", str(tmp_path / "images"), *(["--clip_sample"] if clip_sample else [])])

    pipeline = utils.sampling_pipeline(unet, sampler, noise_scheduler)
    images = generate_images(pipeline, 3, 4, batch_size=2, output_type="pt")
    assert images.shape == (3, 1, 8, 8)
    written = np.stack([np.asarray(Image.open(tmp_path / "images" / f"{index:05d}.png")) for index in range(3)])
    np.testing.assert_allclose(images[:, 0].numpy() * 255, written, atol=1)
    in_one_batch = generate_images(pipeline, 3, 4, batch_size=3, output_type="np")
    np.testing.assert_allclose(in_one_batch, images.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sampler must be one of"):
        utils.sampling_pipeline(unet, "DPM")


def test_chart_labels_draw_greek_letters(benchmark_module):
    # Variant names such as "cosine β schedule" label the charts; PIL's default font drew their β as a missing-glyph box.
    from PIL import ImageDraw

    font = benchmark_module("utils").label_font()

    def glyph(text: str) -> bytes:
        image = Image.new("L", (40, 20), 0)
        ImageDraw.Draw(image).text((2, 2), text, font=font, fill=255)
        return image.tobytes()

    missing = glyph("\u0b95")  # a Tamil letter that neither font has: the missing-glyph box
    assert glyph("β") != missing and glyph("b") != missing


def test_thread_counts_are_checked_by_the_parser(benchmark_module, capsys):
    # `--num_threads 0` once failed in torch.set_num_threads with a RuntimeError.
    with pytest.raises(SystemExit):
        benchmark_module("scheduler").parse_args(["--num_threads", "0"])
    assert "argument --num_threads: must be a positive integer, got 0" in capsys.readouterr().err


def test_autoguidance_measures_the_checkpoints_of_a_finished_run(benchmark_module, tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"block_out_channels": [4, 8, 8], "time_embedding_dim": 8}))
    training.main(["--output_dir", str(run_dir), "--model_config", str(config), "--max_train_steps", "4",
                   "--checkpointing_steps", "2", "--train_batch_size", "8", "--eval_num_images", "0",
                   "--ddpm_num_inference_steps", "2", "--eval_batch_size", "4"])  # fmt: skip
    module = benchmark_module("autoguidance")
    with pytest.raises(ValueError, match=r"--checkpoints \[3\] are not checkpoints of --run_dir .*; it has \[2, 4\]"):
        module.parse_args(["--run_dir", str(run_dir), "--checkpoints", "3"])
    with pytest.raises(ValueError, match="--scales must all be above 1"):
        module.parse_args(["--run_dir", str(run_dir), "--checkpoints", "2", "--scales", "1"])
    output_dir = tmp_path / "docs"
    module.main(module.parse_args(["--quick", "--run_dir", str(run_dir), "--checkpoints", "2", "--scales", "2", "3",
                                   "--output_dir", str(output_dir)]))  # fmt: skip
    section = (output_dir / "benchmarks" / "autoguidance.md").read_text()
    assert "| Guiding model (EMA weights after) | Guidance scale | Fast FD | Floor | FD / floor | Recognised |" in section
    rows = [line for line in section.splitlines() if line.startswith(("| –", "| update"))]
    assert [row.split(" | ")[:2] for row in rows] == [["| –", "1.00"], ["| update 2", "2.00"], ["| update 2", "3.00"]]
    assert "](autoguidance-samples.png)" in section
    assert Image.open(output_dir / "benchmarks" / "autoguidance-samples.png").width > 100
    assert "widths 4/8/8, " in section and "guided by the EMA weights of its earlier checkpoints" in section
    # A smaller network's run as the guide, reported under its own name beside the first report.
    guide_dir, guide_config = tmp_path / "small", tmp_path / "small.json"
    guide_config.write_text(json.dumps({"block_out_channels": [2, 4, 4], "time_embedding_dim": 8}))
    training.main(["--output_dir", str(guide_dir), "--model_config", str(guide_config), "--max_train_steps", "1",
                   "--checkpointing_steps", "1", "--train_batch_size", "8", "--eval_num_images", "0",
                   "--ddpm_num_inference_steps", "2", "--eval_batch_size", "4"])  # fmt: skip
    with pytest.raises(ValueError, match=r"--checkpoints \[2\] are not checkpoints of --guide_run_dir .*; it has \[1\]"):
        module.parse_args(["--run_dir", str(run_dir), "--guide_run_dir", str(guide_dir), "--checkpoints", "2"])
    module.main(module.parse_args(["--quick", "--run_dir", str(run_dir), "--guide_run_dir", str(guide_dir),
                                   "--checkpoints", "1", "--scales", "2", "--output_dir", str(output_dir),
                                   "--report_name", "autoguidance-small"]))  # fmt: skip
    small = (output_dir / "benchmarks" / "autoguidance-small.md").read_text()
    assert small.startswith("## Autoguidance (autoguidance-small)")
    assert "the checkpoints of the run in `small` (widths 2/4/4, " in small
    assert [line.split(" | ")[:2] for line in small.splitlines() if line.startswith("| update")] == [["| update 1", "2.00"]]
    assert (output_dir / "benchmarks" / "autoguidance.md").read_text() == section
