"""Class-conditional generation with classifier-free guidance."""

import numpy as np
import pytest
import torch
from conftest import make_tiny_unet
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback, SDCFGCutoffCallback

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler

CLASS_NAMES = ["zero", "one", "two"]


@pytest.fixture
def conditional_pipeline() -> SimpleDDPMPipeline:
    unet = make_tiny_unet(num_class_embeds=3)
    with torch.no_grad():
        unet.class_embedding.weight.normal_(0, 3)  # make the classes matter in an untrained model
    pipeline = SimpleDDPMPipeline(unet=unet, scheduler=SimpleDDPMScheduler(), class_names=CLASS_NAMES)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def generate(pipeline, **kwargs):
    kwargs.setdefault("num_inference_steps", 4)
    kwargs.setdefault("output_type", "pt")
    return pipeline(generator=torch.Generator().manual_seed(0), **kwargs).images


def test_guidance_mixes_conditional_and_unconditional_predictions(conditional_pipeline):
    unet = conditional_pipeline.unet
    latents, timestep, labels = torch.randn(2, 1, 8, 8), torch.tensor(500), torch.tensor([0, 2])
    with torch.no_grad():
        conditional = unet(latents, timestep, class_labels=labels).sample
        unconditional = unet(latents, timestep, class_labels=torch.tensor([3, 3])).sample
        guided = conditional_pipeline.predict_model_output(latents, timestep, labels, guidance_scale=3.0)
        plain = conditional_pipeline.predict_model_output(latents, timestep, labels, guidance_scale=1.0)
    torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, conditional, rtol=0, atol=0)


def guided_loop(unet, labels, guidance_scales):
    """The sampling loop written out by hand: step `i` mixes the predictions with `guidance_scales[i]` (1.0: none)."""
    scheduler, generator = SimpleDDPMScheduler(), torch.Generator().manual_seed(0)
    scheduler.set_timesteps(len(guidance_scales))
    latents = torch.randn((len(labels), 1, 8, 8), generator=generator)
    null_labels = torch.full_like(labels, unet.config.num_class_embeds)
    with torch.no_grad():
        for timestep, scale in zip(scheduler.timesteps, guidance_scales):
            output = unet(latents, timestep, class_labels=labels).sample
            if scale != 1.0:
                unconditional = unet(latents, timestep, class_labels=null_labels).sample
                output = unconditional + scale * (output - unconditional)
            latents = scheduler.step(output, timestep, latents, generator=generator).prev_sample
    return latents


def test_guidance_one_is_a_plain_conditional_pass(conditional_pipeline):
    images = generate(conditional_pipeline, batch_size=2, class_labels=[1, 2], guidance_scale=1.0)
    latents = guided_loop(conditional_pipeline.unet, torch.tensor([1, 2]), [1.0] * 4)
    torch.testing.assert_close(images, (latents / 2 + 0.5).clamp(0, 1), rtol=0, atol=0)
    # Below 1 too, as in diffusers' pipelines (guidance_scale=0.0 turns guidance off; it was once refused).
    for scale in (0.0, 0.5):
        unguided = generate(conditional_pipeline, batch_size=2, class_labels=[1, 2], guidance_scale=scale)
        torch.testing.assert_close(unguided, images, rtol=0, atol=0)


class GuidanceCutoffCallback(PipelineCallback):
    """Turns classifier-free guidance off after step `cutoff_step_index`, as diffusers' CFG cut-off callbacks do."""

    tensor_inputs = ["latents"]

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
        if step_index == self.config.cutoff_step_index:
            pipeline._guidance_scale = 1.0
        return callback_kwargs


class GuidanceRecorder(PipelineCallback):
    """Records `guidance_scale` and `do_classifier_free_guidance` after every step."""

    tensor_inputs = ["latents"]

    def __init__(self):
        super().__init__()
        self.seen = []

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
        self.seen.append((pipeline.guidance_scale, pipeline.do_classifier_free_guidance))
        return callback_kwargs


def test_a_callback_cuts_guidance_off_mid_run(conditional_pipeline):
    labels = torch.tensor([0, 2])
    recorder = GuidanceRecorder()
    callbacks = MultiPipelineCallbacks([GuidanceCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1), recorder])
    latents = generate(conditional_pipeline, class_labels=labels, batch_size=2, guidance_scale=3.0,
                       output_type="latent", callback_on_step_end=callbacks)  # fmt: skip
    assert recorder.seen == [(3.0, True), (1.0, False), (1.0, False), (1.0, False)]
    torch.testing.assert_close(latents, guided_loop(conditional_pipeline.unet, labels, [3.0, 3.0, 1.0, 1.0]))
    assert not torch.allclose(latents, guided_loop(conditional_pipeline.unet, labels, [3.0] * 4))


