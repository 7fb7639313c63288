"""Tests of `SimpleDDPMScheduler` against diffusers' own `DDPMScheduler` and the schedulers that swap in for it."""

import inspect
import re
import typing

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.training_utils import compute_snr
from diffusers.utils.torch_utils import randn_tensor

import diffusers_simple_ddpm.scheduling_simple_ddpm as scheduling_simple_ddpm
from diffusers_simple_ddpm.notebook import DiffusionModel
from diffusers_simple_ddpm.scheduling_simple_ddpm import SimpleDDPMScheduler, SimpleDDPMSchedulerOutput

SHAPE = (2, 3, 4, 4)
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
TRAINED_BETAS = np.geomspace(1e-4, 0.03, 1000).tolist()
BETA_SCHEDULES = [
    dict(beta_schedule="linear"),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    dict(beta_schedule="squaredcos_cap_v2"),
    dict(trained_betas=TRAINED_BETAS),
]
COMPATIBLE_SCHEDULERS = [DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, DDPMScheduler]


def fake_model_output(sample: torch.Tensor, timestep: int | torch.Tensor) -> torch.Tensor:
    """A fixed, deterministic stand-in for a denoising network: a linear channel mix of the sample plus a term in t."""
    return 0.6 * sample - 0.3 * sample.roll(1, dims=1) + timestep / 1000


def schedulers(**config) -> tuple[SimpleDDPMScheduler, DDPMScheduler]:
    """Ours and diffusers' `DDPMScheduler` with the same configuration (`clip_sample=False` unless given)."""
    config = {"clip_sample": False, **config}
    return SimpleDDPMScheduler(**config), DDPMScheduler(**config)


def sampling_loop(
    scheduler, generator, dtype=torch.float32, device="cpu", shape=SHAPE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs a denoising loop over `scheduler.timesteps`; returns each step's `prev_sample`, `pred_original_sample`."""
    sample = randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype)
    prev_samples, pred_original_samples = [], []
    for t in scheduler.timesteps:
        output = scheduler.step(fake_model_output(sample, t), t, sample, generator=generator)
        sample = output.prev_sample
        prev_samples.append(output.prev_sample)
        pred_original_samples.append(output.pred_original_sample)
    return torch.stack(prev_samples), torch.stack(pred_original_samples)


def assert_loops_equal(
    ours,
    ddpm,
    make_generator=lambda: torch.Generator().manual_seed(0),
    dtype=torch.float32,
    device="cpu",
    **set_timesteps_kwargs,
):
    """Sets the same timesteps on both schedulers, then runs both loops from the same generator seed and compares."""
    ours.set_timesteps(device=device, **set_timesteps_kwargs)
    ddpm.set_timesteps(device=device, **set_timesteps_kwargs)
    torch.testing.assert_close(ours.timesteps, ddpm.timesteps, rtol=0, atol=0)
    prev_samples, pred_original_samples = sampling_loop(ours, make_generator(), dtype, device)
    ddpm_prev_samples, ddpm_pred_original_samples = sampling_loop(ddpm, make_generator(), dtype, device)
    torch.testing.assert_close(pred_original_samples, ddpm_pred_original_samples, **TOLERANCE)
    torch.testing.assert_close(prev_samples, ddpm_prev_samples, **TOLERANCE)


OPTION_GRID = [
    dict(prediction_type=prediction_type, variance_type=variance_type, clip_sample=clip_sample, clip_sample_range=0.8)
    for prediction_type in ("epsilon", "sample", "v_prediction")
    for variance_type in ("fixed_small", "fixed_large")
    for clip_sample in (False, True)
]


@pytest.mark.parametrize(
    "config", OPTION_GRID, ids=lambda c: f"{c['prediction_type']}-{c['variance_type']}-clip{c['clip_sample']}"
)
def test_sampling_loop_matches_ddpm_for_every_option(config):
    # All 1000 training timesteps where clipping is on (the full loops without clipping are the beta schedule tests').
    num_inference_steps = 1000 if config["clip_sample"] else 25
    assert_loops_equal(*schedulers(**config), num_inference_steps=num_inference_steps)


@pytest.mark.parametrize("num_inference_steps", [1, 10, 33, 50, 999])
@pytest.mark.parametrize(
    "spacing",
    [
        dict(timestep_spacing="leading"),
        dict(timestep_spacing="leading", steps_offset=1),
        dict(timestep_spacing="trailing"),
        dict(timestep_spacing="linspace"),
    ],
    ids=str,
)
def test_sampling_loop_matches_ddpm_for_every_timestep_spacing(spacing, num_inference_steps):
    assert_loops_equal(*schedulers(**spacing), num_inference_steps=num_inference_steps)


