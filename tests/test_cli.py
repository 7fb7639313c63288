"""The `simple-ddpm` command line, on tiny models."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_unet
from PIL import Image

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, cli, evaluation
from diffusers_simple_ddpm.cli import main
from diffusers_simple_ddpm.sampling import resolve_scheduler, with_scheduler
from diffusers_simple_ddpm.notebook import SimpleUNet


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def conditional_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conditional")
    digits = [str(digit) for digit in range(10)]
    unet = make_tiny_unet(num_class_embeds=10)
    SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler(), class_names=digits).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_console_script_help():
    executable = shutil.which("simple-ddpm")
    assert executable is not None, "the package's console script is not installed"
    result = subprocess.run([executable, "sample", "--help"], capture_output=True, text=True, check=True)
    for flag in ("--num_images", "--steps", "--scheduler", "--seed", "--device", "--dtype", "--grid", "--output_dir"):
        assert flag in result.stdout


def test_sample_writes_a_grid_and_images(model_dir, tmp_path):
    grid, images = tmp_path / "grid.png", tmp_path / "images"
    main(["sample", str(model_dir), "--num_images", "5", "--steps", "3", "--grid", str(grid), "--output_dir", str(images)])
    assert Image.open(grid).size == (24, 16)  # 5 images in 3 columns and 2 rows of 8x8
    files = sorted(images.glob("*.png"))
    assert len(files) == 5 and all(Image.open(file).mode == "L" for file in files)


def test_batching_does_not_change_the_images(model_dir, tmp_path):
    for batch_size in (2, 5):
        main(["sample", str(model_dir), "--num_images", "5", "--steps", "3", "--batch_size", str(batch_size),
              "--output_dir", str(tmp_path / str(batch_size))])  # fmt: skip
    for index in range(5):
        first = np.asarray(Image.open(tmp_path / "2" / f"{index:05d}.png"), dtype=np.int16)
        second = np.asarray(Image.open(tmp_path / "5" / f"{index:05d}.png"), dtype=np.int16)
        assert np.abs(first - second).max() <= 1  # at most one 8-bit step of float rounding


def test_the_ddpm_default_takes_every_training_step_of_the_pipeline(tmp_path):
    # It asked for 1000 steps whatever the pipeline's schedule, which a 50-step pipeline refuses.
    folder = tmp_path / "short"
    SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler(num_train_timesteps=50)).save_pretrained(folder)
    pipeline = SimpleDDPMPipeline.from_pretrained(folder)
    assert with_scheduler(pipeline, "ddpm")[1] == 50 and with_scheduler(pipeline, "SimpleDDPMScheduler")[1] == 50
    main(["sample", str(folder), "--num_images", "1", "--grid", str(tmp_path / "grid.png")])
    assert Image.open(tmp_path / "grid.png").size == (8, 8)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm", "euler", "UniPCMultistepScheduler", "SimpleDDPMScheduler"])
def test_sample_with_other_schedulers(model_dir, tmp_path, scheduler):
    grid = tmp_path / "grid.png"
    main(["sample", str(model_dir), "--num_images", "2", "--steps", "3", "--scheduler", scheduler, "--grid", str(grid)])
    assert grid.is_file()


def test_the_scheduler_error_names_only_schedulers_that_sample():
    with pytest.raises(ValueError) as error:
        resolve_scheduler("EDMEulerScheduler")
    names = re.search(r"take sigmas as timesteps: ([^)]*)\)", str(error.value)).group(1).split(", ")
    assert "UniPCMultistepScheduler" in names and "SimpleDDPMScheduler" in names
    assert not [name for name in names if name.startswith("EDM")]
    for name in names:
        assert resolve_scheduler(name)[1] == 50
    for name in ("EDMEulerScheduler", "EDMDPMSolverMultistepScheduler"):
        with pytest.raises(ValueError, match=f"except the EDM ones, .*got '{name}'"):
            resolve_scheduler(name, argument="--eval_scheduler")


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fails the test if the command loads a model: bad arguments must be refused before any work."""

    def refuse_to_load(*args, **kwargs):
        raise AssertionError("the command loaded a model before checking its arguments")

    monkeypatch.setattr(cli, "load_pipeline", refuse_to_load)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--steps", "0"], "argument --steps: must be a positive integer, got 0"),  # it used to run 50 steps
        (["--steps", "-3"], "argument --steps: must be a positive integer, got -3"),
        (["--steps", "2.5"], "argument --steps: must be a positive integer, got '2.5'"),
        (["--num_images", "0"], "argument --num_images: must be a positive integer, got 0"),
        (["--batch_size", "0"], "argument --batch_size: must be a positive integer, got 0"),
        # A negative seed once failed in numpy; a missing CUDA device after the model had loaded.
        (["--seed", "-1"], "argument --seed: must be an integer of at least 0, got -1"),
        (["--device", "cudx"], "argument --device: must be a torch device such as cpu or cuda, got 'cudx'"),
        pytest.param(["--device", "cuda"], "argument --device: is 'cuda', but this torch sees no CUDA device",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        (["--guidance_scale", "nan"], "argument --guidance_scale: must be a finite number of at least 1.0 .*'nan'"),
        (["--guidance_scale", "0.5"], "argument --guidance_scale: must be a finite number of at least 1.0 .*'0.5'"),
        (["--eta", "-1"], r"argument --eta: must be a finite number of at least 0.0 \(0 is deterministic DDIM\)"),
    ],
)
@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_bad_numbers_are_refused_by_the_parser(model_dir, command, arguments, message, capsys, no_model_loading):
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(model_dir), *arguments])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--grid", "{tmp}/missing/grid.png"], r"`--grid` '.*/missing/grid.png' cannot be written: the folder .* not"),
        (["--grid", "{tmp}"], r"`--grid` '.*' is a folder; give the path of a file"),
        (["--grid", "{tmp}/grid"], r"`--grid` '.*/grid' needs the suffix of an image format, such as .png"),
        (["--output_dir", "{tmp}/file.txt"], r"`--output_dir` '.*/file.txt' exists and is not a folder"),
        (["--output_dir", "{tmp}/file.txt/images"], r"`--output_dir` '.*' cannot be created: '.*/file.txt' is a file"),
        (["--scheduler", "fastest"], r"`--scheduler` must be one of ddpm, ddim, dpm, euler"),
        # Schedulers of other model kinds once loaded the model and failed mid-sampling.
        (["--scheduler", "FlowMatchEulerDiscreteScheduler"], r"except the EDM ones.*: DDIMScheduler, .*got"),
        (["--scheduler", "KarrasVeScheduler"], r"the class name of a scheduler that samples this package's models"),
        # EDM schedulers, compatibles of DDPM in diffusers, take sigmas as timesteps: they once sampled wrongly.
        (["--scheduler", "EDMEulerScheduler"], r"except the EDM ones, .*got 'EDMEulerScheduler'"),
        (["--num_images", "3", "--class", "1", "2"], r"`--class` takes one label or one per image \(3\), got 2"),
    ],
)
def test_sample_refuses_unwritable_outputs_before_loading(model_dir, tmp_path, arguments, message, no_model_loading):
    (tmp_path / "file.txt").write_text("not a folder")
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    with pytest.raises(ValueError, match=message):
        main(["sample", str(model_dir), *arguments])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.parametrize(
    "json_path, message",
    [
        ("{tmp}/missing/results.json", r"`--json` '.*/missing/results.json' cannot be written: the folder .* does not"),
        ("{tmp}", r"`--json` '.*' is a folder; give the path of a file"),
    ],
)
def test_evaluate_refuses_an_unwritable_json_before_sampling(model_dir, tmp_path, json_path, message, no_model_loading):
    with pytest.raises(ValueError, match=message):
        main(["evaluate", str(model_dir), "--json", json_path.replace("{tmp}", str(tmp_path))])
    with pytest.raises(ValueError, match=message):
        main(["evaluate", "--images", str(tmp_path), "--json", json_path.replace("{tmp}", str(tmp_path))])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--reference", "{tmp}/missing"], r"`reference` must be one of \('mnist-test', 'mnist-train'\) or a folder"),
        (["--num_reference", "20000"], r"`num_reference` must be between 2 and 10000 .* got 20000"),
        (["--num_images", "1"], r"`--num_images` must give at least 2 images to estimate a covariance, got 1"),
        (["--reference", "mnist-train", "--num_images", "10001"],
         r"`--num_images` gives 10001 images, but their floor .* MNIST test split, which holds 10000: evaluate at most"),
    ],
)  # fmt: skip
def test_evaluate_refuses_a_bad_reference_or_count_before_loading(model_dir, tmp_path, arguments, message,
                                                                   no_model_loading):  # fmt: skip
    # They were refused only after the model had sampled every image (1000 by default).
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    with pytest.raises(ValueError, match=message):
        main(["evaluate", str(model_dir), *arguments])


