import argparse
import json
import logging
import shutil

import pytest
import torch
from accelerate import Accelerator
from conftest import make_tiny_unet
from diffusers.training_utils import EMAModel

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel, training_utils
from diffusers_simple_ddpm.training_args import build_parser
from diffusers_simple_ddpm.training_utils import (
    DATA_SET_MODEL_KEYS,
    MODEL_PRESETS,
    check_resume_checkpoint,
    ema_unet,
    list_checkpoints,
    load_model_config,
    resolve_resume_checkpoint,
    save_checkpoint,
    tracker_config,
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


def test_model_config_takes_a_folder_and_diffusers_flag_name(tmp_path):
    make_tiny_unet(norm_num_groups=4).save_pretrained(tmp_path / "unet")
    assert load_model_config(str(tmp_path / "unet")) == load_model_config(str(tmp_path / "unet" / "config.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"`--model_config` .*empty is a folder without a config\.json"):
        load_model_config(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"'auto', the path of a config\.json or of a folder that holds one, got"):
        load_model_config(str(tmp_path / "missing"))
    args = build_parser().parse_args(["--model_config_name_or_path", str(tmp_path / "unet")])
    assert args.model_config == str(tmp_path / "unet")


def test_model_config_from_a_conditional_model_trains_what_the_run_asks_for(tmp_path):
    # A saved class- and text-conditional unet's config.json once failed with "got multiple values for keyword
    # argument 'num_class_embeds'" where the training program builds its network.
    conditional = make_tiny_unet(
        block_out_channels=(4, 8), layers_per_block=1, norm_num_groups=4, attention_levels=(1,), attention_head_dim=8,
        num_class_embeds=10, cross_attention_dim=16,
    )  # fmt: skip
    conditional.save_pretrained(tmp_path)
    config = load_model_config(str(tmp_path / "config.json"))
    assert not set(DATA_SET_MODEL_KEYS) & set(config)
    unconditional = SimpleUNet2DModel(sample_size=8, in_channels=1, out_channels=1, num_class_embeds=None, **config)
    assert unconditional.config.num_class_embeds is None and unconditional.config.cross_attention_dim is None
    assert tuple(unconditional.config.block_out_channels) == conditional.config.block_out_channels
    relabelled = SimpleUNet2DModel(sample_size=8, in_channels=1, out_channels=1, num_class_embeds=3, **config)
    assert relabelled.config.num_class_embeds == 3


@pytest.mark.parametrize(
    "text, match",
    [
        ('{\n  "norm_num_groups": 4,\n  "dropout": 0.1,\n}', r"malformed\.json is not valid JSON: .* line 4, column 1"),
        ('[4, 8, 8]', r"malformed\.json must hold a JSON object"),
        ('{"block_out_channels": "64"}', r"`block_out_channels` must be tuple\[int, \.\.\.\], got \"64\" \(str\)"),
        ('{"block_out_channels": [4, "8"]}', r"`block_out_channels` must be tuple\[int, \.\.\.\], got \[4, \"8\"\]"),
        ('{"norm_num_groups": 2.5}', r"`norm_num_groups` must be int \| None, got 2\.5 \(float\)"),
        ('{"time_embedding_dim": true}', r"`time_embedding_dim` must be int, got true \(bool\)"),
        ('{"time_injection": 1}', r"`time_injection` must be Literal\['mid', 'all'\], got 1 \(int\)"),
        ('{"attention_levels": [1.5]}', r"`attention_levels` must be tuple\[int, \.\.\.\], got \[1\.5\]"),
    ],
)
def test_model_config_file_errors_name_the_file_line_and_key(tmp_path, text, match):
    path = tmp_path / "malformed.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_model_config(str(path))


def test_model_config_file_takes_json_lists_and_integral_floats(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"block_out_channels": [4, 8, 8], "dropout": 0, "norm_num_groups": None}))
    assert load_model_config(str(path)) == {"block_out_channels": [4, 8, 8], "dropout": 0, "norm_num_groups": None}


def test_tracker_config_keeps_the_hub_token_out():
    args = argparse.Namespace(hub_token="hf_secret", learning_rate=1e-3, hub_model_id=None, push_to_hub=True)
    assert tracker_config(args) == {"learning_rate": 1e-3, "push_to_hub": True}


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
    # The sampled and saved model holds the EMA weights (those from before the update), not the training weights.
    saved = SimpleUNet2DModel.from_pretrained(tmp_path / "unet")
    for averaged_parameter, saved_parameter, shadow, trained in zip(
        averaged.parameters(), saved.parameters(), ema.shadow_params, unet.parameters()
    ):
        assert torch.equal(averaged_parameter, shadow) and torch.equal(saved_parameter, shadow)
        assert not torch.equal(averaged_parameter, trained)
    # Changing the copy in place leaves the training weights alone: they share no storage.
    with torch.no_grad():
        for parameter in averaged.parameters():
            parameter.zero_()
    for name, tensor in unet.state_dict().items():
        assert torch.equal(tensor, before[name]), name


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


def test_a_crash_while_deleting_an_old_checkpoint_leaves_no_half_deleted_checkpoint(tmp_path, monkeypatch):
    accelerator = Accelerator(cpu=True)
    accelerator.prepare(torch.nn.Linear(2, 2))
    for step in (1, 2):
        save_checkpoint(accelerator, tmp_path, global_step=step, total_limit=2)
    rmtree = shutil.rmtree

    def crashing_rmtree(path, *args, **kwargs):
        (next(p for p in sorted(path.iterdir()) if p.is_file())).unlink()  # one file gone, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(training_utils.shutil, "rmtree", crashing_rmtree)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(accelerator, tmp_path, global_step=3, total_limit=2)
    monkeypatch.setattr(training_utils.shutil, "rmtree", rmtree)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]
    assert resolve_resume_checkpoint("latest", str(tmp_path)).name == "checkpoint-3"
    assert (tmp_path / "checkpoint-1.deleting").is_dir()
    save_checkpoint(accelerator, tmp_path, global_step=4, total_limit=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-4"]


@pytest.fixture
def checkpoint(tmp_path):
    """A complete checkpoint as the training program writes it, beside an earlier one."""
    (tmp_path / "checkpoint-2").mkdir()
    folder = tmp_path / "checkpoint-4"
    unet = make_tiny_unet()
    unet.save_pretrained(folder / "unet")
    EMAModel(unet.parameters(), model_cls=SimpleUNet2DModel, model_config=unet.config).save_pretrained(
        folder / "unet_ema"
    )
    for name in ("optimizer.bin", "scheduler.bin", "sampler.bin", "random_states_0.pkl", "random_states_1.pkl"):
        torch.save({"state": torch.arange(100)}, folder / name)
    return folder


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_complete_checkpoint_passes(checkpoint):
    check_resume_checkpoint(checkpoint, num_processes=2, use_ema=True)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda c: truncate(c / "optimizer.bin"), r"checkpoint-4/optimizer.bin is unreadable, truncated or corrupt"),
        (lambda c: (c / "scheduler.bin").unlink(), r"checkpoint-4/scheduler.bin is missing"),
        (lambda c: truncate(c / "sampler.bin"), r"checkpoint-4/sampler.bin is unreadable"),
        (lambda c: truncate(c / "unet" / "diffusion_pytorch_model.safetensors"), r"unet/diffusion_pytorch_model"),
        (lambda c: (c / "unet_ema" / "config.json").write_text("{"), r"unet_ema/config.json is unreadable"),
        (lambda c: shutil.rmtree(c / "unet_ema"), r"has no unet_ema/.*resume with `--no-use_ema`"),
    ],
)
def test_damaged_checkpoint_files_are_named_with_what_to_do(checkpoint, damage, match):
    damage(checkpoint)
    with pytest.raises(ValueError, match=match) as error:
        check_resume_checkpoint(checkpoint, num_processes=2, use_ema=True)
    assert "--resume_from_checkpoint" in str(error.value) and "checkpoint-2" in str(error.value)