@pytest.mark.parametrize("num_inference_steps", [1000, 20])
@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES, ids=["linear", "scaled_linear", "cosine", "trained"])
def test_sampling_loop_matches_ddpm_for_every_beta_schedule(beta_schedule, num_inference_steps):
    ours, ddpm = schedulers(**beta_schedule)
    torch.testing.assert_close(ours.betas, ddpm.betas, rtol=0, atol=0)
    torch.testing.assert_close(ours.alphas_cumprod, ddpm.alphas_cumprod, rtol=0, atol=0)
    assert_loops_equal(ours, ddpm, num_inference_steps=num_inference_steps)


@pytest.mark.parametrize("timesteps", [[999, 700, 420, 99, 5, 0], [981, 500, 3]], ids=["ending-at-0", "ending-at-3"])
def test_sampling_loop_matches_ddpm_with_custom_timesteps(timesteps):
    ours, ddpm = schedulers(variance_type="fixed_large")
    assert_loops_equal(ours, ddpm, timesteps=timesteps)
    assert ours.num_inference_steps == len(timesteps)


def test_sampling_loop_matches_ddpm_with_one_generator_per_batch_element():
    assert_loops_equal(
        *schedulers(),
        make_generator=lambda: [torch.Generator().manual_seed(seed) for seed in range(SHAPE[0])],
        num_inference_steps=40,
    )


def test_float64_sampling_loop_matches_ddpm_and_keeps_the_dtype():
    ours, ddpm = schedulers(prediction_type="v_prediction")
    assert_loops_equal(ours, ddpm, dtype=torch.float64, num_inference_steps=30)
    output = ours.step(
        fake_model_output(torch.ones(SHAPE, dtype=torch.float16), 999), 999, torch.ones(SHAPE, dtype=torch.float16)
    )
    assert output.prev_sample.dtype == output.pred_original_sample.dtype == torch.float16


def test_trailing_spacing_returns_the_requested_number_of_steps():
    # DDPMScheduler's float `np.arange` overshoots for some counts and appends timestep -1 (as here, for 61 steps).
    ours, ddpm = schedulers(timestep_spacing="trailing")
    ours.set_timesteps(61)
    ddpm.set_timesteps(61)
    assert len(ddpm.timesteps) == 62 and ddpm.timesteps[-1] == -1
    assert len(ours.timesteps) == 61 and ours.timesteps[-1] >= 0
    torch.testing.assert_close(ours.timesteps, ddpm.timesteps[:61], rtol=0, atol=0)


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES, ids=["linear", "scaled_linear", "cosine", "trained"])
def test_add_noise_and_get_velocity_match_ddpm(beta_schedule):
    ours, ddpm = schedulers(**beta_schedule)
    generator = torch.Generator().manual_seed(0)
    original_samples = torch.randn(5, 3, 4, 4, generator=generator)
    noise = torch.randn(5, 3, 4, 4, generator=generator)
    timesteps = torch.tensor([0, 1, 250, 999, 500])
    torch.testing.assert_close(
        ours.add_noise(original_samples, noise, timesteps),
        ddpm.add_noise(original_samples, noise, timesteps),
        **TOLERANCE,
    )
    torch.testing.assert_close(
        ours.get_velocity(original_samples, noise, timesteps),
        ddpm.get_velocity(original_samples, noise, timesteps),
        **TOLERANCE,
    )
    # One timestep for the whole batch, as a Python int or a tensor, gives the same as a batch of equal timesteps.
    torch.testing.assert_close(
        ours.add_noise(original_samples, noise, 250), ddpm.add_noise(original_samples, noise, torch.full((5,), 250))
    )


