import inspect
import json

import numpy as np
import pytest
import torch
from accelerate import cpu_offload_with_hook
from conftest import make_tiny_unet
from diffusers import (
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DPMSolverSDEScheduler,
    UNet2DModel,
)
from diffusers.utils import is_torchsde_available
from PIL import Image

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel

STEPS = 8


def run(pipeline, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("output_type", "np")
    return pipeline(generator=torch.Generator().manual_seed(seed), **kwargs).images


def test_output_types(tiny_pipeline):
    pil = run(tiny_pipeline, batch_size=2, output_type="pil")
    assert len(pil) == 2 and all(isinstance(image, Image.Image) and image.mode == "L" for image in pil)
    assert pil[0].size == (8, 8)
    array = run(tiny_pipeline, batch_size=2)
    assert array.shape == (2, 8, 8, 1) and array.min() >= 0 and array.max() <= 1
    tensor = run(tiny_pipeline, batch_size=2, output_type="pt")
    assert tensor.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(tensor.permute(0, 2, 3, 1).numpy(), array)
    np.testing.assert_array_equal(np.asarray(pil[1]), (array[1, :, :, 0] * 255).round().astype(np.uint8))
    assert tiny_pipeline(num_inference_steps=2, return_dict=False)[0][0].mode == "L"


def test_rgb_images():
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(in_channels=3), scheduler=SimpleDDPMScheduler())
    pipeline.set_progress_bar_config(disable=True)
    assert run(pipeline, output_type="pil")[0].mode == "RGB"


def test_batch_sampling_with_a_generator_per_image(tiny_pipeline):
    # The notebook's sample() broke for batches (an `if t > 0` on a batch tensor); a batch must equal one-image runs.
    generators = [torch.Generator().manual_seed(seed) for seed in (11, 12, 13)]
    batch = tiny_pipeline(batch_size=3, generator=generators, num_inference_steps=STEPS, output_type="np").images
    for index, seed in enumerate((11, 12, 13)):
        single = run(tiny_pipeline, seed=seed)
        np.testing.assert_allclose(batch[index], single[0], rtol=0, atol=1e-6)
    assert not np.allclose(batch[0], batch[1])


def test_same_generator_is_deterministic(tiny_pipeline):
    np.testing.assert_array_equal(run(tiny_pipeline, batch_size=2), run(tiny_pipeline, batch_size=2))
    assert not np.array_equal(run(tiny_pipeline, seed=0), run(tiny_pipeline, seed=1))


def diffusers_loop(unet, scheduler, seed, steps, batch_size=1):
    """
    The denoising loop of diffusers' pipelines, written out by hand: the timesteps first, then the initial noise scaled
    by the `init_noise_sigma` they give, `scale_model_input`, and `step` with the generator where it takes one.
    """
    generator = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(steps)
    latents = torch.randn((batch_size, 1, 8, 8), generator=generator) * scheduler.init_noise_sigma
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for timestep in scheduler.timesteps:
        model_output = unet(scheduler.scale_model_input(latents, timestep), timestep).sample
        latents = scheduler.step(model_output, timestep, latents, **step_kwargs).prev_sample
    return latents


COMPATIBLE_SCHEDULERS = sorted([SimpleDDPMScheduler, *SimpleDDPMScheduler().compatibles], key=lambda cls: cls.__name__)


@pytest.mark.parametrize(
    "scheduler_class",
    [
        pytest.param(
            scheduler_class,
            marks=pytest.mark.skipif(
                scheduler_class is DPMSolverSDEScheduler and not is_torchsde_available(), reason="needs torchsde"
            ),
        )
        for scheduler_class in COMPATIBLE_SCHEDULERS
    ],
    ids=lambda scheduler_class: scheduler_class.__name__,
)
def test_every_compatible_scheduler_runs_as_in_diffusers_pipelines(tiny_pipeline, scheduler_class):
    # Euler-like schedulers' init_noise_sigma depends on the timesteps set: the noise must be scaled after setting them.
    tiny_pipeline.scheduler = scheduler_class.from_config(tiny_pipeline.scheduler.config)
    latents = run(tiny_pipeline, seed=3, output_type="latent")
    with torch.no_grad():
        expected = diffusers_loop(
            tiny_pipeline.unet, scheduler_class.from_config(tiny_pipeline.scheduler.config), 3, STEPS
        )
    assert torch.isfinite(latents).all()
    torch.testing.assert_close(latents, expected, rtol=1e-5, atol=1e-5)


