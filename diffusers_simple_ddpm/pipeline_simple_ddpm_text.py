"""
`SimpleDDPMTextPipeline`: text-to-image generation with a DDPM whose unet attends to a frozen transformers text
encoder, with classifier-free guidance against the empty prompt (Stable Diffusion's conventions, in pixel space).

Like `pipeline_simple_ddpm`, this module imports only the standard library, torch, diffusers and transformers:
`save_pretrained(..., include_code=True)` copies it, with `pipeline_simple_ddpm.py` that it builds on, into a pipeline
repository, which `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` runs without the package.
"""

import os
from typing import Callable

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import logging
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .pipeline_simple_ddpm import SimpleDDPMPipeline, _copy_module_source, _is_finite_number, _is_integer

logger = logging.get_logger(__name__)


def pad_text_embeddings(
    embeddings: torch.Tensor, attention_mask: torch.Tensor, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Pads token embeddings (zeros) and their attention mask (0 = discard) at the end to `length` tokens, so that
    prompts encoded separately batch together; the unet ignores the padding through the mask.

    Args:
        embeddings (`torch.Tensor`): Token embeddings of shape `(batch, tokens, dim)`.
        attention_mask (`torch.Tensor`): Their mask of shape `(batch, tokens)`, 1 = keep.
        length (`int`): The number of tokens to pad to, at least `tokens`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: the padded embeddings and mask.
    """
    missing = length - embeddings.shape[1]
    if missing < 0:
        raise ValueError(f"`length` ({length}) is shorter than the embeddings ({embeddings.shape[1]} tokens).")
    embeddings = torch.nn.functional.pad(embeddings, (0, 0, 0, missing))
    attention_mask = torch.nn.functional.pad(attention_mask, (0, missing))
    return embeddings, attention_mask


@torch.no_grad()
def encode_text(
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: PreTrainedModel,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Encodes texts into the token embeddings the unet attends to: the last hidden state of `text_encoder`, with the
    tokenizer's attention mask. Texts are padded to the longest of them and truncated to the encoder's length.

    The pipeline encodes prompts with it and the training program its captions, so both see the same embeddings.

    Args:
        texts (`list[str]`): The texts; `""` is the empty prompt of classifier-free guidance.
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer of `text_encoder`.
        text_encoder (`PreTrainedModel`): A transformers encoder (BERT, CLIP's text model, T5's encoder, ...) whose
            first output is the last hidden state.
        device (`torch.device` or `str`, *optional*): Where to run the encoder; defaults to the encoder's device.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: embeddings `(len(texts), tokens, hidden_size)` in the encoder's dtype and
        the long attention mask `(len(texts), tokens)`, 1 = keep.
    """
    max_length = min(
        tokenizer.model_max_length, getattr(text_encoder.config, "max_position_embeddings", tokenizer.model_max_length)
    )
    inputs = tokenizer(list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    untruncated = tokenizer(list(texts), padding="longest", return_tensors="pt").input_ids
    if untruncated.shape[1] > inputs.input_ids.shape[1]:
        logger.warning(f"Prompts longer than {max_length} tokens, the text encoder's limit, were truncated.")
    device = device if device is not None else text_encoder.device
    input_ids, attention_mask = inputs.input_ids.to(device), inputs.attention_mask.to(device)
    embeddings = text_encoder(input_ids, attention_mask=attention_mask)[0]
    return embeddings, attention_mask


def check_negative_prompt_count(negative_prompt: str | list[str] | None, num_prompts: int) -> None:
    """Raises a `ValueError` unless `negative_prompt` is `None`, one string, or one string per prompt."""
    if isinstance(negative_prompt, (list, tuple)) and len(negative_prompt) != num_prompts:
        raise ValueError(
            f"`negative_prompt` holds {len(negative_prompt)} prompts, but there are {num_prompts} prompts: give one "
            "negative prompt, or one per prompt."
        )


class SimpleDDPMTextPipeline(SimpleDDPMPipeline):
    r"""
    Pipeline for text-to-image generation with a denoising diffusion model conditioned on a text encoder's token
    embeddings through cross-attention.

    It runs any diffusers scheduler with a unet that takes `(sample, timestep, encoder_hidden_states=...,
    encoder_attention_mask=...)` (`SimpleUNet2DModel` with `cross_attention_dim`, diffusers' `UNet2DConditionModel`).
    Classifier-free guidance mixes the prediction for the prompt with the one for the negative prompt, the empty
    prompt by default, which the training program teaches the model by dropping captions.

    Saving, loading (from a folder, the Hub or its cache), the model card and `push_to_hub` are those of
    [`SimpleDDPMPipeline`]; the text encoder and tokenizer are saved in `text_encoder/` and `tokenizer/`.

    Args:
        unet ([`SimpleUNet2DModel`]): The denoising model, with `cross_attention_dim` equal to the encoder's width.
        scheduler ([`SchedulerMixin`]): The scheduler used with `unet` to denoise the image.
        text_encoder ([`~transformers.PreTrainedModel`]): The frozen text encoder, such as a `BertModel`.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): Its tokenizer.
        text_encoder_source (`str`, *optional*): Where the encoder's weights come from, for the model card (such as
            `"sentence-transformers/all-MiniLM-L6-v2"`).
        text_encoder_license (`str`, *optional*): The license of the encoder's weights, for the model card.
        sample_prompts (`list[str]`, *optional*): Prompts that suit the model, such as one per class of its training
            data; the model card's usage example and `simple-ddpm sample` without `--prompt` use them.
    """

    model_cpu_offload_seq = "text_encoder->unet"
    _optional_components = []

    def __init__(
        self,
        unet,
        scheduler,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        text_encoder_source: str | None = None,
        text_encoder_license: str | None = None,
        sample_prompts: list[str] | None = None,
    ):
        super(SimpleDDPMPipeline, self).__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self.register_to_config(
            text_encoder_source=text_encoder_source,
            text_encoder_license=text_encoder_license,
            sample_prompts=list(sample_prompts) if sample_prompts is not None else None,
        )
        self.training_details = None
        self.model_card_files = {}
        self._text_conditioning = None

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        r"""
        Encodes the prompt, and for classifier-free guidance the negative prompt, into the unet's
        `encoder_hidden_states`, each repeated `num_images_per_prompt` times.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompt(s); not needed when `prompt_embeds` is given.
            device (`torch.device`, *optional*): Where to put the embeddings; defaults to the pipeline's execution
                device.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images generated per prompt.
            do_classifier_free_guidance (`bool`, *optional*, defaults to `True`): Whether to also encode the negative
                prompt.
            negative_prompt (`str` or `list[str]`, *optional*): What to guide away from; defaults to the empty prompt
                `""`, the unconditional prediction the model learnt from dropped captions.
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed embeddings `(batch, tokens, dim)` instead of
                `prompt`.
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed embeddings instead of `negative_prompt`.
            prompt_attention_mask (`torch.Tensor`, *optional*): The mask `(batch, tokens)` of `prompt_embeds`, 1 = keep;
                all ones when not given.
            negative_prompt_attention_mask (`torch.Tensor`, *optional*): The mask of `negative_prompt_embeds`.

        Returns:
            `tuple`: `prompt_embeds`, `negative_prompt_embeds` (`None` without guidance), `prompt_attention_mask` and
            `negative_prompt_attention_mask` (`None` without guidance), with `batch * num_images_per_prompt` rows.
        """
        device = device or self._execution_device
        if prompt_embeds is None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds, prompt_attention_mask = encode_text(prompts, self.tokenizer, self.text_encoder, device)
        elif prompt_attention_mask is None:
            prompt_attention_mask = torch.ones(prompt_embeds.shape[:2], dtype=torch.long, device=device)
        batch_size = prompt_embeds.shape[0]

        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative_prompt = "" if negative_prompt is None else negative_prompt
            check_negative_prompt_count(negative_prompt, batch_size)
            negative_prompts = [negative_prompt] * batch_size if isinstance(negative_prompt, str) else negative_prompt
            negative_prompt_embeds, negative_prompt_attention_mask = encode_text(
                negative_prompts, self.tokenizer, self.text_encoder, device
            )
        elif do_classifier_free_guidance and negative_prompt_attention_mask is None:
            negative_prompt_attention_mask = torch.ones(
                negative_prompt_embeds.shape[:2], dtype=torch.long, device=device
            )

        def repeat(tensor: torch.Tensor | None) -> torch.Tensor | None:
            if tensor is None:
                return None
            return tensor.to(device).repeat_interleave(num_images_per_prompt, dim=0)

        if not do_classifier_free_guidance:
            negative_prompt_embeds = negative_prompt_attention_mask = None
        return (
            repeat(prompt_embeds).to(self.unet.dtype),
            repeat(negative_prompt_embeds.to(self.unet.dtype)) if negative_prompt_embeds is not None else None,
            repeat(prompt_attention_mask),
            repeat(negative_prompt_attention_mask),
        )

    def check_text_inputs(
        self,
        prompt: str | list[str] | None,
        negative_prompt: str | list[str] | None,
        prompt_embeds: torch.Tensor | None,
        negative_prompt_embeds: torch.Tensor | None,
        prompt_attention_mask: torch.Tensor | None,
        negative_prompt_attention_mask: torch.Tensor | None,
        num_images_per_prompt: int,
        guidance_scale: float,
    ) -> None:
        """Raises a `ValueError` naming the first text argument of `__call__` that does not fit the others."""
        if not _is_finite_number(guidance_scale) or guidance_scale < 0:
            raise ValueError(
                "`guidance_scale` must be a finite number of at least 0 (1.0 or less means no guidance, as in "
                f"diffusers' pipelines), got {guidance_scale!r}."
            )
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Give exactly one of `prompt` and `prompt_embeds`.")
        prompt_list = isinstance(prompt, (list, tuple)) and prompt and all(isinstance(entry, str) for entry in prompt)
        if prompt is not None and not (isinstance(prompt, str) or prompt_list):
            raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r}.")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("Give at most one of `negative_prompt` and `negative_prompt_embeds`.")
        if not _is_integer(num_images_per_prompt) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        width = self.unet.config.get("cross_attention_dim")
        for name, embeds, mask in (
            ("prompt_embeds", prompt_embeds, prompt_attention_mask),
            ("negative_prompt_embeds", negative_prompt_embeds, negative_prompt_attention_mask),
        ):
            if embeds is None:
                continue
            wrong_width = isinstance(embeds, torch.Tensor) and width is not None and embeds.shape[-1] != width
            if not isinstance(embeds, torch.Tensor) or embeds.ndim != 3 or wrong_width:
                raise ValueError(
                    f"`{name}` must have shape (batch, tokens, {width}) (the unet's `cross_attention_dim`), got "
                    f"{tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__}."
                )
            if mask is not None and not isinstance(mask, torch.Tensor):
                raise ValueError(f"The attention mask of `{name}` must be a torch.Tensor, got {type(mask).__name__}.")
            if mask is not None and tuple(mask.shape) != tuple(embeds.shape[:2]):
                raise ValueError(
                    f"The attention mask of `{name}` must have shape {tuple(embeds.shape[:2])}, got "
                    f"{tuple(mask.shape)}."
                )
        for name, embeds, mask in (
            ("prompt", prompt_embeds, prompt_attention_mask),
            ("negative_prompt", negative_prompt_embeds, negative_prompt_attention_mask),
        ):
            if mask is not None and embeds is None:
                raise ValueError(f"`{name}_attention_mask` goes with `{name}_embeds`, which was not given.")
        num_prompts = prompt_embeds.shape[0] if prompt is None else 1 if isinstance(prompt, str) else len(prompt)
        if negative_prompt_embeds is not None and negative_prompt_embeds.shape[0] != num_prompts:
            raise ValueError(
                f"There are {num_prompts} prompts but `negative_prompt_embeds` has {negative_prompt_embeds.shape[0]} "
                "rows: give one negative embedding per prompt."
            )
        check_negative_prompt_count(negative_prompt, num_prompts)

    def check_inputs(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        num_inference_steps: int,
        output_type: str,
        latents: torch.Tensor | None,
        eta: float,
        class_labels: None,
        guidance_scale: float,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """
        Checks the image arguments of `__call__` as [`SimpleDDPMPipeline.check_inputs`] does; guidance is conditioned
        on prompts here, not on class labels, and `check_text_inputs` has checked it.
        """
        super().check_inputs(
            batch_size,
            generator,
            num_inference_steps,
            output_type,
            latents,
            eta,
            class_labels,
            1.0,
            callback_on_step_end_tensor_inputs,
        )

    def predict_model_output(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        class_labels: torch.Tensor | None,
        guidance_scale: float,
    ) -> torch.Tensor:
        """
        Runs the unet once on `latents` with the prompt embeddings that `__call__` prepared; with classifier-free
        guidance the negative and positive halves run in one batched pass and are mixed as
        `negative + guidance_scale * (positive - negative)`.

        Args:
            latents (`torch.Tensor`): The scaled model input.
            timestep (`torch.Tensor`): The current timestep.
            class_labels (`torch.Tensor`, *optional*): Unused: a text pipeline is conditioned on its prompts.
            guidance_scale (`float`): The guidance scale; 1.0 or less means a plain conditional pass.
        """
        (prompt_embeds, prompt_mask), negative = self._text_conditioning
        if guidance_scale <= 1.0:
            return self.unet(
                latents, timestep, encoder_hidden_states=prompt_embeds, encoder_attention_mask=prompt_mask
            ).sample
        if negative is None:
            raise ValueError(
                "`guidance_scale` rose above 1.0 during a call that started without guidance, so no negative prompt "
                "was encoded: start the call with the largest guidance scale it will use."
            )
        negative_embeds, negative_mask = negative
        prediction = self.unet(
            torch.cat([latents, latents]),
            timestep,
            encoder_hidden_states=torch.cat([negative_embeds, prompt_embeds]),
            encoder_attention_mask=torch.cat([negative_mask, prompt_mask]),
        ).sample
        negative_prediction, positive_prediction = prediction.chunk(2)
        return negative_prediction + guidance_scale * (positive_prediction - negative_prediction)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float = 3.0,
        num_images_per_prompt: int = 1,
        num_inference_steps: int = 1000,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        eta: float = 0.0,
        callback_on_step_end: Callable[["SimpleDDPMTextPipeline", int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
    ) -> ImagePipelineOutput | tuple:
        r"""
        Generates images from text prompts.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompt(s); give this or `prompt_embeds`.
            negative_prompt (`str` or `list[str]`, *optional*): What guidance steers away from; defaults to the empty
                prompt. Used only when `guidance_scale` > 1.
            guidance_scale (`float`, *optional*, defaults to 3.0): Classifier-free guidance scale; 1.0 or
                less (such as 0.0) means no guidance, one unet pass per step instead of two.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images generated per prompt.
            num_inference_steps (`int`, *optional*, defaults to 1000): The number of denoising steps.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): Makes generation deterministic; a
                list holds one generator per image.
            latents (`torch.Tensor`, *optional*): Initial noise of shape `(images, channels, height, width)`.
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed prompt embeddings (see `encode_prompt`).
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed negative prompt embeddings.
            prompt_attention_mask (`torch.Tensor`, *optional*): The mask of `prompt_embeds`, 1 = keep.
            negative_prompt_attention_mask (`torch.Tensor`, *optional*): The mask of `negative_prompt_embeds`.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` or `"pt"`, as in
                [`SimpleDDPMPipeline.__call__`].
            return_dict (`bool`, *optional*, defaults to `True`): Whether to return an `ImagePipelineOutput` or a tuple.
            eta (`float`, *optional*, defaults to 0.0): η of DDIM; passed only to schedulers whose `step` takes it.
            callback_on_step_end (`Callable`, *optional*): Called as `callback_on_step_end(self, step_index, timestep,
                callback_kwargs)` after every step; it may return a dict that replaces `latents`, and may set
                `self._interrupt = True` to skip the remaining steps (the current latents are then returned).
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*, defaults to `["latents"]`): The tensors put in
                `callback_kwargs`.

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the generated images, `num_images_per_prompt` per prompt in
            prompt order.
        """
        self.check_text_inputs(
            prompt,
            negative_prompt,
            prompt_embeds,
            negative_prompt_embeds,
            prompt_attention_mask,
            negative_prompt_attention_mask,
            num_images_per_prompt,
            guidance_scale,
        )
        do_classifier_free_guidance = guidance_scale > 1.0
        prompt_embeds, negative_prompt_embeds, prompt_attention_mask, negative_prompt_attention_mask = (
            self.encode_prompt(
                prompt,
                num_images_per_prompt=num_images_per_prompt,
                do_classifier_free_guidance=do_classifier_free_guidance,
                negative_prompt=negative_prompt,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                prompt_attention_mask=prompt_attention_mask,
                negative_prompt_attention_mask=negative_prompt_attention_mask,
            )
        )
        # Prompt and negative prompt, padded to one length so that guidance batches them (`predict_model_output`).
        self._text_conditioning = ((prompt_embeds, prompt_attention_mask), None)
        if do_classifier_free_guidance:
            length = max(prompt_embeds.shape[1], negative_prompt_embeds.shape[1])
            self._text_conditioning = (
                pad_text_embeddings(prompt_embeds, prompt_attention_mask, length),
                pad_text_embeddings(negative_prompt_embeds, negative_prompt_attention_mask, length),
            )
        try:
            return super().__call__(
                batch_size=prompt_embeds.shape[0],
                generator=generator,
                num_inference_steps=num_inference_steps,
                output_type=output_type,
                return_dict=return_dict,
                latents=latents,
                eta=eta,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                guidance_scale=guidance_scale,
            )
        finally:
            self._text_conditioning = None

    def _write_custom_code(self, save_directory: str | os.PathLike) -> None:
        """
        Writes diffusers' custom-code layout as [`SimpleDDPMPipeline`] does, and adds `pipeline_simple_ddpm.py`, which
        this pipeline's module imports relatively and diffusers' loader copies along with it. The text encoder and
        tokenizer are transformers classes, which load without code from the folder.

        Args:
            save_directory (`str` or `os.PathLike`): The folder `save_pretrained` wrote.
        """
        super()._write_custom_code(save_directory)
        _copy_module_source(SimpleDDPMPipeline, save_directory)