def test_defaults_reproduce_the_notebook():
    scheduler = SimpleDDPMScheduler()
    expected = dict(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        variance_type="fixed_small",
        prediction_type="epsilon",
        clip_sample=False,
    )
    assert {key: scheduler.config[key] for key in expected} == expected
    torch.testing.assert_close(scheduler.betas, torch.linspace(1e-4, 0.02, 1000), rtol=0, atol=0)
    scheduler.set_timesteps(1000)
    # The notebook's loop draws from the global generator and only works for a batch of one (`if t > 0` on a tensor).
    shape = (1, *SHAPE[1:])
    torch.manual_seed(0)
    prev_samples, _ = sampling_loop(scheduler, None, shape=shape)
    torch.manual_seed(0)
    notebook_samples = DiffusionModel(fake_model_output).sample(1, shape[1:], "cpu")
    # The notebook computes the mean directly, DDPM through x_0 (formulas (11) and (7) of the paper): equal up to
    # float32 rounding, which grows to a few 1e-5 relative over 1000 steps.
    torch.testing.assert_close(prev_samples[-1], notebook_samples, rtol=1e-4, atol=1e-4)


def test_step_api():
    scheduler = SimpleDDPMScheduler()
    sample = torch.randn(SHAPE)
    model_output = fake_model_output(sample, 500)
    output = scheduler.step(model_output, 500, sample, generator=torch.Generator().manual_seed(0))
    assert isinstance(output, SimpleDDPMSchedulerOutput)
    prev_sample, pred_original_sample = scheduler.step(
        model_output, torch.tensor(500), sample, generator=torch.Generator().manual_seed(0), return_dict=False
    )
    torch.testing.assert_close(prev_sample, output.prev_sample, rtol=0, atol=0)
    torch.testing.assert_close(pred_original_sample, output.pred_original_sample, rtol=0, atol=0)
    assert scheduler.scale_model_input(sample, 500) is sample
    assert scheduler.init_noise_sigma == 1.0 and scheduler.order == 1 and len(scheduler) == 1000
    assert scheduler._compatibles == DDPMScheduler._compatibles
    assert {DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler} <= set(scheduler.compatibles)
    # Written from the DDPM equations, not on top of diffusers' implementation.
    assert not issubclass(SimpleDDPMScheduler, DDPMScheduler) and not hasattr(scheduling_simple_ddpm, "DDPMScheduler")


@pytest.mark.parametrize("timestep", [0, torch.tensor(0)], ids=["int", "tensor"])
def test_last_step_returns_the_mean_without_drawing_noise(timestep):
    scheduler = SimpleDDPMScheduler()
    sample = torch.randn(SHAPE)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    output = scheduler.step(fake_model_output(sample, 0), timestep, sample, generator=generator)
    assert torch.equal(generator.get_state(), state)
    torch.testing.assert_close(output.prev_sample, output.pred_original_sample)
    scheduler.step(fake_model_output(sample, 1), 1, sample, generator=generator)
    assert not torch.equal(generator.get_state(), state)


def test_step_takes_one_timestep_per_batch_element():
    scheduler = SimpleDDPMScheduler()
    scheduler.set_timesteps(50)
    sample = torch.randn(SHAPE)
    timesteps = torch.tensor([500, 0])
    model_output = fake_model_output(sample, timesteps.view(-1, 1, 1, 1))
    generators = [torch.Generator().manual_seed(seed) for seed in range(2)]
    batched = scheduler.step(model_output, timesteps, sample, generator=generators)
    for index, timestep in enumerate(timesteps.tolist()):
        alone = scheduler.step(
            model_output[index : index + 1],
            timestep,
            sample[index : index + 1],
            generator=torch.Generator().manual_seed(index),
        )
        torch.testing.assert_close(batched.prev_sample[index : index + 1], alone.prev_sample)
        torch.testing.assert_close(batched.pred_original_sample[index : index + 1], alone.pred_original_sample)


@pytest.mark.parametrize(
    "set_timesteps_kwargs",
    [None, dict(num_inference_steps=10), dict(timesteps=[981, 500, 3])],
    ids=["training", "spaced", "custom"],
)
def test_previous_timestep_matches_ddpm(set_timesteps_kwargs):
    ours, ddpm = schedulers()
    if set_timesteps_kwargs is not None:
        ours.set_timesteps(**set_timesteps_kwargs)
        ddpm.set_timesteps(**set_timesteps_kwargs)
    for t in ours.timesteps:
        assert ours.previous_timestep(int(t)) == int(ddpm.previous_timestep(t))
        assert ours.previous_timestep(t) == ddpm.previous_timestep(t)
        assert isinstance(ours.previous_timestep(t), torch.Tensor)


