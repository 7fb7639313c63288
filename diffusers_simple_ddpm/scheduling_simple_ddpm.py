"""`SimpleDDPMScheduler`: the notebook's DDPM sampler as a diffusers scheduler, built on precomputed tables."""

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, FrozenDict, register_to_config
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

# The choices of the config, typed as diffusers types them; the tuples of allowed values are read off the types.
BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
VarianceType = Literal["fixed_small", "fixed_large"]
PredictionType = Literal["epsilon", "sample", "v_prediction"]
TimestepSpacing = Literal["leading", "trailing", "linspace"]
BETA_SCHEDULES = get_args(BetaSchedule)
VARIANCE_TYPES = get_args(VarianceType)
PREDICTION_TYPES = get_args(PredictionType)
TIMESTEP_SPACINGS = get_args(TimestepSpacing)
# Options of diffusers' `DDPMScheduler` that this scheduler does not implement, with the value that turns them off.
# `from_config` refuses a configuration that turns one of them on instead of silently sampling differently.
UNSUPPORTED_DDPM_OPTIONS = {"thresholding": False, "rescale_betas_zero_snr": False}
# Largest beta of the cosine schedule, as in Improved DDPM (Nichol & Dhariwal, 2021) and diffusers.
COSINE_MAX_BETA = 0.999
# Floor of the posterior variance, as in diffusers' `DDPMScheduler`.
MIN_VARIANCE = 1e-20