@pytest.mark.parametrize(
    "value, message", [("1", "must be an integer of at least 2, got 1"), ("-3", "must be an integer of at least 2")]
)
def test_num_reference_is_checked_by_the_parser(model_dir, value, message, capsys, no_model_loading):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(model_dir), "--num_reference", value])
    assert exit_info.value.code == 2
    assert f"argument --num_reference: {message}" in capsys.readouterr().err


def test_evaluate_images_reads_the_samples_before_the_reference(tmp_path, monkeypatch):
    def refuse_to_compute(*args, **kwargs):
        raise AssertionError("the reference features were computed before the samples were checked")

    monkeypatch.setattr(evaluation, "SampleEvaluator", refuse_to_compute)
    Image.new("L", (8, 8)).save(tmp_path / "00000.png")
    with pytest.raises(ValueError, match=r"`--images` must give at least 2 images to estimate a covariance, got 1"):
        main(["evaluate", "--images", str(tmp_path)])
    (tmp_path / "00001.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"`--images`: cannot read the image file '.*00001\.png'"):
        main(["evaluate", "--images", str(tmp_path)])


def test_sample_refuses_an_output_dir_that_holds_images(model_dir, tmp_path, monkeypatch):
    # The images of two runs were mixed: files named by index overwrote some and left the others.
    output_dir = tmp_path / "out"
    (output_dir / "run1").mkdir(parents=True)
    for name in ("00000.png", "run1/00001.jpg"):
        Image.new("L", (8, 8)).save(output_dir / name)
    (output_dir / "notes.txt").write_text("not an image")
    with monkeypatch.context() as patch:
        patch.setattr(cli, "load_pipeline", lambda *args: pytest.fail("the model was loaded"))
        with pytest.raises(ValueError, match=r"`--output_dir` '.*out' already holds 2 image files: .* Give another "
                           r"folder, or empty this one\."):  # fmt: skip
            main(["sample", str(model_dir), "--num_images", "1", "--steps", "2", "--output_dir", str(output_dir)])
    # A grid is one file of its own: it may go into such a folder.
    main(["sample", str(model_dir), "--num_images", "1", "--steps", "2", "--grid", str(output_dir / "grid.png")])
    assert (output_dir / "grid.png").is_file()


def test_numeric_class_names_are_names(tmp_path):
    # With class subfolders named 1, 2, 3, `--class 1` took index 1 (class "2"); in Python "1" is the class named "1".
    folder = tmp_path / "numbered"
    unet = make_tiny_unet(num_class_embeds=3)
    SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler(), class_names=["1", "2", "3"]).save_pretrained(folder)
    for label in ("1", "0", "2"):
        main(["sample", str(folder), "--num_images", "2", "--steps", "2", "--class", label,
              "--output_dir", str(tmp_path / f"class-{label}")])  # fmt: skip
    name_one, index_zero, name_two = (
        np.stack([np.asarray(Image.open(path)) for path in sorted((tmp_path / f"class-{label}").glob("*.png"))])
        for label in ("1", "0", "2")
    )
    np.testing.assert_array_equal(name_one, index_zero)
    assert not np.array_equal(name_one, name_two)
    assert cli.parse_class_labels(["1", "0", "-1", "x"], ["1", "2", "3"]) == ["1", 0, -1, "x"]


