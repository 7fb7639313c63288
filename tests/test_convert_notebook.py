import shutil
import subprocess

import numpy as np
import pytest
import torch

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel
from diffusers_simple_ddpm.cli import main
from diffusers_simple_ddpm.convert_notebook import convert_notebook_checkpoint
from diffusers_simple_ddpm.notebook import SimpleUNet


@pytest.fixture(scope="module")
def notebook_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    network = SimpleUNet(channels=1)
    path = tmp_path_factory.mktemp("notebook") / "unet.pt"
    torch.save(network.state_dict(), path)
    return network, path


@pytest.mark.slow
def test_command_line_converts_a_notebook_checkpoint(notebook_checkpoint, tmp_path):
    network, checkpoint = notebook_checkpoint
    output_dir = tmp_path / "pipeline"
    executable = shutil.which("simple-ddpm")
    assert executable is not None, "the package's console script is not installed"
    result = subprocess.run(
        [executable, "convert", "--checkpoint", str(checkpoint), "--output_dir", str(output_dir), "--sample_size", "28"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "SimpleDDPMPipeline.from_pretrained" in result.stdout
    pipeline = SimpleDDPMPipeline.from_pretrained(output_dir)
    assert pipeline.unet.config.in_channels == 1 and pipeline.unet.config.sample_size == 28
    assert pipeline.scheduler.config.beta_start == 1e-4 and pipeline.scheduler.config.beta_end == 0.02
    assert isinstance(pipeline.scheduler, SimpleDDPMScheduler)
    sample, timesteps = torch.randn(2, 1, 28, 28), torch.tensor([10, 600])
    with torch.no_grad():
        torch.testing.assert_close(pipeline.unet(sample, timesteps).sample, network(sample, timesteps))


@pytest.mark.parametrize(
    ("make_checkpoint", "message"),
    [
        (lambda path: path.write_text("hello world\n"), "could not be read as a plain state_dict"),
        (lambda path: path.write_bytes(b""), "could not be read as a plain state_dict"),
        (lambda path: path.mkdir(), "is a directory"),
    ],
    ids=["text-file", "empty-file", "directory"],
)
def test_command_line_names_the_checkpoint_it_cannot_read(make_checkpoint, message, tmp_path):
    checkpoint = tmp_path / "unet.pt"
    make_checkpoint(checkpoint)
    with pytest.raises(ValueError, match=f"`checkpoint` {checkpoint} {message}"):
        main(["convert", "--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "pipeline")])
    assert not (tmp_path / "pipeline").exists()


def test_diffusion_model_wrapper_state_dict(notebook_checkpoint, tmp_path):
    network, _ = notebook_checkpoint
    wrapped = tmp_path / "diffusion.pt"
    torch.save({f"model.{key}": value for key, value in network.state_dict().items()}, wrapped)
    pipeline = convert_notebook_checkpoint(wrapped, sample_size=28)
    for key, value in network.state_dict().items():
        torch.testing.assert_close(pipeline.unet.state_dict()[key], value, rtol=0, atol=0)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 28, 28, 1) and np.isfinite(images).all()


def test_pickled_model_is_refused(notebook_checkpoint, tmp_path):
    network, _ = notebook_checkpoint
    pickled = tmp_path / "whole_model.pt"
    torch.save(network, pickled)
    with pytest.raises(ValueError, match="weights_only=True.*state_dict"):
        convert_notebook_checkpoint(pickled)


def test_other_checkpoints_are_refused(tmp_path):
    not_a_unet = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, not_a_unet)
    with pytest.raises(ValueError, match="not a notebook SimpleUNet state_dict"):
        convert_notebook_checkpoint(not_a_unet)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        convert_notebook_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        convert_notebook_checkpoint(garbage)


def test_bad_keys_and_output_folders_are_refused_before_converting(notebook_checkpoint, tmp_path):
    _, checkpoint = notebook_checkpoint
    # Integer keys once failed with "'int' object has no attribute 'startswith'".
    integer_keys = tmp_path / "integer_keys.pt"
    torch.save({1: torch.zeros(1)}, integer_keys)
    with pytest.raises(ValueError, match="not a state_dict of tensors by parameter name"):
        convert_notebook_checkpoint(integer_keys)
    # An output path that is a file once failed at save time with a raw FileExistsError.
    (tmp_path / "afile").write_text("x")
    for output_dir, message in ((tmp_path / "afile", "not a folder"), (tmp_path / "afile" / "sub", "is a file")):
        with pytest.raises(ValueError, match=f"`--output_dir` .*{message}"):
            main(["convert", "--checkpoint", str(checkpoint), "--output_dir", str(output_dir)])
    # Converting into another pipeline's folder once left its model card and components beside the new weights.
    unet = SimpleUNet2DModel(sample_size=8, block_out_channels=(4, 8, 8))
    SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler()).save_pretrained(tmp_path / "old")
    with pytest.raises(ValueError, match=r"`output_dir` .*old is not empty"):
        convert_notebook_checkpoint(checkpoint, tmp_path / "old", sample_size=28)
    assert SimpleDDPMPipeline.from_pretrained(tmp_path / "old").unet.config.block_out_channels == [4, 8, 8]