def test_eta_reaches_ddim_only(tiny_pipeline):
    tiny_pipeline.scheduler = DDIMScheduler.from_config(tiny_pipeline.scheduler.config)
    assert not np.allclose(run(tiny_pipeline, eta=0.0), run(tiny_pipeline, eta=1.0))
    tiny_pipeline.scheduler = SimpleDDPMScheduler.from_config(tiny_pipeline.scheduler.config)
    np.testing.assert_array_equal(run(tiny_pipeline, eta=0.0), run(tiny_pipeline, eta=1.0))


def test_diffusers_ddpm_pipeline_runs_our_components(tiny_pipeline):
    theirs = DDPMPipeline(unet=tiny_pipeline.unet, scheduler=tiny_pipeline.scheduler)
    theirs.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(theirs, seed=5, batch_size=2), run(tiny_pipeline, seed=5, batch_size=2))


def tiny_unet2dmodel(**kwargs) -> UNet2DModel:
    """A tiny diffusers `UNet2DModel` of two levels at 8x8, seeded, in eval mode; `kwargs` override its config."""
    config = dict(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    config.update(kwargs)
    torch.manual_seed(0)
    return UNet2DModel(**config).eval()


def test_our_pipeline_runs_diffusers_unet2dmodel():
    unet = tiny_unet2dmodel()
    ours = SimpleDDPMPipeline(unet=unet, scheduler=DDPMScheduler())
    theirs = DDPMPipeline(unet=unet, scheduler=DDPMScheduler())
    for pipeline in (ours, theirs):
        pipeline.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(ours, seed=2), run(theirs, seed=2))


def test_progress_bar_config(tiny_pipeline, capsys):
    run(tiny_pipeline)
    assert "it/s" not in capsys.readouterr().err
    tiny_pipeline.set_progress_bar_config(disable=False)
    run(tiny_pipeline)
    assert f"{STEPS}/{STEPS}" in capsys.readouterr().err


def test_callback_can_replace_latents(tiny_pipeline):
    calls = []

    def zero_latents(pipeline, step_index, timestep, callback_kwargs):
        calls.append(int(timestep))
        return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    images = run(tiny_pipeline, output_type="pt", callback_on_step_end=zero_latents)
    assert calls == tiny_pipeline.scheduler.timesteps.tolist()
    torch.testing.assert_close(images, torch.full_like(images, 0.5))


def test_callback_inputs_of_diffusers_pipeline_tests(tiny_pipeline):
    """What diffusers' `PipelineTesterMixin.test_callback_inputs` checks: the callback gets exactly the tensors asked
    for, all from `_callback_tensor_inputs`, and `num_timesteps` tells it which step is the last."""
    seen = []

    def zero_last_latents(pipeline, step_index, timestep, callback_kwargs):
        seen.append(set(callback_kwargs))
        if step_index == pipeline.num_timesteps - 1:
            callback_kwargs["latents"] = torch.zeros_like(callback_kwargs["latents"])
        return callback_kwargs

    latents = run(tiny_pipeline, output_type="latent", callback_on_step_end=zero_last_latents,
                  callback_on_step_end_tensor_inputs=tiny_pipeline._callback_tensor_inputs)  # fmt: skip
    assert tiny_pipeline.num_timesteps == STEPS and len(seen) == STEPS
    assert all(names == set(tiny_pipeline._callback_tensor_inputs) for names in seen)
    assert latents.abs().sum() == 0
    run(tiny_pipeline, callback_on_step_end=lambda *args: seen.append(set(args[-1])) or {},
        callback_on_step_end_tensor_inputs=[])  # fmt: skip
    assert seen[-1] == set()