@dataclass
class SimpleDDPMSchedulerOutput(BaseOutput):
    """
    Output class for the scheduler's `step` function.

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)` for images):
            Computed sample `x_{t-1}` of the previous timestep. `prev_sample` is the next model input in the denoising
            loop.
        pred_original_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)` for images):
            The predicted denoised sample `x_0` from the model output at the current timestep, to preview progress or
            for guidance.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class SimpleDDPMScheduler(SchedulerMixin, ConfigMixin):
    r"""
    Ancestral sampling of Denoising Diffusion Probabilistic Models (Ho et al., 2020,
    https://huggingface.co/papers/2006.11239), written from the DDPM equations with every per-timestep coefficient
    precomputed in tables.

    The defaults are the teaching notebook's process: 1000 linear betas from `1e-4` to `0.02`, an epsilon-predicting
    model and the posterior variance. The configuration keys carry the names and meanings of diffusers'
    [`DDPMScheduler`], so `DDIMScheduler.from_config(scheduler.config)` (or any of `_compatibles`) swaps in with the
    same noise schedule and `SimpleDDPMScheduler.from_config(ddpm_scheduler.config)` swaps back. Every value is stored
    as explicitly set, so a swapped-in scheduler receives this scheduler's values (`clip_sample=False` included) rather
    than its own defaults. [`DDPMScheduler`] options that are not implemented here (`thresholding`,
    `rescale_betas_zero_snr`) are accepted by `from_config` only when turned off, the learned variance types and the
    `"sigmoid"` beta schedule are refused by `__init__`.

    `step` and `add_noise` only gather from tables kept on the sample's device and in its dtype (copied once per device
    and dtype), so a denoising loop on a GPU never waits for the host.

    This scheduler inherits from [`SchedulerMixin`] and [`ConfigMixin`], which provide saving and loading.

    Args:
        num_train_timesteps (`int`, defaults to 1000):
            The number of diffusion steps the model was trained with.
        beta_start (`float`, defaults to 0.0001):
            The first beta of the `"linear"` and `"scaled_linear"` schedules.
        beta_end (`float`, defaults to 0.02):
            The last beta of the `"linear"` and `"scaled_linear"` schedules; must be larger than `beta_start`.
        beta_schedule (`str`, defaults to `"linear"`):
            `"linear"` (betas evenly spaced), `"scaled_linear"` (square roots of the betas evenly spaced) or
            `"squaredcos_cap_v2"` (the cosine schedule of Improved DDPM, which ignores `beta_start` and `beta_end`).
        trained_betas (`np.ndarray` or `list[float]`, *optional*):
            Betas given directly, one per training timestep, each in (0, 1); they replace `beta_schedule`.
        variance_type (`str`, defaults to `"fixed_small"`):
            The variance of the noise added at each step: `"fixed_small"` is the posterior variance
            `beta_t * (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)`, `"fixed_large"` is `beta_t`.
        clip_sample (`bool`, defaults to `False`):
            Whether to clip the predicted original sample to `[-clip_sample_range, clip_sample_range]`.
        prediction_type (`str`, defaults to `"epsilon"`):
            What the model predicts: `"epsilon"` (the noise), `"sample"` (the original sample) or `"v_prediction"`
            (the velocity of section 2.4 of [Imagen Video](https://huggingface.co/papers/2210.02303)).
        clip_sample_range (`float`, defaults to 1.0):
            The positive bound used by `clip_sample`.
        timestep_spacing (`str`, defaults to `"leading"`):
            How `set_timesteps` spaces fewer inference steps over the training timesteps: `"leading"`, `"trailing"` or
            `"linspace"`, as in Table 2 of [Common Diffusion Noise Schedules and Sample Steps are
            Flawed](https://huggingface.co/papers/2305.08891).
        steps_offset (`int`, defaults to 0):
            An offset added to the `"leading"` inference timesteps, as some model families require.
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: BetaSchedule = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        variance_type: VarianceType = "fixed_small",
        clip_sample: bool = False,
        prediction_type: PredictionType = "epsilon",
        clip_sample_range: float = 1.0,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
    ):
        for argument, value, allowed in (
            ("beta_schedule", beta_schedule, BETA_SCHEDULES),
            ("variance_type", variance_type, VARIANCE_TYPES),
            ("prediction_type", prediction_type, PREDICTION_TYPES),
            ("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS),
        ):
            if value not in allowed:
                raise ValueError(f"`{argument}` must be one of {allowed}, got {value!r}.")
        if num_train_timesteps < 1:
            raise ValueError(f"`num_train_timesteps` must be a positive integer, got {num_train_timesteps}.")
        if clip_sample_range <= 0:
            raise ValueError(f"`clip_sample_range` must be positive, got {clip_sample_range}.")
        if steps_offset < 0:
            raise ValueError(f"`steps_offset` must be a non-negative integer, got {steps_offset}.")

        self.betas = self._make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

        # Standard deviation of the initial noise distribution.
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self._set_schedule(np.arange(num_train_timesteps - 1, -1, -1, dtype=np.int64), device=None)

        # `register_to_config` lists the arguments left at their defaults in `_use_default_values`, and a scheduler
        # built with `from_config` replaces those with its own defaults (`DDIMScheduler` would turn `clip_sample` on).
        # Recording every value as explicit makes a swapped-in scheduler sample the same process.
        self.register_to_config(_use_default_values=[])

    @staticmethod
    def _make_betas(
        num_train_timesteps: int,
        beta_start: float,
        beta_end: float,
        beta_schedule: BetaSchedule,
        trained_betas: np.ndarray | list[float] | None,
    ) -> torch.Tensor:
        """
        Builds the float32 betas, computed as diffusers' `DDPMScheduler` computes them so both share one schedule.

        Args:
            num_train_timesteps (`int`): The number of betas.
            beta_start (`float`): The first beta of the linear schedules.
            beta_end (`float`): The last beta of the linear schedules.
            beta_schedule (`str`): One of `BETA_SCHEDULES`.
            trained_betas (`np.ndarray` or `list[float]`, *optional*): Betas that replace the schedule.

        Returns:
            `torch.Tensor`: The betas, of shape `(num_train_timesteps,)`.
        """
        if trained_betas is not None:
            betas = torch.tensor(trained_betas, dtype=torch.float32)
            if betas.shape != (num_train_timesteps,):
                raise ValueError(
                    f"`trained_betas` must hold one beta per training timestep, shape ({num_train_timesteps},), got "
                    f"shape {tuple(betas.shape)}."
                )
            if not bool(((betas > 0) & (betas < 1)).all()):
                raise ValueError(
                    f"`trained_betas` must lie in (0, 1), got values from {betas.min().item()} to {betas.max().item()}."
                )
            return betas
        if beta_schedule == "squaredcos_cap_v2":
            # alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2 and beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t).
            steps = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
            alpha_bar = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
            return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=COSINE_MAX_BETA).to(torch.float32)
        if not 0 < beta_start < beta_end < 1:
            raise ValueError(
                f"`beta_start` and `beta_end` must satisfy 0 < beta_start < beta_end < 1, got beta_start={beta_start} "
                f"and beta_end={beta_end}."
            )
        if beta_schedule == "linear":
            return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2

    def _set_schedule(self, timesteps: np.ndarray, device: str | torch.device | None) -> None:
        """
        Stores the inference timesteps and precomputes, for every training timestep `t`, the previous timestep of the
        schedule and the coefficients of formulas (7) and (15) of the DDPM paper, in float32 as `DDPMScheduler`
        computes them.

        Args:
            timesteps (`np.ndarray`): Strictly descending inference timesteps in `[0, num_train_timesteps)`.
            device (`str` or `torch.device`, *optional*): The device `self.timesteps` is moved to.
        """
        self.timesteps = torch.from_numpy(timesteps).to(device)

        # The previous timestep of `t` is the largest scheduled timestep below it, or -1 (the chain ends at x_0).
        ascending = timesteps[::-1]
        all_timesteps = np.arange(self.config.num_train_timesteps)
        below = np.searchsorted(ascending, all_timesteps, side="left") - 1
        self._previous_timesteps = torch.from_numpy(np.where(below >= 0, ascending[below.clip(min=0)], -1))

        alpha_prod_t = self.alphas_cumprod
        alpha_prod_t_prev = torch.where(
            self._previous_timesteps >= 0,
            self.alphas_cumprod[self._previous_timesteps.clamp(min=0)],
            torch.tensor(1.0),
        )
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t
        if self.config.variance_type == "fixed_small":
            variance = torch.clamp(beta_prod_t_prev / beta_prod_t * current_beta_t, min=MIN_VARIANCE)
        else:
            variance = current_beta_t

        self._tables = {
            "sqrt_alpha_prod": alpha_prod_t**0.5,
            "sqrt_one_minus_alpha_prod": beta_prod_t**0.5,
            "pred_original_sample_coeff": alpha_prod_t_prev**0.5 * current_beta_t / beta_prod_t,
            "current_sample_coeff": current_alpha_t**0.5 * beta_prod_t_prev / beta_prod_t,
            # Noise is added only for t > 0, as in `DDPMScheduler`: the step from t = 0 returns the mean.
            "noise_std": torch.where(torch.from_numpy(all_timesteps) > 0, variance**0.5, torch.tensor(0.0)),
        }
        self._device_tables: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    @classmethod
    def from_config(
        cls, config: FrozenDict | dict[str, Any] = None, return_unused_kwargs: bool = False, **kwargs
    ) -> "SimpleDDPMScheduler | tuple[SimpleDDPMScheduler, dict[str, Any]]":
        r"""
        Instantiates the scheduler from a configuration, such as the `config` of another scheduler.

        Two departures from diffusers' `from_config`, so that the scheduler samples the process `config` describes:

        - diffusers drops keys that `__init__` does not take, so a `DDPMScheduler` configuration that turns on one of
          its options not implemented here (`thresholding`, `rescale_betas_zero_snr`) raises a `ValueError` instead
          of being sampled differently without notice.
        - diffusers replaces the values a scheduler was left with by default (its `_use_default_values`) with this
          scheduler's defaults; here every value of `config` is kept, so `DDPMScheduler()`'s `clip_sample=True`
          carries over.

        Args:
            config (`dict[str, Any]`):
                The configuration, for example `DDPMScheduler(...).config`.
            return_unused_kwargs (`bool`, defaults to `False`):
                Whether to also return the keyword arguments that the scheduler did not use.
            kwargs (`dict[str, Any]`, *optional*):
                Values that override those of `config`.

        Returns:
            [`SimpleDDPMScheduler`], or a tuple of it and the dictionary of unused keyword arguments.
        """
        if isinstance(config, dict):
            config = {key: value for key, value in config.items() if key != "_use_default_values"}
            for source in (config, kwargs):
                for option, off_value in UNSUPPORTED_DDPM_OPTIONS.items():
                    if source.get(option, off_value) != off_value:
                        raise ValueError(
                            f"`{option}={source[option]!r}` is not supported by {cls.__name__}, which implements "
                            f"DDPM only with `{option}={off_value!r}`; use diffusers' `DDPMScheduler` for it."
                        )
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        """
        Returns the sample unchanged: DDPM needs no input scaling, the method exists for interchangeability with
        schedulers that scale the denoising model's input.

        Args:
            sample (`torch.Tensor`): The input sample.
            timestep (`int`, *optional*): The current timestep in the diffusion chain.

        Returns:
            `torch.Tensor`: The same sample.
        """
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        """
        Sets the discrete timesteps of the denoising chain (to run before inference).

        Args:
            num_inference_steps (`int`, *optional*):
                The number of denoising steps, at most `num_train_timesteps`, spaced as `timestep_spacing` says. Give
                either it or `timesteps`.
            device (`str` or `torch.device`, *optional*):
                The device `self.timesteps` is moved to. If `None`, they stay on the CPU.
            timesteps (`list[int]`, *optional*):
                Custom timesteps, strictly descending, in `[0, num_train_timesteps)`. Give either them or
                `num_inference_steps`.
        """
        num_train_timesteps = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError(
                "Pass exactly one of `num_inference_steps` and `timesteps`, got "
                f"num_inference_steps={num_inference_steps} and timesteps={timesteps}."
            )
        if timesteps is not None:
            timesteps = np.asarray(timesteps)
            if timesteps.ndim != 1 or len(timesteps) == 0 or not np.issubdtype(timesteps.dtype, np.integer):
                raise ValueError(f"`timesteps` must be a non-empty list of integers, got {timesteps.tolist()}.")
            timesteps = timesteps.astype(np.int64)
            source = "`timesteps`"
        else:
            if not 1 <= num_inference_steps <= num_train_timesteps:
                raise ValueError(
                    f"`num_inference_steps` must be between 1 and `num_train_timesteps` ({num_train_timesteps}), "
                    f"got {num_inference_steps}."
                )
            timesteps = self._spaced_timesteps(num_inference_steps)
            source = (
                f"The timesteps from num_inference_steps={num_inference_steps}, "
                f"timestep_spacing={self.config.timestep_spacing!r} and steps_offset={self.config.steps_offset}"
            )

        descending = np.diff(timesteps) < 0
        if not descending.all():
            position = int(np.argmin(descending))
            raise ValueError(
                f"{source} must be strictly descending, got {timesteps[position]} followed by "
                f"{timesteps[position + 1]} at position {position}."
            )
        if timesteps[0] >= num_train_timesteps or timesteps[-1] < 0:
            raise ValueError(
                f"{source} must lie in [0, {num_train_timesteps - 1}] (`num_train_timesteps` - 1), got values from "
                f"{timesteps[-1]} to {timesteps[0]}."
            )
        self.num_inference_steps = len(timesteps)
        self._set_schedule(timesteps, device)

    def _spaced_timesteps(self, num_inference_steps: int) -> np.ndarray:
        """
        Spaces `num_inference_steps` descending timesteps over the training timesteps as `DDPMScheduler` does.

        Args:
            num_inference_steps (`int`): The number of timesteps.

        Returns:
            `np.ndarray`: The int64 timesteps, in descending order.
        """
        num_train_timesteps = self.config.num_train_timesteps
        if self.config.timestep_spacing == "linspace":
            timesteps = np.linspace(0, num_train_timesteps - 1, num_inference_steps).round()[::-1]
        elif self.config.timestep_spacing == "leading":
            step_ratio = num_train_timesteps // num_inference_steps
            timesteps = (np.arange(num_inference_steps) * step_ratio)[::-1] + self.config.steps_offset
        else:
            step_ratio = num_train_timesteps / num_inference_steps
            # `np.arange` with a float step can yield one value too many (a final -1); keep `num_inference_steps`.
            timesteps = np.round(np.arange(num_train_timesteps, 0, -step_ratio))[:num_inference_steps] - 1
        return timesteps.astype(np.int64)

    def _tables_on(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """
        Returns the coefficient tables on `device` in `dtype`, copied there once and cached.

        Args:
            device (`torch.device`): The device of the sample.
            dtype (`torch.dtype`): The dtype of the sample.

        Returns:
            `dict[str, torch.Tensor]`: The tables, each of shape `(num_train_timesteps,)`.
        """
        key = (device, dtype)
        if key not in self._device_tables:
            self._device_tables[key] = {
                name: table.to(device=device, dtype=dtype) for name, table in self._tables.items()
            }
        return self._device_tables[key]

    def _gather(self, name: str, timesteps: int | torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """
        Gathers a table's values at `timesteps`, shaped to broadcast over `sample`, without waiting for the device.

        Args:
            name (`str`): The name of the table.
            timesteps (`int` or `torch.Tensor`): One timestep, or one per batch element.
            sample (`torch.Tensor`): The tensor the values are combined with; the table follows its device and dtype.

        Returns:
            `torch.Tensor`: The values, of shape `(batch_size or 1, 1, ..., 1)`.
        """
        table = self._tables_on(sample.device, sample.dtype)[name]
        if isinstance(timesteps, torch.Tensor) and (timesteps.device.type != "cpu" or timesteps.ndim > 0):
            # `index_select`, unlike indexing with a 0-d tensor, never reads the index back to the host.
            values = table.index_select(0, timesteps.to(table.device).reshape(-1))
        else:
            # A Python int or CPU scalar selects a view of the table without a copy.
            values = table[int(timesteps)]
        return values.reshape(-1, *([1] * (sample.ndim - 1)))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> SimpleDDPMSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """
        Predicts the sample at the previous timestep by reversing the diffusion process: estimates `x_0` from the
        model output (formula (15) of the DDPM paper), then samples `x_{t-1}` from the posterior `q(x_{t-1} | x_t,
        x_0)` (formulas (6) and (7)).

        Args:
            model_output (`torch.Tensor`):
                The direct output of the learned diffusion model.
            timestep (`int` or `torch.Tensor`):
                The current timestep, or one per batch element. The previous timestep is the next one of the schedule
                set by `set_timesteps` (for a timestep off the schedule, the largest scheduled timestep below it).
            sample (`torch.Tensor`):
                The current sample `x_t` of the diffusion process.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                A random number generator, or one per batch element, for the added noise. Noise is drawn as
                `DDPMScheduler` draws it and added only where `timestep > 0`; for a timestep on the GPU, which is not
                read back to the host, it is drawn at `timestep == 0` too and multiplied by zero.
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`SimpleDDPMSchedulerOutput`] or a tuple.

        Returns:
            [`SimpleDDPMSchedulerOutput`] or `tuple`:
                The output, or the tuple `(prev_sample, pred_original_sample)` when `return_dict` is `False`.
        """
        sqrt_alpha_prod = self._gather("sqrt_alpha_prod", timestep, sample)
        sqrt_one_minus_alpha_prod = self._gather("sqrt_one_minus_alpha_prod", timestep, sample)
        if self.config.prediction_type == "epsilon":
            pred_original_sample = (sample - sqrt_one_minus_alpha_prod * model_output) / sqrt_alpha_prod
        elif self.config.prediction_type == "sample":
            pred_original_sample = model_output
        else:
            pred_original_sample = sqrt_alpha_prod * sample - sqrt_one_minus_alpha_prod * model_output
        if self.config.clip_sample:
            pred_original_sample = pred_original_sample.clamp(
                -self.config.clip_sample_range, self.config.clip_sample_range
            )

        prev_sample = (
            self._gather("pred_original_sample_coeff", timestep, sample) * pred_original_sample
            + self._gather("current_sample_coeff", timestep, sample) * sample
        )

        timestep_on_host = not isinstance(timestep, torch.Tensor) or timestep.device.type == "cpu"
        if not timestep_on_host or bool((torch.as_tensor(timestep) > 0).any()):
            noise = randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
            prev_sample = prev_sample + self._gather("noise_std", timestep, sample) * noise

        if not return_dict:
            return (prev_sample, pred_original_sample)
        return SimpleDDPMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor
    ) -> torch.Tensor:
        """
        Diffuses the original samples to `timesteps` (the forward process, formula (4) of the DDPM paper):
        `sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * noise`.

        Args:
            original_samples (`torch.Tensor`): The clean samples `x_0`.
            noise (`torch.Tensor`): The noise, of the same shape.
            timesteps (`int` or `torch.Tensor`): One timestep, or one per sample.

        Returns:
            `torch.Tensor`: The noisy samples `x_t`.
        """
        return (
            self._gather("sqrt_alpha_prod", timesteps, original_samples) * original_samples
            + self._gather("sqrt_one_minus_alpha_prod", timesteps, original_samples) * noise
        )

    def signal_to_noise_ratio(self, timesteps: int | torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """
        The signal-to-noise ratio `alpha_bar_t / (1 - alpha_bar_t)` at `timesteps` (what diffusers'
        `training_utils.compute_snr` gives), from the tables cached on the sample's device: no copy per call.

        Args:
            timesteps (`int` or `torch.Tensor`): One timestep, or one per sample.
            sample (`torch.Tensor`): The tensor the ratio is combined with; it follows its device and dtype and
                broadcasts over its shape.

        Returns:
            `torch.Tensor`: The ratio, of shape `(batch_size or 1, 1, ..., 1)`.
        """
        signal = self._gather("sqrt_alpha_prod", timesteps, sample)
        noise = self._gather("sqrt_one_minus_alpha_prod", timesteps, sample)
        return (signal / noise) ** 2

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor) -> torch.Tensor:
        """
        Computes the velocity target of `v_prediction`: `sqrt(alpha_bar_t) * noise - sqrt(1 - alpha_bar_t) * x_0`.

        Args:
            sample (`torch.Tensor`): The clean samples `x_0`.
            noise (`torch.Tensor`): The noise, of the same shape.
            timesteps (`int` or `torch.Tensor`): One timestep, or one per sample.

        Returns:
            `torch.Tensor`: The velocity.
        """
        return (
            self._gather("sqrt_alpha_prod", timesteps, sample) * noise
            - self._gather("sqrt_one_minus_alpha_prod", timesteps, sample) * sample
        )

    def previous_timestep(self, timestep: int | torch.Tensor) -> int | torch.Tensor:
        """
        Returns the timestep that follows `timestep` in the denoising chain, -1 after the last one.

        Args:
            timestep (`int` or `torch.Tensor`): The current timestep, or a tensor of them.

        Returns:
            `int` or `torch.Tensor`: The previous timestep, a tensor on the same device for a tensor input.
        """
        if isinstance(timestep, torch.Tensor):
            return self._previous_timesteps.to(timestep.device)[timestep]
        return int(self._previous_timesteps[timestep])

    def __len__(self) -> int:
        return self.config.num_train_timesteps
