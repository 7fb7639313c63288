"""`SimpleDDPMPipeline`: unconditional (or class-conditional) image generation with a DDPM."""

import inspect
from typing import Any, Callable

import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

OUTPUT_TYPES = ("pil", "np", "pt")


class SimpleDDPMPipeline(DiffusionPipeline):
    r"""
    Pipeline for image generation with a denoising diffusion model.

    It runs any diffusers scheduler (`SimpleDDPMScheduler`, `DDPMScheduler`, `DDIMScheduler`,
    `DPMSolverMultistepScheduler`, `EulerDiscreteScheduler`, ...) with any image model that takes
    `(sample, timestep)` and returns `.sample` (`SimpleUNet2DModel`, diffusers' `UNet2DModel`).

    Args:
        unet ([`SimpleUNet2DModel`] or [`~diffusers.UNet2DModel`]): The denoising model.
        scheduler ([`SchedulerMixin`]): The scheduler used with `unet` to denoise the image.
        class_names (`list[str]`, *optional*): Names of the classes of a class-conditional `unet`, in label order, so
            that `class_labels` may be given by name.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, unet, scheduler, class_names: list[str] | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(class_names=list(class_names) if class_names is not None else None)

    @property
    def num_classes(self) -> int | None:
        """The number of classes of a class-conditional `unet`, `None` for an unconditional one."""
        return getattr(self.unet.config, "num_class_embeds", None)

    def _image_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        sample_size = self.unet.config.sample_size
        height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
        return (batch_size, self.unet.config.in_channels, height, width)

    def prepare_class_labels(
        self, class_labels: int | str | list[int | str] | torch.Tensor | None, batch_size: int
    ) -> torch.Tensor | None:
        """
        Turns `class_labels` into a long tensor of shape `(batch_size,)` on the pipeline's device.

        Args:
            class_labels (`int`, `str`, `list` or `torch.Tensor`, *optional*): One label for the whole batch, or one per
                image; a label is a class index or, when the pipeline knows `class_names`, a class name.
            batch_size (`int`): The number of images.

        Returns:
            `torch.Tensor` or `None`: the labels, `None` when `class_labels` is `None`.
        """
        if class_labels is None:
            return None
        if self.num_classes is None:
            raise ValueError(
                "`class_labels` were given, but this pipeline's unet is unconditional (its config has no "
                "`num_class_embeds`)."
            )
        if isinstance(class_labels, torch.Tensor):
            labels = class_labels.reshape(-1).long().cpu()
        else:
            names = self.config.class_names or []
            entries = class_labels if isinstance(class_labels, (list, tuple)) else [class_labels]
            indices = []
            for entry in entries:
                if isinstance(entry, str):
                    if entry not in names:
                        raise ValueError(f"`class_labels` has the unknown class name {entry!r}; known names: {names}.")
                    entry = names.index(entry)
                indices.append(int(entry))
            labels = torch.tensor(indices, dtype=torch.long)
        if labels.numel() == 1:
            labels = labels.expand(batch_size)
        if labels.numel() != batch_size:
            raise ValueError(
                f"`class_labels` holds {labels.numel()} labels, but `batch_size` is {batch_size}: give one label or one "
                "per image."
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"`class_labels` must lie in [0, {self.num_classes - 1}] (the unet has {self.num_classes} classes), got "
                f"{labels.tolist()}."
            )
        return labels.to(self.device)

    def prepare_extra_step_kwargs(self, generator: torch.Generator | list[torch.Generator] | None, eta: float) -> dict:
        """Passes `eta` and `generator` only to a scheduler whose `step` takes them."""
        step_parameters = set(inspect.signature(self.scheduler.step).parameters)
        extra_step_kwargs = {}
        if "eta" in step_parameters:
            extra_step_kwargs["eta"] = eta
        if "generator" in step_parameters:
            extra_step_kwargs["generator"] = generator
        return extra_step_kwargs

    def predict_noise(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        class_labels: torch.Tensor | None,
        guidance_scale: float,
    ) -> torch.Tensor:
        """
        Runs the model once on `latents`; with classifier-free guidance, the conditional and unconditional halves run in
        one batched forward pass and are mixed as `uncond + guidance_scale * (cond - uncond)`.

        Args:
            latents (`torch.Tensor`): The scaled model input.
            timestep (`torch.Tensor`): The current timestep.
            class_labels (`torch.Tensor`, *optional*): The labels of a class-conditional model.
            guidance_scale (`float`): The guidance scale; 1.0 means a plain conditional pass.
        """
        if class_labels is None:
            return self.unet(latents, timestep).sample
        if guidance_scale == 1.0:
            return self.unet(latents, timestep, class_labels=class_labels).sample
        null_labels = torch.full_like(class_labels, self.num_classes)
        prediction = self.unet(
            torch.cat([latents, latents]), timestep, class_labels=torch.cat([class_labels, null_labels])
        ).sample
        conditional, unconditional = prediction.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def check_inputs(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        num_inference_steps: int,
        output_type: str,
        latents: torch.Tensor | None,
        guidance_scale: float,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """Raises a `ValueError` naming the first argument of `__call__` that is out of range."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"`generator` is a list of {len(generator)} generators, but `batch_size` is {batch_size}: give one "
                "generator per image."
            )
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if latents is not None and tuple(latents.shape) != self._image_shape(batch_size):
            raise ValueError(
                f"`latents` must have shape {self._image_shape(batch_size)} for `batch_size` {batch_size}, got "
                f"{tuple(latents.shape)}."
            )
        if guidance_scale < 1.0:
            raise ValueError(f"`guidance_scale` must be at least 1.0 (1.0 means no guidance), got {guidance_scale}.")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` has {unknown}; allowed: {self._callback_tensor_inputs}."
            )

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 1000,
        output_type: str = "pil",
        return_dict: bool = True,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        callback_on_step_end: Callable[["SimpleDDPMPipeline", int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
        class_labels: int | str | list[int | str] | torch.Tensor | None = None,
        guidance_scale: float = 1.0,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Generates images.

        Args:
            batch_size (`int`, *optional*, defaults to 1): The number of images to generate.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): Makes generation deterministic. A list
                holds one generator per image, and each image is then what a one-image run with its generator gives.
            num_inference_steps (`int`, *optional*, defaults to 1000): The number of denoising steps.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"` (`PIL.Image.Image`, mode `"L"` for grayscale),
                `"np"` (`np.ndarray` of shape `(batch, height, width, channels)` in [0, 1]) or `"pt"` (`torch.Tensor` of
                shape `(batch, channels, height, width)` in [0, 1]).
            return_dict (`bool`, *optional*, defaults to `True`): Whether to return an `ImagePipelineOutput` or a tuple.
            latents (`torch.Tensor`, *optional*): Initial noise of shape `(batch, channels, height, width)`; drawn with
                `generator` when not given. It is scaled by the scheduler's `init_noise_sigma`.
            eta (`float`, *optional*, defaults to 0.0): η of DDIM; passed only to schedulers whose `step` takes it.
            callback_on_step_end (`Callable`, *optional*): Called as `callback_on_step_end(self, step_index, timestep,
                callback_kwargs)` after every step; it may return a dict that replaces `latents`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*, defaults to `["latents"]`): The tensors put in
                `callback_kwargs`.
            class_labels (`int`, `str`, `list` or `torch.Tensor`, *optional*): For a class-conditional unet, the class of
                every image (one label for all, or one per image), as indices or as names from `class_names`.
            guidance_scale (`float`, *optional*, defaults to 1.0): Classifier-free guidance scale for a class-conditional
                unet; 1.0 means no guidance.

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the generated images.
        """
        self.check_inputs(
            batch_size,
            generator,
            num_inference_steps,
            output_type,
            latents,
            guidance_scale,
            callback_on_step_end_tensor_inputs,
        )
        labels = self.prepare_class_labels(class_labels, batch_size)
        if latents is None:
            latents = randn_tensor(
                self._image_shape(batch_size), generator=generator, device=self.device, dtype=self.unet.dtype
            )
        latents = latents.to(device=self.device, dtype=self.unet.dtype) * self.scheduler.init_noise_sigma

        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        timesteps = self.scheduler.timesteps
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step_index, timestep in enumerate(timesteps):
                model_input = self.scheduler.scale_model_input(latents, timestep)
                model_output = self.predict_noise(model_input, timestep, labels, guidance_scale)
                latents = self.scheduler.step(model_output, timestep, latents, **extra_step_kwargs).prev_sample
                if callback_on_step_end is not None:
                    step_tensors = {"latents": latents}
                    callback_kwargs = {name: step_tensors[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs: dict[str, Any] = callback_on_step_end(self, step_index, timestep, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                progress_bar.update()

        images = (latents / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            images = images.float().cpu()
        else:
            images = images.float().cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