def test_latent_output_is_the_final_latents_unconverted(tiny_pipeline):
    captured = {}

    def keep_latents(pipeline, step_index, timestep, callback_kwargs):
        captured["latents"] = callback_kwargs["latents"]
        return callback_kwargs

    latents = run(tiny_pipeline, batch_size=2, output_type="latent", callback_on_step_end=keep_latents)
    torch.testing.assert_close(latents, captured["latents"], rtol=0, atol=0)
    assert latents.shape == (2, 1, 8, 8) and latents.abs().max() > 1  # untrained: outside the image range
    images = run(tiny_pipeline, batch_size=2, output_type="pt")
    torch.testing.assert_close(images, (latents / 2 + 0.5).clamp(0, 1), rtol=0, atol=0)


BAD_ARGUMENTS = [
    (dict(batch_size=0), r"`batch_size` must be a positive int, got 0"),
    (dict(batch_size=True), r"`batch_size` must be a positive int, got True \(bool\)"),
    (dict(batch_size=2.0), r"`batch_size` must be a positive int, got 2.0 \(float\)"),
    (dict(num_inference_steps=0), "`num_inference_steps` must be a positive int"),
    (dict(num_inference_steps=1001), "`num_inference_steps` must be at most the scheduler's 1000 training steps"),
    (dict(output_type="jpeg"), "`output_type` must be one of .*'pil'"),
    (dict(latents=torch.zeros(1, 1, 4, 4)), "`latents` must have shape \\(1, 1, 8, 8\\)"),
    (dict(latents=np.zeros((1, 1, 8, 8))), "`latents` must be a torch.Tensor, got ndarray.*torch.from_numpy"),
    (dict(latents=torch.full((1, 1, 8, 8), float("nan"))), "`latents` holds NaN or infinite values"),
    (dict(latents=torch.full((1, 1, 8, 8), float("inf"))), "`latents` holds NaN or infinite values"),
    (dict(generator=0), r"`generator` must be a torch.Generator.*got 0.*torch.Generator\(\).manual_seed"),
    (dict(generator=[torch.Generator(), torch.Generator()]), "`generator`.*one generator per image"),
    (dict(eta=-0.5), "`eta` must be a finite number of at least 0"),
    (dict(eta=float("nan")), "`eta` must be a finite number"),
    (dict(guidance_scale=float("nan")), r"`guidance_scale` must be a finite number of at least 0 .*, got nan"),
    (dict(guidance_scale=float("inf")), r"`guidance_scale` must be a finite number of at least 0 .*, got inf"),
    (dict(guidance_scale="3"), r"`guidance_scale` must be a finite number of at least 0 .*, got '3'"),
    (dict(guidance_scale=-1.0), r"`guidance_scale` must be a finite number of at least 0 \(1.0 or less means no"),
    (dict(guidance_scale=3.0), "`guidance_scale` is 3.0, but this pipeline's unet is unconditional"),
    (dict(callback_on_step_end_tensor_inputs=["noise"]), "`callback_on_step_end_tensor_inputs` has \\['noise'\\]"),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGUMENTS)
def test_bad_arguments(tiny_pipeline, kwargs, match, monkeypatch):
    # Refused before any work: the scheduler is never set up and the model never runs.
    monkeypatch.setattr(tiny_pipeline.unet, "forward", None)
    monkeypatch.setattr(tiny_pipeline.scheduler, "set_timesteps", None)
    with pytest.raises(ValueError, match=match):
        tiny_pipeline(**kwargs)