@pytest.mark.parametrize(
    "config",
    [{}, *BETA_SCHEDULES[1:], dict(prediction_type="v_prediction", timestep_spacing="trailing", clip_sample=True)],
)
@pytest.mark.parametrize("scheduler_class", COMPATIBLE_SCHEDULERS, ids=lambda c: c.__name__)
def test_compatible_schedulers_swap_in_with_the_same_process(scheduler_class, config):
    scheduler = SimpleDDPMScheduler(**config)
    swapped = scheduler_class.from_config(scheduler.config)
    torch.testing.assert_close(swapped.betas, scheduler.betas, rtol=0, atol=0)
    torch.testing.assert_close(swapped.alphas_cumprod, scheduler.alphas_cumprod, rtol=0, atol=0)
    for key in ("prediction_type", "timestep_spacing", "clip_sample", "steps_offset"):
        if key in swapped.config:
            # Also where our default differs from theirs: DDIMScheduler and DDPMScheduler default to clip_sample=True.
            assert swapped.config[key] == scheduler.config[key], key
    swapped_back = SimpleDDPMScheduler.from_config(swapped.config)
    torch.testing.assert_close(swapped_back.betas, scheduler.betas, rtol=0, atol=0)
    for key in ("prediction_type", "timestep_spacing", "beta_schedule", "num_train_timesteps"):
        assert swapped_back.config[key] == scheduler.config[key], key


@pytest.mark.parametrize("config", [{}, dict(variance_type="fixed_large", clip_sample_range=0.5)], ids=str)
def test_swaps_back_from_a_ddpm_scheduler_with_its_values(config):
    # `DDPMScheduler()` is left at its defaults (clip_sample=True): those values carry over, not ours.
    ddpm = DDPMScheduler(**config)
    ours = SimpleDDPMScheduler.from_config(ddpm.config)
    assert ours.config.clip_sample is True
    assert_loops_equal(ours, ddpm, num_inference_steps=20)
    assert DDPMScheduler.from_config(ours.config).config.thresholding is False


@pytest.mark.parametrize(
    ("ddpm_config", "message"),
    [
        (dict(thresholding=True), "thresholding"),
        (dict(rescale_betas_zero_snr=True), "rescale_betas_zero_snr"),
        (dict(variance_type="learned_range"), "variance_type"),
        (dict(beta_schedule="sigmoid"), "beta_schedule"),
    ],
    ids=str,
)
def test_from_config_refuses_ddpm_options_it_does_not_implement(ddpm_config, message):
    with pytest.raises(ValueError, match=message):
        SimpleDDPMScheduler.from_config(DDPMScheduler(**ddpm_config).config)


def test_from_config_refuses_an_unsupported_option_given_as_keyword():
    with pytest.raises(ValueError, match="thresholding"):
        SimpleDDPMScheduler.from_config(SimpleDDPMScheduler().config, thresholding=True)


@pytest.mark.parametrize(
    "config",
    [{}, dict(trained_betas=TRAINED_BETAS, prediction_type="sample", steps_offset=1)],
    ids=["default", "trained"],
)
def test_save_pretrained_round_trip(tmp_path, config):
    scheduler = SimpleDDPMScheduler(**config)
    scheduler.save_pretrained(tmp_path)
    loaded = SimpleDDPMScheduler.from_pretrained(tmp_path)
    assert dict(loaded.config) == dict(scheduler.config)
    torch.testing.assert_close(loaded.alphas_cumprod, scheduler.alphas_cumprod, rtol=0, atol=0)
    ddpm = DDPMScheduler.from_pretrained(tmp_path)
    assert ddpm.config.clip_sample is False
    torch.testing.assert_close(ddpm.alphas_cumprod, scheduler.alphas_cumprod, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(beta_schedule="sigmoid"), r"`beta_schedule` must be one of \('linear', 'scaled_linear', 'squaredcos"),
        (dict(prediction_type="x0"), r"`prediction_type` must be one of \('epsilon', 'sample', 'v_prediction'\)"),
        (dict(variance_type="learned"), r"`variance_type` must be one of \('fixed_small', 'fixed_large'\)"),
        (dict(timestep_spacing="uniform"), r"`timestep_spacing` must be one of \('leading', 'trailing', 'linspace'"),
        (dict(beta_start=0.02, beta_end=0.01), "0 < beta_start < beta_end < 1"),
        (dict(beta_start=0.02, beta_end=0.02), "0 < beta_start < beta_end < 1"),
        (dict(trained_betas=[0.1] * 999), r"`trained_betas` must hold one beta per training timestep, shape \(1000,\)"),
        (dict(trained_betas=[0.0] + [0.1] * 999), r"`trained_betas` must lie in \(0, 1\)"),
        (dict(num_train_timesteps=0), "`num_train_timesteps` must be a positive integer"),
        (dict(clip_sample_range=0.0), "`clip_sample_range` must be positive"),
        (dict(steps_offset=-1), "`steps_offset` must be a non-negative integer"),
    ],
    ids=str,
)
def test_bad_config_raises(config, message):
    with pytest.raises(ValueError, match=message):
        SimpleDDPMScheduler(**config)


