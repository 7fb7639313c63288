import json

import pytest
import torch
from accelerate import Accelerator
from conftest import make_tiny_unet
from diffusers.training_utils import EMAModel

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel
from diffusers_simple_ddpm.training_utils import (
    MODEL_PRESETS,
    ema_unet,
    list_checkpoints,
    load_model_config,
    resolve_resume_checkpoint,
    save_checkpoint,
    training_target,
)


def test_model_config_presets_and_files(tmp_path):
    assert SimpleUNet2DModel(**load_model_config("notebook")).config == SimpleUNet2DModel().config
    assert load_model_config("default") == MODEL_PRESETS["default"]
    assert load_model_config("auto", "cpu") == MODEL_PRESETS["default"]
    assert load_model_config("auto", "cuda") == MODEL_PRESETS["large"]
    make_tiny_unet(norm_num_groups=4).save_pretrained(tmp_path)
    config = load_model_config(str(tmp_path / "config.json"))
    assert config["norm_num_groups"] == 4 and "sample_size" not in config and "_class_name" not in config
    (tmp_path / "bad.json").write_text(json.dumps({"attention": True}))
    with pytest.raises(ValueError, match="--model_config.*attention"):
        load_model_config(str(tmp_path / "bad.json"))


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_training_target(prediction_type):
    scheduler = SimpleDDPMScheduler(prediction_type=prediction_type)
    clean, noise, timesteps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4), torch.tensor([0, 500, 999])
    target = training_target(scheduler, clean, noise, timesteps)
    expected = {"epsilon": noise, "sample": clean, "v_prediction": scheduler.get_velocity(clean, noise, timesteps)}
    torch.testing.assert_close(target, expected[prediction_type])


def test_sampling_and_saving_with_ema_weights_leave_training_weights_alone(tmp_path):
    unet = make_tiny_unet()
    ema = EMAModel(unet.parameters(), model_cls=SimpleUNet2DModel, model_config=unet.config)
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(1.0)
    before = {name: tensor.clone() for name, tensor in unet.state_dict().items()}
    averaged = ema_unet(ema, unet)
    pipeline = SimpleDDPMPipeline(unet=averaged, scheduler=SimpleDDPMScheduler())
    pipeline.set_progress_bar_config(disable=True)
    pipeline(num_inference_steps=2)
    pipeline.save_pretrained(tmp_path)
    with torch.no_grad():
        for parameter in averaged.parameters():
            parameter.zero_()
    for name, tensor in unet.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert not torch.equal(averaged.conv1.weight, unet.conv1.weight)


def test_a_crash_during_a_checkpoint_save_keeps_the_last_complete_one(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    crash = {"now": False}

    def crashing_hook(models, weights, output_dir):
        if crash["now"]:
            raise OSError("disk full")

    accelerator.register_save_state_pre_hook(crashing_hook)
    save_checkpoint(accelerator, tmp_path, global_step=1, total_limit=2)
    saved_weight = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    crash["now"] = True
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(accelerator, tmp_path, global_step=2, total_limit=2)
    assert (tmp_path / "checkpoint-2.partial").exists()
    assert list_checkpoints(tmp_path) == [tmp_path / "checkpoint-1"]
    latest = resolve_resume_checkpoint("latest", str(tmp_path))
    assert latest == tmp_path / "checkpoint-1"
    accelerator.load_state(str(latest))
    assert torch.equal(model.weight, saved_weight)

    crash["now"] = False
    for step in (2, 3, 4):
        save_checkpoint(accelerator, tmp_path, global_step=step, total_limit=2)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4"]
    assert not (tmp_path / "checkpoint-2.partial").exists()


def test_resume_arguments(tmp_path):
    assert resolve_resume_checkpoint(None, str(tmp_path)) is None
    assert resolve_resume_checkpoint("latest", str(tmp_path)) is None
    (tmp_path / "weights").mkdir()
    with pytest.raises(ValueError, match="--resume_from_checkpoint.*checkpoint-<step>"):
        resolve_resume_checkpoint(str(tmp_path / "weights"), str(tmp_path))


@pytest.mark.parametrize("preset, shape", [("default", (1, 28, 28)), ("large", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_every_preset_builds_a_model_for_its_data(preset, shape):
    channels, height, width = shape
    model = SimpleUNet2DModel(sample_size=height, in_channels=channels, out_channels=channels,
                              **load_model_config(preset)).eval()  # fmt: skip
    assert model.config.layers_per_block is not None
    with torch.no_grad():
        assert model(torch.randn(1, *shape), 500).sample.shape == (1, *shape)


def test_resolution_is_checked_against_the_presets_levels(tmp_path):
    from diffusers_simple_ddpm import training

    with pytest.raises(ValueError, match="--resolution.*28x28.*multiples of 8"):
        training.parse_args(["--output_dir", str(tmp_path / "out"), "--model_config", "cifar10", "--resolution", "28"])
    assert training.parse_args(["--output_dir", str(tmp_path / "out"), "--resolution", "28"]).model_config == "auto"