def test_save_and_load(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    for path in (
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    ):
        assert (tmp_path / path).is_file(), path
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "SimpleDDPMPipeline"
    assert index["unet"] == ["diffusers_simple_ddpm.modeling_simple_unet", "SimpleUNet2DModel"]
    assert index["scheduler"] == ["diffusers_simple_ddpm.scheduling_simple_ddpm", "SimpleDDPMScheduler"]

    reloaded = SimpleDDPMPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert isinstance(reloaded.unet, SimpleUNet2DModel) and isinstance(reloaded.scheduler, SimpleDDPMScheduler)
    np.testing.assert_array_equal(run(reloaded, seed=9, batch_size=2), run(tiny_pipeline, seed=9, batch_size=2))

    half = SimpleDDPMPipeline.from_pretrained(tmp_path, dtype=torch.bfloat16)
    half.set_progress_bar_config(disable=True)
    assert half.unet.dtype == torch.bfloat16
    assert np.abs(run(half, seed=9) - run(tiny_pipeline, seed=9)).mean() < 0.05

    unet = SimpleUNet2DModel.from_pretrained(tmp_path, subfolder="unet")
    assert unet.config.block_out_channels == [4, 8, 8] and unet.config.sample_size == 8
    torch.testing.assert_close(unet.state_dict(), tiny_pipeline.unet.state_dict(), rtol=0, atol=0)


def test_missing_or_corrupted_weights_name_the_file(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(Exception, match="diffusion_pytorch_model.safetensors"):
        SimpleDDPMPipeline.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(Exception, match="diffusion_pytorch_model"):
        SimpleDDPMPipeline.from_pretrained(tmp_path)


def autoguided_pipeline() -> SimpleDDPMPipeline:
    """A tiny pipeline whose `guidance_unet` is the same network with other weights."""
    guide = make_tiny_unet()
    with torch.no_grad():
        for parameter in guide.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler(), guidance_unet=guide)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_autoguidance_mixes_the_two_models_as_the_paper_says():
    pipeline = autoguided_pipeline()
    latents, timestep = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor(500)
    with torch.no_grad():
        strong = pipeline.unet(latents, timestep).sample
        weak = pipeline.guidance_unet(latents, timestep).sample
        guided = pipeline.predict_model_output(latents, timestep, None, 2.5)
        unguided = pipeline.predict_model_output(latents, timestep, None, 1.0)
    assert not torch.allclose(strong, weak)
    torch.testing.assert_close(guided, weak + 2.5 * (strong - weak), rtol=0, atol=1e-6)
    torch.testing.assert_close(unguided, strong, rtol=0, atol=0)


def test_autoguidance_changes_the_samples_only_when_asked(tiny_pipeline):
    pipeline = autoguided_pipeline()
    # At guidance 1 the guiding model is not used: the same images as the pipeline without it.
    np.testing.assert_array_equal(run(pipeline, batch_size=2), run(tiny_pipeline, batch_size=2))
    # Below 1 neither, as in diffusers' pipelines (guidance_scale=0.0 turns guidance off; it was once refused).
    for scale in (0.0, 0.5):
        np.testing.assert_array_equal(run(pipeline, batch_size=2, guidance_scale=scale), run(tiny_pipeline, batch_size=2))
        np.testing.assert_array_equal(run(tiny_pipeline, guidance_scale=scale), run(tiny_pipeline))
    assert not np.allclose(run(pipeline, batch_size=2, guidance_scale=2.0), run(tiny_pipeline, batch_size=2))
    # A guiding model equal to the unet leaves every prediction, and so every image, unchanged.
    same = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler(), guidance_unet=make_tiny_unet())
    same.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(run(same, guidance_scale=3.0), run(tiny_pipeline), rtol=0, atol=1e-5)


def test_a_guidance_unet_is_saved_and_loaded_with_the_pipeline(tmp_path):
    pipeline = autoguided_pipeline()
    pipeline.save_pretrained(tmp_path / "guided")
    index = json.loads((tmp_path / "guided" / "model_index.json").read_text())
    assert index["guidance_unet"] == ["diffusers_simple_ddpm.modeling_simple_unet", "SimpleUNet2DModel"]
    assert (tmp_path / "guided" / "guidance_unet" / "diffusion_pytorch_model.safetensors").is_file()
    reloaded = SimpleDDPMPipeline.from_pretrained(tmp_path / "guided")
    reloaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(reloaded.guidance_unet.state_dict(), pipeline.guidance_unet.state_dict(), rtol=0, atol=0)
    np.testing.assert_allclose(
        run(reloaded, batch_size=2, guidance_scale=2.0), run(pipeline, batch_size=2, guidance_scale=2.0), atol=1e-6
    )