def test_sample_a_class(conditional_model_dir, tmp_path):
    main(["sample", str(conditional_model_dir), "--num_images", "2", "--steps", "2", "--class", "7",
          "--guidance_scale", "3", "--output_dir", str(tmp_path / "sevens")])  # fmt: skip
    assert len(list((tmp_path / "sevens").glob("*.png"))) == 2
    with pytest.raises(ValueError, match="--class"):
        main(["sample", str(conditional_model_dir), "--num_images", "3", "--class", "1", "2", "--grid", "x.png"])


def test_without_class_a_conditional_model_draws_the_classes_in_turn(conditional_model_dir, tmp_path):
    # Guidance refused them (no labels), and unguided they were drawn as "no class", unlike the card's evaluation.
    common = ["sample", str(conditional_model_dir), "--num_images", "12", "--steps", "2", "--guidance_scale", "2"]
    main([*common, "--output_dir", str(tmp_path / "default")])
    main([*common, "--class", *(str(index % 10) for index in range(12)), "--output_dir", str(tmp_path / "explicit")])

    default, explicit = (sorted((tmp_path / name).glob("*.png")) for name in ("default", "explicit"))
    assert len(default) == len(explicit) == 12
    for drawn, requested in zip(default, explicit):
        np.testing.assert_array_equal(np.asarray(Image.open(drawn)), np.asarray(Image.open(requested)))