def test_callback_cfg_of_diffusers_pipeline_tests(conditional_pipeline):
    """What diffusers' `PipelineTesterMixin.test_callback_cfg` checks: a callback raising `_guidance_scale` by one at
    every step leaves `guidance_scale` at its start value plus `num_timesteps`, and the loop uses every new value."""

    def increase_guidance(pipeline, step_index, timestep, callback_kwargs):
        pipeline._guidance_scale += 1.0
        return callback_kwargs

    labels = torch.tensor([1])
    latents = generate(conditional_pipeline, class_labels=labels, guidance_scale=2.0, output_type="latent",
                       callback_on_step_end=increase_guidance)  # fmt: skip
    assert conditional_pipeline.num_timesteps == 4
    assert conditional_pipeline.guidance_scale == 2.0 + conditional_pipeline.num_timesteps
    torch.testing.assert_close(latents, guided_loop(conditional_pipeline.unet, labels, [2.0, 3.0, 4.0, 5.0]))


def test_diffusers_prompt_callbacks_are_refused_by_name(conditional_pipeline):
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs.*prompt_embeds.*allowed: \['latents'\]"):
        generate(conditional_pipeline, class_labels=1, guidance_scale=2.0, callback_on_step_end=SDCFGCutoffCallback())


def test_labels_by_index_name_and_tensor_agree(conditional_pipeline):
    by_index = generate(conditional_pipeline, batch_size=2, class_labels=[2, 0], guidance_scale=2.0)
    by_name = generate(conditional_pipeline, batch_size=2, class_labels=["two", "zero"], guidance_scale=2.0)
    by_tensor = generate(conditional_pipeline, batch_size=2, class_labels=torch.tensor([2, 0]), guidance_scale=2.0)
    torch.testing.assert_close(by_index, by_name, rtol=0, atol=0)
    torch.testing.assert_close(by_index, by_tensor, rtol=0, atol=0)
    one_label = generate(conditional_pipeline, batch_size=2, class_labels="one")
    assert one_label.shape == (2, 1, 8, 8)
    assert not torch.equal(generate(conditional_pipeline, class_labels=0), generate(conditional_pipeline, class_labels=1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(class_labels=[3]), "class_labels.*\\[0, 2\\]"),
        (dict(class_labels=[-1]), "class_labels.*\\[0, 2\\]"),
        (dict(class_labels=[0, 1], batch_size=3), "class_labels.*2 labels.*batch_size.*3"),
        (dict(class_labels="seven"), "unknown class name 'seven'"),
        (dict(class_labels=[0], guidance_scale=-0.5), "`guidance_scale` must be a finite number of at least 0"),
        (dict(guidance_scale=3.0), "`guidance_scale` is 3.0, but no `class_labels` were given"),
        (dict(class_labels=[1.5]), r"`class_labels` must hold class indices \(int\) or class names \(str\), got 1.5"),
        (dict(class_labels=2.0), r"`class_labels` must hold class indices .*, got 2.0 \(float\)"),
        (dict(class_labels=True), r"`class_labels` must hold class indices .*, got True \(bool\)"),
        (dict(class_labels=torch.tensor([1.7])), "`class_labels` must be class indices: .*dtype, got torch.float32"),
    ],
)
def test_label_validation(conditional_pipeline, kwargs, match):
    with pytest.raises(ValueError, match=match):
        conditional_pipeline(num_inference_steps=2, **kwargs)


def test_labels_for_an_unconditional_model_are_refused():
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler())
    with pytest.raises(ValueError, match="class_labels.*unconditional"):
        pipeline(num_inference_steps=2, class_labels=[1])


@pytest.mark.parametrize("scheduler_class", [DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_guidance_with_other_schedulers(conditional_pipeline, scheduler_class):
    conditional_pipeline.scheduler = scheduler_class.from_config(conditional_pipeline.scheduler.config)
    images = generate(conditional_pipeline, batch_size=3, class_labels=[0, 1, 2], guidance_scale=4.0)
    assert images.shape == (3, 1, 8, 8) and torch.isfinite(images).all()


def test_save_and_reload_a_conditional_pipeline(conditional_pipeline, tmp_path):
    conditional_pipeline.save_pretrained(tmp_path)
    reloaded = SimpleDDPMPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.config.class_names == CLASS_NAMES and reloaded.unet.config.num_class_embeds == 3
    np.testing.assert_array_equal(
        generate(reloaded, class_labels="two", guidance_scale=2.5).numpy(),
        generate(conditional_pipeline, class_labels="two", guidance_scale=2.5).numpy(),
    )