def test_unreadable_random_states_are_refused_unless_asked(checkpoint, caplog):
    truncate(checkpoint / "random_states_1.pkl")
    # Fewer processes than saved it: the refusal of the reverse case (it once resumed without a word).
    with pytest.raises(ValueError, match=r"saved by 2 processes and this run has 1: .*--num_processes 2"):
        check_resume_checkpoint(checkpoint, num_processes=1, use_ema=True)
    with caplog.at_level(logging.WARNING):
        check_resume_checkpoint(checkpoint, num_processes=1, use_ema=True, resume_without_random_states=True)
    assert "saved by 2 processes and this run has 1" in caplog.text
    with pytest.raises(ValueError, match=r"random_states_1.pkl is unreadable.*`--resume_without_random_states`"):
        check_resume_checkpoint(checkpoint, num_processes=2, use_ema=True)
    with caplog.at_level(logging.WARNING):
        check_resume_checkpoint(checkpoint, num_processes=2, use_ema=True, resume_without_random_states=True)
    assert "random_states_1.pkl is unreadable" in caplog.text and "fresh randomness" in caplog.text
    check_resume_checkpoint(checkpoint, num_processes=2, use_ema=False, resume_without_random_states=True)


def test_resume_arguments(tmp_path):
    assert resolve_resume_checkpoint(None, str(tmp_path)) is None
    assert resolve_resume_checkpoint("latest", str(tmp_path)) is None
    (tmp_path / "weights").mkdir()
    with pytest.raises(ValueError, match="--resume_from_checkpoint.*checkpoint-<step>"):
        resolve_resume_checkpoint(str(tmp_path / "weights"), str(tmp_path))
    # A bare name is looked up in the output directory, as diffusers' scripts do (it was once refused).
    (tmp_path / "checkpoint-4").mkdir()
    assert resolve_resume_checkpoint("checkpoint-4", str(tmp_path)) == tmp_path / "checkpoint-4"
    assert resolve_resume_checkpoint(str(tmp_path / "checkpoint-4"), "elsewhere") == tmp_path / "checkpoint-4"
    with pytest.raises(ValueError, match=r"`--resume_from_checkpoint` checkpoint-5 is neither a folder nor a checkpoint"):
        resolve_resume_checkpoint("checkpoint-5", str(tmp_path))


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