def test_from_pipe_reuses_the_components_of_ours_and_of_diffusers_ddpm_pipeline(tiny_pipeline):
    # diffusers' from_pipe once refused these pipelines: their unets are not named in the signature's annotations.
    guided = autoguided_pipeline()
    again = SimpleDDPMPipeline.from_pipe(guided)
    assert again.unet is guided.unet and again.guidance_unet is guided.guidance_unet
    np.testing.assert_array_equal(run(again, guidance_scale=2.0), run(guided, guidance_scale=2.0))
    ddim = SimpleDDPMPipeline.from_pipe(guided, scheduler=DDIMScheduler.from_config(guided.scheduler.config))
    assert isinstance(ddim.scheduler, DDIMScheduler) and isinstance(guided.scheduler, SimpleDDPMScheduler)
    theirs = DDPMPipeline(unet=tiny_pipeline.unet, scheduler=tiny_pipeline.scheduler)
    ours = SimpleDDPMPipeline.from_pipe(theirs)
    assert ours.unet is tiny_pipeline.unet and ours.guidance_unet is None
    np.testing.assert_array_equal(run(ours), run(tiny_pipeline))


def test_a_guidance_unet_of_another_dtype_guides(tmp_path):
    # A per-component dtype once failed: "Input type (c10::BFloat16) and bias type (float) should be the same".
    autoguided_pipeline().save_pretrained(tmp_path / "guided")
    mixed = SimpleDDPMPipeline.from_pretrained(tmp_path / "guided", dtype={"unet": torch.bfloat16, "default": torch.float32})
    mixed.set_progress_bar_config(disable=True)
    assert (mixed.unet.dtype, mixed.guidance_unet.dtype) == (torch.bfloat16, torch.float32)
    images = run(mixed, batch_size=2, guidance_scale=2.0)
    reference = SimpleDDPMPipeline.from_pretrained(tmp_path / "guided")
    reference.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(images, run(reference, batch_size=2, guidance_scale=2.0), atol=0.1)


