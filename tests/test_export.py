"""Crash safety of `SimpleDDPMPipeline.save_pretrained` and rendering the model card once per save or push."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_unet
from fake_hub import REPO_ID
from PIL import Image

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel, hub_utils
from diffusers_simple_ddpm.hub_utils import TrainingDetails
from diffusers_simple_ddpm.pipeline_simple_ddpm import STAGING_PREFIX

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def make_pipeline(seed: int) -> SimpleDDPMPipeline:
    unet = make_tiny_unet()
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.fill_(float(seed))
    return SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler())


def saved_weight(folder: Path) -> float:
    """The value every weight of a pipeline saved by `make_pipeline` holds."""
    return SimpleDDPMPipeline.from_pretrained(folder).unet.conv1.weight.flatten()[0].item()


@pytest.fixture
def training_details(tmp_path) -> TrainingDetails:
    grid = tmp_path / "grid.png"
    Image.new("L", (16, 16), color=128).save(grid)
    return TrainingDetails(
        dataset_name="MNIST", num_train_steps=10, num_epochs=1, train_batch_size=8, learning_rate=1e-3,
        lr_scheduler="constant", mixed_precision="no", hardware="CPU", wall_time_seconds=1.0, sample_grid=grid,
    )  # fmt: skip


def test_a_failing_save_keeps_the_previous_export_and_the_other_files(tmp_path, monkeypatch):
    output_dir = tmp_path / "run"
    make_pipeline(1).save_pretrained(output_dir)
    (output_dir / "checkpoint-4").mkdir()
    (output_dir / "checkpoint-4" / "optimizer.bin").write_bytes(b"state")

    def interrupted_save(self, save_directory, **kwargs):
        # The weights file is half written when the disk fills up.
        os.makedirs(save_directory, exist_ok=True)
        Path(save_directory, "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 10)
        raise OSError("No space left on device")

    monkeypatch.setattr(SimpleUNet2DModel, "save_pretrained", interrupted_save)
    with pytest.raises(OSError, match="No space left"):
        make_pipeline(2).save_pretrained(output_dir)
    monkeypatch.undo()

    assert saved_weight(output_dir) == 1.0
    assert (output_dir / "checkpoint-4" / "optimizer.bin").read_bytes() == b"state"
    assert not list(output_dir.glob(f"{STAGING_PREFIX}*"))
    make_pipeline(3).save_pretrained(output_dir)
    assert saved_weight(output_dir) == 3.0


SAVE_FOREVER = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, sys.argv[2])
    from test_export import make_pipeline
    pipelines = [make_pipeline(1), make_pipeline(2)]
    for index in range(10**9):
        pipelines[index % 2].save_pretrained(sys.argv[1])
        print(index, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_saves_always_leaves_a_loadable_export(tmp_path):
    output_dir = tmp_path / "run"
    for attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-c", SAVE_FOREVER, str(output_dir), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        )
        for _ in range(3 + attempt):  # some complete saves, then a kill in the middle of one
            process.stdout.readline()
        time.sleep(0.01 * attempt)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert saved_weight(output_dir) in (1.0, 2.0)


def test_save_then_push_renders_the_card_once_and_uploads_what_the_folder_holds(
    tmp_path, training_details, fake_hub, monkeypatch
):
    rendered = []
    create_model_card = hub_utils.create_model_card
    def counting_create_model_card(pipeline, repo_id, **kwargs):
        rendered.append(repo_id)
        return create_model_card(pipeline, repo_id, **kwargs)

    monkeypatch.setattr(hub_utils, "create_model_card", counting_create_model_card)
    pipeline = make_pipeline(1)
    pipeline.training_details = training_details
    output_dir = tmp_path / "ddpm-tiny"
    pipeline.save_pretrained(output_dir, push_to_hub=True, token="hf_write")
    assert rendered == [REPO_ID]  # once, for the repository in the token's namespace
    (commit,) = fake_hub.commits
    assert set(commit["files"]) == {
        "model_index.json", "scheduler/scheduler_config.json", "unet/config.json", WEIGHTS, "README.md",
        "sample_grid.png",
    }  # fmt: skip
    for name, data in commit["files"].items():
        assert data == (output_dir / name).read_bytes(), name

    pipeline.push_to_hub(REPO_ID, token="hf_write")
    assert rendered == [REPO_ID, REPO_ID]


def test_save_pretrained_refuses_unknown_arguments(tmp_path):
    with pytest.raises(ValueError, match="unexpected arguments \\['tokn'\\]"):
        make_pipeline(1).save_pretrained(tmp_path, push_to_hub=True, tokn="hf_write")
    with pytest.raises(ValueError, match="unexpected arguments \\['revision'\\].*takes `repo_id`"):
        make_pipeline(1).save_pretrained(tmp_path, revision="main", token="hf_write")
    assert not any(tmp_path.iterdir())


def test_a_new_unsharded_save_removes_the_old_shards_and_their_index(tmp_path):
    make_pipeline(1).save_pretrained(tmp_path, max_shard_size="1KB")
    assert list((tmp_path / "unet").glob("*-of-*.safetensors"))
    make_pipeline(2).save_pretrained(tmp_path)
    assert not list((tmp_path / "unet").glob("*-of-*.safetensors"))
    assert saved_weight(tmp_path) == 2.0