def test_cpu_threads_are_the_cores_shared_among_processes():
    import os

    from diffusers_simple_ddpm.training_utils import cpu_threads_per_process

    cores = len(os.sched_getaffinity(0))
    assert cpu_threads_per_process(1) == cores
    assert cpu_threads_per_process(cores) == 1
    assert cpu_threads_per_process(4 * cores) == 1


@pytest.mark.parametrize(
    "argv, fraction, scale",
    [
        ([], training_utils.DEFAULT_AUTOGUIDANCE_FRACTION, training_utils.DEFAULT_AUTOGUIDANCE_SCALE),
        (["--eval_guidance_scale", "1.5"], training_utils.DEFAULT_AUTOGUIDANCE_FRACTION, 1.5),
        (["--autoguidance_fraction", "0.3"], 0.3, training_utils.DEFAULT_AUTOGUIDANCE_SCALE),
        (["--autoguidance_fraction", "0"], 0.0, 1.0),
        (["--class_conditional"], 0.0, training_utils.DEFAULT_CLASS_GUIDANCE_SCALE),
        (["--class_conditional", "--eval_guidance_scale", "3"], 0.0, 3.0),
        (["--text_conditional"], 0.0, 1.0),
    ],
)
def test_guidance_defaults_follow_the_kind_of_run(argv, fraction, scale):
    args = build_parser().parse_args(argv)
    training_utils.resolve_guidance_arguments(args)
    assert (args.autoguidance_fraction, args.eval_guidance_scale) == (fraction, scale)


def test_the_guiding_model_is_taken_after_its_share_of_the_updates():
    assert training_utils.autoguidance_step(0.1, 9380) == 938
    assert training_utils.autoguidance_step(0.1, 4) == 1  # never before the first update
    assert training_utils.autoguidance_step(0.67, 6) == 4
    assert training_utils.autoguidance_step(0.0, 9380) is None
    # A guide taken at the last update is the final model: guidance then changed nothing at twice the cost.
    assert training_utils.autoguidance_step(0.1, 1) is None
    assert training_utils.autoguidance_step(0.95, 10) is None and training_utils.autoguidance_step(0.9, 10) == 9