@pytest.mark.parametrize(
    ("set_timesteps_kwargs", "message"),
    [
        (dict(num_inference_steps=1001), r"`num_inference_steps` must be between 1 and `num_train_timesteps` \(1000\)"),
        (dict(num_inference_steps=0), "`num_inference_steps` must be between 1"),
        (dict(), "Pass exactly one of `num_inference_steps` and `timesteps`"),
        (dict(num_inference_steps=10, timesteps=[5, 1]), "Pass exactly one of `num_inference_steps` and `timesteps`"),
        (dict(timesteps=[5, 7, 1]), "`timesteps` must be strictly descending, got 5 followed by 7 at position 0"),
        (dict(timesteps=[9, 5, 5]), "`timesteps` must be strictly descending, got 5 followed by 5 at position 1"),
        (dict(timesteps=[1000, 5]), r"`timesteps` must lie in \[0, 999\]"),
        (dict(timesteps=[5, -1]), r"`timesteps` must lie in \[0, 999\]"),
        (dict(timesteps=[]), "`timesteps` must be a non-empty list of integers"),
        (dict(timesteps=[5.5, 1.0]), "`timesteps` must be a non-empty list of integers"),
    ],
    ids=str,
)
def test_bad_set_timesteps_raises(set_timesteps_kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimpleDDPMScheduler().set_timesteps(**set_timesteps_kwargs)


def test_steps_offset_past_the_last_training_timestep_raises():
    with pytest.raises(ValueError, match=r"steps_offset=1 must lie in \[0, 999\]"):
        SimpleDDPMScheduler(steps_offset=1).set_timesteps(1000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loop_matches_ddpm_without_host_synchronisation():
    ours, ddpm = schedulers(variance_type="fixed_large", prediction_type="v_prediction")

    def make_generator() -> torch.Generator:
        return torch.Generator(device="cuda").manual_seed(0)

    assert_loops_equal(ours, ddpm, make_generator=make_generator, device="cuda", num_inference_steps=50)
    # The timesteps and the tables are on the GPU now: a whole loop, and `add_noise`, never wait for the host.
    torch.cuda.set_sync_debug_mode("error")
    try:
        prev_samples, _ = sampling_loop(ours, make_generator(), device="cuda")
        ours.add_noise(prev_samples[0], prev_samples[1], ours.timesteps[:2])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ddpm_prev_samples, _ = sampling_loop(ddpm, make_generator(), device="cuda")
    torch.testing.assert_close(prev_samples, ddpm_prev_samples, **TOLERANCE)


@pytest.mark.parametrize("option", ["beta_schedule", "variance_type", "prediction_type", "timestep_spacing"])
def test_choices_are_typed_as_literals_within_ddpm_ones(option):
    ours = inspect.signature(SimpleDDPMScheduler.__init__).parameters[option].annotation
    ddpm = inspect.signature(DDPMScheduler.__init__).parameters[option].annotation
    assert typing.get_origin(ours) is typing.Literal
    assert set(typing.get_args(ours)) <= set(typing.get_args(ddpm))
    # The allowed values that the scheduler checks are the ones its type names.
    SimpleDDPMScheduler(**{option: typing.get_args(ours)[-1]})
    with pytest.raises(ValueError, match=re.escape(f"`{option}` must be one of {typing.get_args(ours)}")):
        SimpleDDPMScheduler(**{option: "other"})


@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
def test_signal_to_noise_ratio_equals_diffusers_compute_snr(beta_schedule):
    scheduler = SimpleDDPMScheduler(beta_schedule=beta_schedule)
    timesteps = torch.tensor([0, 1, 90, 500, 999])
    expected = compute_snr(DDPMScheduler(beta_schedule=beta_schedule), timesteps)
    ratio = scheduler.signal_to_noise_ratio(timesteps, torch.zeros(5))
    assert ratio.shape == (5,) and ratio.dtype == torch.float32
    torch.testing.assert_close(ratio, expected, rtol=1e-5, atol=0)