def test_guidance_of_an_unconditional_pipeline_needs_its_guidance_unet(model_dir, tmp_path):
    guided_dir = tmp_path / "guided"
    unet, guide = make_tiny_unet(), make_tiny_unet(block_out_channels=(4, 4, 4))
    SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler(), guidance_unet=guide).save_pretrained(guided_dir)
    for guidance_scale in ("1", "2"):
        main(["sample", str(guided_dir), "--num_images", "2", "--steps", "2", "--guidance_scale", guidance_scale,
              "--output_dir", str(tmp_path / guidance_scale)])  # fmt: skip
    unguided, guided = (np.stack([np.asarray(Image.open(path)) for path in sorted((tmp_path / name).glob("*.png"))])
                        for name in ("1", "2"))  # fmt: skip
    assert unguided.shape == guided.shape == (2, 8, 8) and not np.array_equal(unguided, guided)
    with pytest.raises(ValueError, match="unconditional .* and it has no `guidance_unet`"):
        main(["sample", str(model_dir), "--num_images", "2", "--steps", "2", "--guidance_scale", "2"])


def test_evaluate_images_refuses_the_flags_of_sampling(tmp_path, no_model_loading):
    # They were once ignored without a word: --num_images 5 evaluated every image of the folder.
    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"`--num_images`, `--class` set how a model samples; `--images` evaluates"):
        main(["evaluate", "--images", str(tmp_path), "--num_images", "5", "--class", "3"])


def test_evaluate_a_model_and_a_folder(model_dir, tmp_path, capsys):
    report = tmp_path / "results.json"
    main(["evaluate", str(model_dir), "--num_images", "6", "--steps", "2", "--num_reference", "50",
          "--json", str(report)])  # fmt: skip
    table = capsys.readouterr().out
    assert "| fast_fd |" in table and "6 samples against 50 reference images" in table
    results = json.loads(report.read_text())
    assert results["num_samples"] == 6 and results["fast_fd"] > results["fast_fd_floor"] > 0

    folder = tmp_path / "images"
    main(["sample", str(model_dir), "--num_images", "4", "--steps", "2", "--output_dir", str(folder)])
    main(["evaluate", "--images", str(folder), "--reference", str(folder), "--json", str(report)])
    assert json.loads(report.read_text())["fast_fd"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="either a model"):
        main(["evaluate", str(model_dir), "--images", str(folder)])


def test_convert(tmp_path):
    torch.save(SimpleUNet(channels=1).state_dict(), tmp_path / "unet.pt")
    main(["convert", "--checkpoint", str(tmp_path / "unet.pt"), "--output_dir", str(tmp_path / "pipeline"),
          "--sample_size", "28"])  # fmt: skip
    assert SimpleDDPMPipeline.from_pretrained(tmp_path / "pipeline").unet.config.sample_size == 28