def test_a_pipeline_saved_before_guidance_unets_existed_loads_without_one(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    index = json.loads(index_path.read_text())
    assert index.pop("guidance_unet") == [None, None]
    index_path.write_text(json.dumps(index))
    reloaded = SimpleDDPMPipeline.from_pretrained(tmp_path)
    assert reloaded.guidance_unet is None
    with pytest.raises(ValueError, match="unconditional .* and it has no `guidance_unet`"):
        reloaded(num_inference_steps=2, guidance_scale=2.0)


@pytest.mark.parametrize(
    "unet_kwargs, guide_kwargs, match",
    [
        ({}, {"num_class_embeds": 3}, "`guidance_unet` is for unconditional models, but the `guidance_unet` is class"),
        ({"num_class_embeds": 3}, {"num_class_embeds": 3}, "but the `unet` is class-conditional"),
        ({}, {"sample_size": 16}, r"`guidance_unet` must take and give images of the `unet`'s shape"),
        ({}, {"in_channels": 3}, r"`guidance_unet` must take and give images of the `unet`'s shape"),
    ],
)
def test_a_guidance_unet_that_cannot_guide_is_refused(unet_kwargs, guide_kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleDDPMPipeline(
            unet=make_tiny_unet(**unet_kwargs), scheduler=SimpleDDPMScheduler(), guidance_unet=make_tiny_unet(**guide_kwargs)
        )


def tiny_class_conditional_unet2dmodel() -> UNet2DModel:
    """A class-conditional diffusers `UNet2DModel`: exactly `num_class_embeds` class embeddings, no "no class" one."""
    return tiny_unet2dmodel(block_out_channels=(8, 16), num_class_embeds=3)


def offload_to_meta(pipeline) -> None:
    """Offloads every model of `pipeline` with accelerate's hooks, as `enable_model_cpu_offload` does, but computing on
    the meta device: a tensor the loop makes on the CPU instead of the execution device then meets a meta one."""
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            cpu_offload_with_hook(component, execution_device="meta")


@pytest.mark.parametrize(
    "make_pipeline, kwargs",
    [
        (lambda: SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler()), {}),
        (
            lambda: SimpleDDPMPipeline(unet=make_tiny_unet(num_class_embeds=3), scheduler=SimpleDDPMScheduler()),
            dict(class_labels=[0, 2], guidance_scale=2.0),
        ),
        (autoguided_pipeline, dict(guidance_scale=2.0)),
    ],
    ids=["unconditional", "classifier-free guidance", "autoguidance"],
)
def test_sampling_runs_on_the_execution_device_of_offloaded_models(make_pipeline, kwargs):
    # Latents, timesteps and labels were once made on `pipeline.device` (the CPU, where offloaded models rest): "Tensor
    # on device meta is not on the expected device cpu!".
    pipeline = make_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    offload_to_meta(pipeline)
    assert pipeline.device == torch.device("cpu") and pipeline._execution_device == torch.device("meta")
    latents = run(pipeline, batch_size=2, num_inference_steps=2, output_type="latent", **kwargs)
    assert latents.device == torch.device("meta") and latents.shape == (2, 1, 8, 8)


def test_a_step_end_callback_can_interrupt_the_call(tiny_pipeline):
    unet_calls, callback_steps, captured = [], [], {}
    tiny_pipeline.unet.register_forward_hook(lambda module, args, output: unet_calls.append(args[1]))

    def interrupt_after_step_one(pipeline, step_index, timestep, callback_kwargs):
        callback_steps.append(step_index)
        captured["latents"] = callback_kwargs["latents"]
        if step_index == 1:
            pipeline._interrupt = True
        return callback_kwargs

    latents = run(tiny_pipeline, output_type="latent", callback_on_step_end=interrupt_after_step_one)
    assert len(unet_calls) == 2 and callback_steps == [0, 1] and tiny_pipeline.interrupt
    torch.testing.assert_close(latents, captured["latents"], rtol=0, atol=0)
    # The next call starts uninterrupted.
    unet_calls.clear()
    run(tiny_pipeline)
    assert not tiny_pipeline.interrupt and len(unet_calls) == STEPS


def test_guidance_with_a_unet_without_a_no_class_embedding_is_refused(monkeypatch):
    # Classifier-free guidance once crashed mid-sampling with "IndexError: index out of range in self": its "no class"
    # label, index `num_class_embeds`, is an embedding that diffusers' UNet2DModel does not have.
    pipeline = SimpleDDPMPipeline(unet=tiny_class_conditional_unet2dmodel(), scheduler=SimpleDDPMScheduler())
    pipeline.set_progress_bar_config(disable=True)
    # Without guidance it samples its classes.
    for scale in (1.0, 0.0):
        images = run(pipeline, batch_size=2, class_labels=[0, 2], guidance_scale=scale, num_inference_steps=2)
        assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all()
    # Refused before any work: the scheduler is never set up and the model never runs.
    monkeypatch.setattr(pipeline.unet, "forward", None)
    monkeypatch.setattr(pipeline.scheduler, "set_timesteps", None)
    match = (
        r"`guidance_scale` is 3.0, but this pipeline's unet \(UNet2DModel\) has no \"no class\" embedding: .*"
        r"\(class index 3, an extra embedding that SimpleUNet2DModel has and this unet does not\). Leave `guidance_scale` "
        r"at 1.0 \(or less\) with this unet."
    )
    with pytest.raises(ValueError, match=match):
        pipeline(batch_size=2, class_labels=[0, 1], guidance_scale=3.0, num_inference_steps=2)
    assert not pipeline.has_unconditional_class
    ours = SimpleDDPMPipeline(unet=make_tiny_unet(num_class_embeds=3), scheduler=SimpleDDPMScheduler())
    assert ours.has_unconditional_class


def test_a_loaded_non_square_unet_takes_a_fresh_guidance_unet(tmp_path):
    # A loaded config holds `sample_size` as a list, a fresh one as a tuple: equal sizes were once refused as unequal.
    make_tiny_unet(sample_size=(8, 16)).save_pretrained(tmp_path / "unet")
    unet = SimpleUNet2DModel.from_pretrained(tmp_path / "unet")
    assert unet.config.sample_size == [8, 16]
    pipeline = SimpleDDPMPipeline(
        unet=unet, scheduler=SimpleDDPMScheduler(), guidance_unet=make_tiny_unet(sample_size=(8, 16))
    )
    pipeline.set_progress_bar_config(disable=True)
    assert run(pipeline, guidance_scale=2.0, num_inference_steps=2).shape == (1, 8, 16, 1)
    transposed = make_tiny_unet(sample_size=(16, 8))
    with pytest.raises(ValueError, match=r"`guidance_unet` must take and give images of the `unet`'s shape"):
        SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler(), guidance_unet=transposed)
