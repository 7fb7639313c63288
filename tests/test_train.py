"""`scripts/train.py` run for real through `accelerate launch` subprocesses, on the built-in MNIST, at 8x8 pixels."""

import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_hub import REPO_ID
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from diffusers_simple_ddpm import SimpleDDPMPipeline
from diffusers_simple_ddpm import training as train
from diffusers_simple_ddpm.hub_utils import write_training_time
from diffusers_simple_ddpm.training_args import DEFAULT_NUM_EPOCHS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def tiny_model_config(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("config") / "config.json"
    config = {"block_out_channels": [4, 8, 8], "time_embedding_dim": 8, "time_embedding_type": "sinusoidal"}
    path.write_text(json.dumps(config))
    return str(path)


def train_args(output_dir, model_config, *extra) -> list[str]:
    return [
        "--output_dir", str(output_dir), "--model_config", model_config, "--resolution", "8",
        "--train_batch_size", "8", "--ddpm_num_inference_steps", "2", "--eval_batch_size", "4",
        "--logging_steps", "2", "--lr_warmup_steps", "2", "--eval_num_images", "0", *extra,
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port that the OS has just found free, for the process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(num_processes: int = 1) -> list[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if num_processes > 1:
        command += ["--multi_gpu", "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port())]
    return command + ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT)]


def launch_env(num_processes: int = 1) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if num_processes > 1:
        env["ACCELERATE_USE_CPU"] = "true"  # data parallel over CPU processes, with the gloo backend
    return env


def launch(
    args: list[str], num_processes: int = 1, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        launch_command(num_processes) + args,
        capture_output=True,
        text=True,
        env=launch_env(num_processes),
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"training failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / WEIGHTS)


def assert_same_weights(first: Path, second: Path) -> None:
    first_weights, second_weights = weights(first), weights(second)
    assert first_weights.keys() == second_weights.keys()
    for name in first_weights:
        assert torch.equal(first_weights[name], second_weights[name]), name


@pytest.mark.slow
def test_training_run_writes_a_loadable_pipeline(tmp_path, tiny_model_config):
    output_dir = tmp_path / "run"
    result = launch(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "6", "--checkpointing_steps", "2",
                   "--checkpoints_total_limit", "2", "--save_images_steps", "3", "--mixed_precision", "bf16",
                   "--eval_num_images", "8", "--eval_num_inference_steps", "2", "--autoguidance_fraction", "0.67")
    )  # fmt: skip
    assert f"Pipeline saved to {output_dir}" in result.stdout
    assert "Fréchet distance (MNIST classifier features):" in result.stdout

    card = ModelCard.load(output_dir / "README.md")
    assert card.data.library_name == "diffusers" and card.data.datasets == ["ylecun/mnist"]
    metrics = {metric["name"]: metric["value"] for metric in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    # The floors are real digits' figures: the card's table shows them, its `model-index` does not.
    assert not any("floor" in name for name in metrics)
    table = dict(re.findall(r"^\| ([^|]+) \| ([-\d.e+]+) \|$", card.text, flags=re.MULTILINE))
    assert metrics["Fréchet distance (MNIST classifier features)"] > float(table["Fréchet distance floor (real digits)"]) > 0
    assert 0 <= metrics["Recognised digits (classifier confidence at least 0.9)"] <= 1
    # The floor of an 8x8 model is real digits brought to 8x8 (28x28 ones once gave it an unreachable floor).
    assert 0 <= float(table["Recognised digits floor (real digits)"]) < 0.75
    assert "the floor is the same distance for 8 real training digits, resized to the model's 8x8 as in training" \
        in card.text.replace("\n", " ")
    assert "| Optimizer updates | 6 (0.08% of an epoch) |" in card.text and "| Mixed precision | bf16 |" in card.text
    # The evaluation's default sampler: the pipeline's own DDPM scheduler, clipping the predicted clean image, with
    # autoguidance at the default scale.
    assert "8 images sampled with SimpleDDPMScheduler, 2 steps (predicted clean image clipped to [-1, 1] at every " \
        "step), autoguidance at scale 2 under bfloat16 autocast, seeds 0 to 7" in card.text.replace("\n", " ")
    # Autoguidance: the EMA weights after update round(0.67 * 6) = 4 became the guiding model, which the checkpoints
    # from then on and the exported pipeline hold.
    assert "| Autoguidance | guiding model: the EMA weights after update 4 |" in card.text
    assert "guidance_scale=2.0" in card.text
    assert_same_weights(output_dir / "guidance_unet", output_dir / "checkpoint-4" / "unet_ema")
    assert_same_weights(output_dir / "checkpoint-6" / "guidance_unet", output_dir / "checkpoint-4" / "unet_ema")
    assert "Took the guiding model of autoguidance after update 4." in result.stderr
    assert "| Network | `--model_config config.json` |" in card.text
    assert sorted(path.name for path in output_dir.iterdir() if path.name.startswith("checkpoint")) == [
        "checkpoint-4",
        "checkpoint-6",
    ]

    pipeline = SimpleDDPMPipeline.from_pretrained(output_dir)
    assert pipeline.unet.config.in_channels == 1 and pipeline.unet.config.sample_size == 8
    # The default prediction type, recorded in the saved scheduler and stated by the card.
    assert pipeline.scheduler.config.prediction_type == "v_prediction"
    assert "The model predicts the velocity (v)." in card.text
    assert "| Loss | mean squared error of the predicted velocity |" in card.text
    images = pipeline(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images
    assert [image.mode for image in images] == ["L", "L"]
    assert {**pipeline.guidance_unet.config, "_name_or_path": None} == {**pipeline.unet.config, "_name_or_path": None}
    assert len(pipeline(batch_size=2, num_inference_steps=3, guidance_scale=2.0).images) == 2

    grid = Image.open(output_dir / "sample_grid.png")
    assert grid.size == (32, 32)  # 4 images of 8x8 in a 2x2 grid, drawn twice as large

    # The exported pipeline holds the EMA weights, not the raw training weights.
    assert_same_weights(output_dir / "unet", output_dir / "checkpoint-6" / "unet_ema")
    raw, exported = weights(output_dir / "checkpoint-6" / "unet"), weights(output_dir / "unet")
    assert any(not torch.equal(raw[name], exported[name]) for name in raw)

    events = EventAccumulator(str(next((output_dir / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert [event.step for event in events.Scalars("loss")] == [2, 4, 6]
    assert all(np.isfinite(event.value) for event in events.Scalars("loss"))
    assert {"lr", "images_per_s", "ema_decay"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Images("samples")] == [3, 6, 6]


@pytest.mark.slow
@pytest.mark.parametrize("data_on_device", ["never", "always"])
def test_sigkill_mid_training_then_resume_gives_the_same_weights(tmp_path, tiny_model_config, data_on_device):
    steps = ["--max_train_steps", "120", "--checkpointing_steps", "30", "--random_flip", "--mixed_precision", "no"]
    steps += ["--data_on_device", data_on_device]
    straight = tmp_path / "straight"
    launch(train_args(straight, tiny_model_config, *steps))

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        launch_command() + train_args(interrupted, tiny_model_config, *steps),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=launch_env(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (interrupted / "checkpoint-30").is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model_index.json").exists(), "the run finished before it could be killed"

    result = launch(train_args(interrupted, tiny_model_config, *steps, "--resume_from_checkpoint", "latest"))
    assert "Resuming from checkpoint" in result.stdout
    assert_same_weights(straight / "unet", interrupted / "unet")
    assert_same_weights(straight / "checkpoint-120" / "unet", interrupted / "checkpoint-120" / "unet")
    # The guiding model of autoguidance, taken after update 12, came back from the checkpoint.
    assert_same_weights(straight / "guidance_unet", interrupted / "guidance_unet")


@pytest.mark.slow
@pytest.mark.parametrize("data_on_device", ["never", "always"])
def test_two_processes_train_in_sync_and_only_the_main_process_writes(tmp_path, tiny_model_config, data_on_device):
    output_dir = tmp_path / "ddp"
    # Both processes tear the process group down together, so the run exits promptly rather than hanging at exit.
    result = launch(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "4", "--checkpointing_steps", "4",
                   "--data_on_device", data_on_device),
        num_processes=2,
        timeout=300,
    )  # fmt: skip
    assert "MULTI_CPU" in result.stderr + result.stdout
    assert "All 2 processes hold identical weights." in result.stdout
    assert result.stdout.count("Pipeline saved to") == 1
    checkpoint = output_dir / "checkpoint-4"
    assert {path.name for path in checkpoint.iterdir()} == {
        "optimizer.bin", "scheduler.bin", "random_states_0.pkl", "random_states_1.pkl", "unet", "unet_ema",
        "guidance_unet", "training_time.json",
    }  # fmt: skip
    assert len(list((output_dir / "logs").rglob("events.out.tfevents.*"))) == 2  # one run (and its hparams)
    SimpleDDPMPipeline.from_pretrained(output_dir)


@pytest.mark.slow
def test_warmup_and_schedule_count_optimizer_updates_under_accumulation(tmp_path, tiny_model_config):
    output_dir = tmp_path / "accumulate"
    launch(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "4", "--gradient_accumulation_steps", "3",
                   "--lr_scheduler", "linear", "--lr_warmup_steps", "2", "--learning_rate", "1e-3",
                   "--logging_steps", "1", "--checkpointing_steps", "100")
    )  # fmt: skip
    events = EventAccumulator(str(next((output_dir / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    learning_rates = [round(event.value, 8) for event in events.Scalars("lr")]
    # Logged after each update: warm-up reaches the peak after 2 updates, the linear decay reaches 0 after 4.
    assert learning_rates == [5e-4, 1e-3, 5e-4, 0.0]


@pytest.mark.slow
def test_class_conditional_epsilon_prediction_run(tmp_path, tiny_model_config):
    output_dir = tmp_path / "conditional"
    launch(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "3", "--class_conditional",
                   "--prediction_type", "epsilon", "--checkpointing_steps", "100")
    )  # fmt: skip
    pipeline = SimpleDDPMPipeline.from_pretrained(output_dir)
    assert pipeline.config.class_names == [str(digit) for digit in range(10)]
    assert pipeline.unet.config.num_class_embeds == 10
    assert pipeline.scheduler.config.prediction_type == "epsilon"
    assert "The model predicts the noise (ε)." in (output_dir / "README.md").read_text()
    images = pipeline(batch_size=2, class_labels=["7", "1"], num_inference_steps=2, guidance_scale=2.0).images
    assert len(images) == 2


@pytest.mark.slow
def test_non_finite_loss_stops_before_saving(tmp_path, tiny_model_config):
    output_dir = tmp_path / "diverged"
    result = launch(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "20", "--learning_rate", "1e35",
                   "--lr_warmup_steps", "0", "--checkpointing_steps", "4"),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "The training loss became nan" in result.stderr
    assert not (output_dir / "model_index.json").exists()
    assert not list(output_dir.glob("checkpoint-*"))


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--train_batch_size", "0"], "--train_batch_size"),
        (["--resolution", "30"], "--resolution.*30x30.*multiples of 4"),
        (["--model_config", "huge"], "--model_config.*notebook, default"),
        (["--ddpm_num_inference_steps", "2000"], "--ddpm_num_inference_steps"),
        (["--class_dropout_prob", "1.5"], "--class_dropout_prob"),
        (["--resume_from_checkpoint", "nowhere"], "--resume_from_checkpoint"),
        (["--eval_scheduler", "fastest"], "--eval_scheduler.*ddpm, ddim, dpm, euler"),
        (["--eval_scheduler", "ddim"], "--eval_clip_sample.*does not work with DDIMScheduler"),
        (["--ddpm_num_inference_steps", "0"], "--ddpm_num_inference_steps.*between 1 and"),
        (["--eval_num_inference_steps", "2000"], r"--eval_num_inference_steps.*between 1 and `--ddpm_num_steps`"),
        (["--ddpm_num_steps", "40", "--eval_num_inference_steps", "50"],
         r"--eval_num_inference_steps.*between 1 and `--ddpm_num_steps` \(40\), got 50"),
        (["--autoguidance_fraction", "1"], r"--autoguidance_fraction.*\[0, 1\).*got 1.0"),
        (["--autoguidance_fraction=-0.1"], r"--autoguidance_fraction.*\[0, 1\)"),
        (["--class_conditional", "--autoguidance_fraction", "0.1"],
         "--autoguidance_fraction.*unconditional runs; `--class_conditional` models guide with their own"),
        (["--eval_guidance_scale", "0.5"], "--eval_guidance_scale.*at least 1"),
        (["--autoguidance_fraction", "0", "--eval_guidance_scale", "2"],
         "--eval_guidance_scale 2.0.*needs something to guide with"),
        (["--num_cpu_threads", "0"], "--num_cpu_threads.*at least 1"),
        (["--eval_num_images", "-1"], "--eval_num_images"),
        (["--max_grad_norm", "-1"], "--max_grad_norm.*positive.*reverses them.*`inf` to turn gradient clipping off"),
        (["--max_grad_norm", "0"], "--max_grad_norm.*positive"),
        (["--max_grad_norm", "nan"], "--max_grad_norm.*positive"),
        (["--snr_gamma", "0"], "--snr_gamma.*positive finite.*5 is the Min-SNR paper's value"),
        (["--snr_gamma", "inf"], "--snr_gamma.*positive finite"),
        (["--learning_rate", "0"], "--learning_rate.*positive finite"),
        (["--learning_rate=-1e-4"], "--learning_rate.*positive finite"),
        (["--learning_rate", "inf"], "--learning_rate.*positive finite"),
        (["--ema_max_decay", "1.5"], r"--ema_max_decay.*\(0, 1\]"),
        (["--ema_max_decay", "0"], r"--ema_max_decay.*\(0, 1\]"),
        (["--ema_inv_gamma", "0"], "--ema_inv_gamma.*positive"),
        (["--ema_power", "-1"], "--ema_power.*positive"),
        (["--adam_beta1", "1"], r"--adam_beta1.*\[0, 1\)"),
        (["--adam_beta2", "-0.1"], r"--adam_beta2.*\[0, 1\)"),
        (["--adam_epsilon", "0"], "--adam_epsilon.*positive"),
        (["--adam_weight_decay", "-0.01"], "--adam_weight_decay.*0 or a positive"),
        (["--hub_model_id", "user/my model"], "--hub_model_id.*'user/my model'.*not a valid Hub repo id"),
        (["--hub_model_id", "a/b/c"], "--hub_model_id.*not a valid Hub repo id"),
        # Both were once ignored without a word.
        (["--hub_token", "hf_x"], "`--hub_token` is for uploads: add `--push_to_hub`"),
        (["--hub_private_repo"], "`--hub_private_repo` is for uploads: add `--push_to_hub`"),
        (["--push_to_hub", "--hub_token", "hf_x", "--output_dir", "runs/my run"], "--push_to_hub.*--hub_model_id"),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, argv, match):
    with pytest.raises(ValueError, match=match):
        train.main(["--output_dir", str(tmp_path / "out"), *argv])
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_logger_without_wandb_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="--logger wandb.*pip install wandb"):
        train.main(["--output_dir", str(tmp_path / "out"), "--logger", "wandb"])
    assert not any(tmp_path.iterdir())


def test_malformed_model_config_fails_before_training(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"block_out_channels": [4, 8, 8],\n "norm_num_groups": 4\n')
    with pytest.raises(ValueError, match=r"--model_config.*config.json is not valid JSON.*line 3"):
        train.main(["--output_dir", str(tmp_path / "out"), "--model_config", str(config)])
    assert not (tmp_path / "out").exists()


def test_unknown_choices_are_refused_by_the_parser(capsys):
    for argv in (["--lr_scheduler", "warmup_cosine"], ["--prediction_type", "x0"], ["--ddpm_beta_schedule", "cos"]):
        with pytest.raises(SystemExit):
            train.parse_args(argv)
        assert "invalid choice" in capsys.readouterr().err


def test_non_empty_output_dir_needs_overwrite_or_resume(tmp_path):
    (tmp_path / "notes.txt").write_text("an earlier run")
    with pytest.raises(ValueError, match="--output_dir.*not empty.*--overwrite_output_dir"):
        train.parse_args(["--output_dir", str(tmp_path)])
    assert train.parse_args(["--output_dir", str(tmp_path), "--overwrite_output_dir"]).overwrite_output_dir


@pytest.mark.parametrize(
    "data_args, match",
    [
        (["--train_data_dir", "/nonexistent/images"], "--train_data_dir"),
        (["--image_column", "picture"], "--image_column"),
        (["--class_conditional", "--label_column", "digit"], "--label_column"),
    ],
)
def test_bad_data_fails_before_training(tmp_path, data_args, match):
    with pytest.raises(ValueError, match=match):
        train.main(["--output_dir", str(tmp_path / "out"), *data_args])
    assert not (tmp_path / "out" / "logs").exists()


def test_empty_image_folder_fails_before_training(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="--train_data_dir.*no image files"):
        train.main(["--output_dir", str(tmp_path / "out"), "--train_data_dir", str(tmp_path / "images")])


def test_push_to_hub_sends_the_pipeline_card_and_grid_with_token_and_privacy(tmp_path, tiny_model_config, fake_hub):
    # The Hub's HTTP API is faked (see tests/fake_hub.py); the script, huggingface_hub's client and the files are real.
    output_dir = tmp_path / "ddpm-tiny"
    train.main(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "2", "--checkpointing_steps", "1",
                   "--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", "hf_secret", "--hub_private_repo")
    )  # fmt: skip
    (commit,) = fake_hub.commits
    assert set(commit["files"]) == {
        "model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors", "README.md", "sample_grid.png",
        "guidance_unet/config.json", "guidance_unet/diffusion_pytorch_model.safetensors",
    }  # fmt: skip
    assert (output_dir / "checkpoint-2").is_dir() and (output_dir / "logs").is_dir()
    for name, data in commit["files"].items():
        assert data == (output_dir / name).read_bytes(), name
    # Created (or found) before training, as diffusers' scripts do, and found again by the upload.
    assert fake_hub.created_repos == 2 * [{"name": "ddpm-tiny", "organization": "user", "visibility": "private"}]
    assert {request.headers["authorization"] for request in fake_hub.repository_requests()} == {"Bearer hf_secret"}
    # The token reaches no file: not the tensorboard hyper-parameters (hparams.yml, event files), logs or card.
    (hparams,) = (output_dir / "logs").rglob("hparams.yml")
    assert "hub_token" not in hparams.read_text() and "hub_model_id: user/ddpm-tiny" in hparams.read_text()
    event_files = list((output_dir / "logs").rglob("events.out.tfevents.*"))
    assert len(event_files) == 2 and any(b"hub_model_id" in path.read_bytes() for path in event_files)
    for path in output_dir.rglob("*"):
        assert not path.is_file() or b"hf_secret" not in path.read_bytes(), path
    for data in commit["files"].values():
        assert b"hf_secret" not in data


def test_an_unreachable_hub_stops_the_run_before_training_and_a_failed_upload_keeps_the_pipeline(
    tmp_path, tiny_model_config, monkeypatch
):
    # Only the Hub's answers are faked here (raised errors); the training program and its files are real. A failed
    # upload once lost the whole run: the repository was created only at the end, before the local save.
    from diffusers_simple_ddpm import hub_utils

    def unreachable(*args, **kwargs):
        raise ConnectionError("the Hub cannot be reached")

    argv = train_args(tmp_path / "run", tiny_model_config, "--max_train_steps", "2", "--checkpointing_steps", "10",
                      "--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", "hf_secret")  # fmt: skip
    monkeypatch.setattr(hub_utils.HfApi, "create_repo", unreachable)
    with pytest.raises(ConnectionError, match="cannot be reached"):
        train.main(argv)
    assert not (tmp_path / "run").exists()

    monkeypatch.setattr(hub_utils.HfApi, "create_repo", lambda self, repo_id, **kwargs: type("Url", (), {"repo_id": repo_id}))
    monkeypatch.setattr(hub_utils, "upload_pipeline_files", unreachable)
    with pytest.raises(RuntimeError, match=rf"saved in .*run, but its upload to {REPO_ID} failed .*`hf upload {REPO_ID} "):
        train.main(argv)
    SimpleDDPMPipeline.from_pretrained(tmp_path / "run")
    assert f"from_pretrained(\"{REPO_ID}\")" in (tmp_path / "run" / "README.md").read_text()


def imported_modules(command: list[str]) -> set[str]:
    """The top-level modules a Python command imports, from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in lines}


def test_help_shows_every_default_before_the_heavy_imports():
    help_text = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout  # fmt: skip
    assert "--num_epochs NUM_EPOCHS" in help_text and f"(default: {DEFAULT_NUM_EPOCHS})" in help_text
    assert "(default: 0.001)" in help_text and "(default: ddpm-mnist)" in help_text
    heavy = {"torch", "diffusers", "datasets", "accelerate", "transformers"}
    assert not heavy & imported_modules([str(SCRIPT), "--help"])
    assert not (heavy - {"torch"}) & imported_modules(["-m", "diffusers_simple_ddpm.cli", "train", "--help"])


def test_choices_of_the_light_parser_are_those_of_diffusers_and_the_scheduler():
    from diffusers.optimization import SchedulerType, get_scheduler

    from diffusers_simple_ddpm import scheduling_simple_ddpm
    from diffusers_simple_ddpm.training_args import BETA_SCHEDULES, LR_SCHEDULERS, PREDICTION_TYPES

    # Every schedule but piecewise_constant, which once crashed the run: it needs step rules that no flag gives.
    needs_step_rules = {"piecewise_constant"}
    assert list(LR_SCHEDULERS) == [kind.value for kind in SchedulerType if kind.value not in needs_step_rules]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    for name in LR_SCHEDULERS:
        schedule = get_scheduler(name, optimizer=optimizer, num_warmup_steps=2, num_training_steps=10)
        assert schedule.get_last_lr() == [0.0] or name == "constant", name
    assert BETA_SCHEDULES == scheduling_simple_ddpm.BETA_SCHEDULES
    assert PREDICTION_TYPES == scheduling_simple_ddpm.PREDICTION_TYPES


def write_digit_folder(folder: Path, per_class: int = 12) -> Path:
    """`per_class` 8x8 grayscale PNGs in each of the class subfolders `0` and `1`."""
    pixels = np.random.default_rng(0).integers(0, 256, (2 * per_class, 8, 8), dtype=np.uint8)
    for index, image in enumerate(pixels):
        (folder / str(index % 2)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(index % 2) / f"{index:03d}.png")
    return folder


def test_num_epochs_decides_and_the_card_names_the_data_without_its_path(tmp_path, tiny_model_config):
    assert train.parse_args(["--output_dir", str(tmp_path / "unused"), "--num_epochs", "1"]).max_train_steps is None
    data = write_digit_folder(tmp_path / "my-digits")
    output_dir = tmp_path / "epochs"
    arguments = train_args(output_dir, tiny_model_config, "--train_data_dir", str(data), "--checkpointing_steps", "3")
    train.main([*arguments, "--num_epochs", "1", "--include_code"])

    card = (output_dir / "README.md").read_text()
    assert "| Optimizer updates | 3 (1 epoch) |" in card  # 24 images at batch 8: one epoch, not 3000 updates
    assert "| Data | my-digits |" in card and str(tmp_path) not in card
    assert (output_dir / "pipeline_simple_ddpm.py").is_file() and "trust_remote_code=True" in card
    assert (output_dir / "checkpoint-3" / "training_time.json").is_file()

    # A resumed run's card counts the time of every session (here 1000 s recorded by "earlier sessions").
    write_training_time(output_dir / "checkpoint-3", 1000.0)
    train.main([*arguments, "--num_epochs", "2", "--resume_from_checkpoint", "latest", "--dataset_card_name", "Digits"])
    card = (output_dir / "README.md").read_text()
    assert "| Optimizer updates | 6 (2 epochs) |" in card and "| Data | Digits |" in card
    minutes = int(re.search(r"\| Training time \| (\d+) min", card).group(1))
    assert minutes >= 16


def test_images_smaller_than_the_resolution_are_upscaled(tmp_path, tiny_model_config, caplog):
    # Training refused them; diffusers' train_unconditional.py and the notebook upscale with `transforms.Resize`.
    data = write_digit_folder(tmp_path / "digits")
    output_dir = tmp_path / "upscaled"
    arguments = train_args(output_dir, tiny_model_config, "--train_data_dir", str(data), "--max_train_steps", "1")
    with caplog.at_level(logging.WARNING, logger="diffusers_simple_ddpm.data"):
        train.main([*arguments, "--resolution", "12"])

    assert re.search(r"`--resolution` 12 is larger than the training image .*\(8 pixels.*upscaled", caplog.text)
    assert SimpleDDPMPipeline.from_pretrained(output_dir).unet.config.sample_size == 12


def test_a_run_too_short_for_a_guide_trains_without_autoguidance(tmp_path, tiny_model_config, caplog):
    # With one update the guide was the final model: a guidance_unet that changed nothing at twice the sampling cost.
    output_dir = tmp_path / "short"
    with caplog.at_level(logging.WARNING, logger="diffusers_simple_ddpm.training"):
        train.main(train_args(output_dir, tiny_model_config, "--max_train_steps", "1"))

    assert "Autoguidance is off: `--autoguidance_fraction 0.1` of 1 updates" in caplog.text
    assert SimpleDDPMPipeline.from_pretrained(output_dir).guidance_unet is None
    assert (output_dir / "sample_grid.png").is_file()  # drawn unguided: guidance_scale 2 has nothing to guide with


def logged_scalars(output_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(next((output_dir / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


@pytest.mark.parametrize("data_on_device", ["always", "never"])
def test_accumulation_updates_at_every_epoch_end_and_resumes_exactly(tmp_path, tiny_model_config, data_on_device):
    # 24 images at batch 8 are 3 micro-batches an epoch: groups of 2 and 1, so 2 updates an epoch. The data held on the
    # device used to carry the group across the epoch's end (5 updates where 6 were planned, an inexact resume).
    data = write_digit_folder(tmp_path / "digits")
    output_dir = tmp_path / "accumulate"
    arguments = train_args(
        output_dir, tiny_model_config, "--train_data_dir", str(data), "--gradient_accumulation_steps", "2",
        "--checkpointing_steps", "3", "--logging_steps", "1", "--data_on_device", data_on_device,
        "--num_epochs", "3",
    )  # fmt: skip
    train.main(arguments)
    assert "| Optimizer updates | 6 (3 epochs) |" in (output_dir / "README.md").read_text()
    # The loss of an update is the mean over its micro-batches: that of the one-micro-batch updates (2, 4 and 6) used
    # to be halved.
    losses = logged_scalars(output_dir, "loss")
    assert len(losses) == 6
    assert np.mean(losses[1::2]) > 0.7 * np.mean(losses[0::2])

    resumed = tmp_path / "resumed"
    shutil.copytree(output_dir / "checkpoint-3", resumed / "checkpoint-3")  # mid-epoch: after the first group
    train.main([*train_args(resumed, tiny_model_config), *arguments[len(train_args(resumed, tiny_model_config)):],
                "--resume_from_checkpoint", "latest"])  # fmt: skip
    assert_same_weights(output_dir / "unet", resumed / "unet")


def test_constant_schedule_has_no_warmup_on_the_card(tmp_path, tiny_model_config):
    output_dir = tmp_path / "constant"
    train.main(train_args(output_dir, tiny_model_config, "--max_train_steps", "2", "--lr_scheduler", "constant",
                          "--lr_warmup_steps", "5"))  # fmt: skip
    card = (output_dir / "README.md").read_text()
    assert "constant schedule, 0 warm-up updates" in card
    assert "| Optimizer updates | 2 (0.026% of an epoch) |" in card  # 2 of the 7,500 updates of an epoch: not "1 epochs"
    assert logged_scalars(output_dir, "lr") == [pytest.approx(1e-3)]


def test_overwrite_output_dir_removes_the_earlier_runs_outputs_only(tmp_path, tiny_model_config):
    output_dir = tmp_path / "run"
    train.main(train_args(output_dir, tiny_model_config, "--max_train_steps", "4", "--checkpointing_steps", "2"))
    assert (output_dir / "guidance_unet").is_dir()  # autoguidance, on by default for unconditional runs
    (output_dir / "notes.txt").write_text("mine")
    train.main(train_args(output_dir, tiny_model_config, "--max_train_steps", "2", "--checkpointing_steps", "100",
                          "--autoguidance_fraction", "0", "--overwrite_output_dir"))  # fmt: skip
    assert not (output_dir / "guidance_unet").exists()  # the new pipeline has none; the earlier run's would linger
    assert not list(output_dir.glob("checkpoint-*"))
    assert [len(logged_scalars(output_dir, "lr"))] == [1]  # logging_steps 2: one point, none of the earlier run
    assert len(list((output_dir / "logs").rglob("events.out.tfevents.*"))) == 2  # this run (and its hparams)
    assert (output_dir / "notes.txt").read_text() == "mine"
    SimpleDDPMPipeline.from_pretrained(output_dir)


def test_a_flat_folder_for_a_class_conditional_run_points_to_class_subfolders(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="--class_conditional.*class subfolders.*--label_column"):
        train.main(["--output_dir", str(tmp_path / "out"), "--train_data_dir", str(tmp_path), "--resolution", "8",
                    "--class_conditional"])  # fmt: skip


def test_an_unreadable_image_is_named_and_the_failed_start_leaves_nothing_behind(tmp_path, tiny_model_config):
    data = write_digit_folder(tmp_path / "images")
    corrupt = data / "1" / "005.png"
    corrupt.write_bytes(corrupt.read_bytes()[:60])  # its header reads, its pixels do not
    output_dir = tmp_path / "run"
    arguments = train_args(output_dir, tiny_model_config, "--train_data_dir", str(data), "--max_train_steps", "3",
                           "--checkpointing_steps", "100")  # fmt: skip

    with pytest.raises(ValueError, match=f"Cannot read the training image '{corrupt}'.*--skip_unreadable_images"):
        train.main(arguments)
    assert not output_dir.exists()  # no logs/ that would make the rerun refuse a "non-empty" folder

    train.main([*arguments, "--skip_unreadable_images"])
    assert (output_dir / "model_index.json").is_file()


@pytest.mark.slow
def test_simple_ddpm_train_ends_with_the_real_cause(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "diffusers_simple_ddpm.cli", "train", "--output_dir", str(tmp_path / "out"),
         "--train_data_dir", str(tmp_path / "missing")],
        capture_output=True, text=True, env=launch_env(), timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ValueError: `--train_data_dir`") and "does not exist" in last_line
    assert "CalledProcessError" not in result.stderr
    assert "were not passed to `accelerate launch`" not in result.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_config) -> Path:
    """A finished 4-update run with checkpoints at updates 2 and 4, trained in this process."""
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    train.main(train_args(output_dir, tiny_model_config, "--max_train_steps", "4", "--checkpointing_steps", "2"))
    return output_dir


def copy_run(finished_run: Path, tmp_path: Path) -> Path:
    output_dir = tmp_path / "run"
    shutil.copytree(finished_run, output_dir)
    return output_dir


def test_resuming_a_finished_run_trains_no_further_update(finished_run, tmp_path, tiny_model_config, capsys):
    output_dir = copy_run(finished_run, tmp_path)
    train.main(
        train_args(output_dir, tiny_model_config, "--max_train_steps", "4", "--checkpointing_steps", "2",
                   "--resume_from_checkpoint", "latest")
    )  # fmt: skip
    assert "Step 4 reaches --max_train_steps 4: nothing left to train." in capsys.readouterr().out
    assert_same_weights(finished_run / "unet", output_dir / "unet")
    assert_same_weights(finished_run / "checkpoint-4" / "unet", output_dir / "checkpoint-4" / "unet")
    assert "| Optimizer updates | 4 (0.053% of an epoch) |" in ModelCard.load(output_dir / "README.md").text
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


@pytest.mark.parametrize(
    "damage, extra, match",
    [
        ("unet_ema", [], "checkpoint-4 has no unet_ema/.*resume with `--no-use_ema`"),
        ("optimizer.bin", [], "checkpoint-4/optimizer.bin is unreadable.*--resume_from_checkpoint .*checkpoint-2"),
        ("random_states_0.pkl", [], "random_states_0.pkl is unreadable.*`--resume_without_random_states`"),
        ("random_states_0.pkl", ["--resume_without_random_states"], None),
        ("guidance_unet/diffusion_pytorch_model.safetensors", [], "checkpoint-4/guidance_unet/.* is unreadable"),
        ("guidance_unet", [], "checkpoint-4 has no guidance_unet/.*after update 1.*`--autoguidance_fraction 0`"),
    ],
)
def test_resuming_from_a_damaged_checkpoint(finished_run, tmp_path, tiny_model_config, damage, extra, match):
    output_dir = copy_run(finished_run, tmp_path)
    path = output_dir / "checkpoint-4" / damage
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.write_bytes(path.read_bytes()[:100])
    (output_dir / "model_index.json").unlink()
    argv = train_args(output_dir, tiny_model_config, "--max_train_steps", "4", "--resume_from_checkpoint", "latest")
    if match is None:
        train.main(argv + extra)
        assert_same_weights(finished_run / "unet", output_dir / "unet")
    else:
        with pytest.raises(ValueError, match=match):
            train.main(argv + extra)
        assert not (output_dir / "model_index.json").exists()


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--class_conditional"], r"num_class_embeds: null -> 10"),
        (["--resolution", "16"], r"sample_size: 8 -> 16"),
        (["--model_config", "{wider}"], r"block_out_channels: \[4, 8, 8\] -> \[8, 8, 8\]"),
    ],
)
def test_resuming_with_another_network_names_the_difference(finished_run, tmp_path, tiny_model_config, flags, match):
    # It once failed deep in load_state_dict with a hundred missing and unexpected keys.
    output_dir = copy_run(finished_run, tmp_path)
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps({**json.loads(Path(tiny_model_config).read_text()), "block_out_channels": [8, 8, 8]}))
    flags = [flag.format(wider=wider) for flag in flags]
    argv = train_args(output_dir, tiny_model_config, "--max_train_steps", "6", "--resume_from_checkpoint", "latest")
    with pytest.raises(ValueError, match=rf"checkpoint-4 holds another network than this run builds \(.*{match}"):
        train.main(argv + flags)


@pytest.mark.slow
def test_compiled_model_trains_and_exports(tmp_path, tiny_model_config):
    output_dir = tmp_path / "compiled"
    launch(train_args(output_dir, tiny_model_config, "--max_train_steps", "2", "--checkpointing_steps", "2", "--compile"))
    assert_same_weights(output_dir / "unet", output_dir / "checkpoint-2" / "unet_ema")
    SimpleDDPMPipeline.from_pretrained(output_dir)