@pytest.mark.slow
def test_train_runs_from_a_wheel_installed_outside_the_repository(tmp_path):
    """`simple-ddpm train` from the built wheel in a fresh virtual environment, run from a folder outside the clone."""
    repository = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(repository)], check=True)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("diffusers_simple_ddpm-*.whl")
    environment = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True)
    new_python = environment / "bin" / "python"
    site_packages = subprocess.run([str(new_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # The dependencies (torch, diffusers, ...) come from this environment's site-packages as a plain path entry, whose
    # .pth files (this checkout's editable install among them) are not run: the package itself comes from the wheel.
    Path(site_packages, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(new_python), "install", "--no-deps", "-q", str(wheel)],
                   check=True)  # fmt: skip
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    environment_variables = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment_variables.update(HF_HUB_OFFLINE="1", PATH=f"{environment / 'bin'}:{os.environ['PATH']}")
    config = workdir / "tiny.json"
    config.write_text(json.dumps({"block_out_channels": [4, 8, 8], "time_embedding_dim": 8,
                                  "time_embedding_type": "sinusoidal"}))  # fmt: skip
    result = subprocess.run(
        [str(environment / "bin" / "simple-ddpm"), "train", "--output_dir", "run", "--model_config", str(config),
         "--resolution", "8", "--train_batch_size", "4", "--max_train_steps", "2", "--ddpm_num_inference_steps", "2",
         "--eval_batch_size", "2", "--eval_num_images", "0", "--lr_warmup_steps", "0", "--mixed_precision", "no"],
        cwd=workdir, env=environment_variables, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    located = subprocess.run([str(new_python), "-c", "import diffusers_simple_ddpm; print(diffusers_simple_ddpm.__file__)"],
                             cwd=workdir, env=environment_variables, capture_output=True, text=True, check=True)  # fmt: skip
    assert located.stdout.startswith(site_packages)
    assert SimpleDDPMPipeline.from_pretrained(workdir / "run").unet.config.sample_size == 8


@pytest.mark.slow
def test_train_forwards_to_the_training_script():
    result = subprocess.run(
        [sys.executable, "-m", "diffusers_simple_ddpm.cli", "train", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--resume_from_checkpoint" in result.stdout and "--class_conditional" in result.stdout


def final_latents(pipeline, scheduler: str, clip_sample: bool) -> torch.Tensor:
    """The latents after the last denoising step (before the conversion to an image, which clamps)."""
    sampling_pipeline, _ = with_scheduler(pipeline, scheduler, clip_sample=clip_sample)
    captured = {}

    def keep_latents(pipe, step_index, timestep, callback_kwargs):
        captured["latents"] = callback_kwargs["latents"]
        return callback_kwargs

    sampling_pipeline(batch_size=4, num_inference_steps=10, generator=torch.Generator().manual_seed(0),
                      output_type="pt", callback_on_step_end=keep_latents)  # fmt: skip
    return captured["latents"]


@pytest.mark.parametrize("scheduler", ["ddpm", "dpm", "UniPCMultistepScheduler"])
def test_clip_sample_keeps_the_predicted_image_in_range(model_dir, scheduler):
    pipeline = SimpleDDPMPipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    # The untrained model's predictions leave [-1, 1]; clipping at every step ends the chain inside it.
    assert final_latents(pipeline, scheduler, clip_sample=False).abs().max() > 1.5
    assert final_latents(pipeline, scheduler, clip_sample=True).abs().max() <= 1.0 + 1e-6
    assert pipeline.scheduler.config.clip_sample is False  # the loaded pipeline is not changed


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_clip_sample_is_refused_where_it_cannot_work(model_dir, tmp_path, scheduler):
    with pytest.raises(ValueError, match="`--clip_sample`.*(DDIMScheduler|EulerDiscreteScheduler)"):
        main(["sample", str(model_dir), "--scheduler", scheduler, "--clip_sample", "--grid", str(tmp_path / "g.png")])


def test_sample_a_class_with_clipping(conditional_model_dir, tmp_path):
    main(["sample", str(conditional_model_dir), "--num_images", "2", "--steps", "2", "--class", "7", "--guidance_scale",
          "3", "--scheduler", "dpm", "--clip_sample", "--grid", str(tmp_path / "sevens.png")])  # fmt: skip
    assert Image.open(tmp_path / "sevens.png").size == (16, 8)
