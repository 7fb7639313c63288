"""One DDPM training update, shared by the training program (`diffusers_simple_ddpm.training`) and the benchmarks'
bare loop (`scripts/benchmarks/benchmark_utils.BareTrainer`), with the optimisation defaults both use."""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from .scheduling_simple_ddpm import SimpleDDPMScheduler
from .training_args import DEFAULT_SETTINGS, OptimizationSettings
from .training_utils import training_target

if TYPE_CHECKING:
    from .text_utils import CaptionEmbeddings


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter], settings: OptimizationSettings, device: torch.device
) -> torch.optim.AdamW:
    """
    AdamW with `settings`; on a CUDA device its fused kernel (one launch for all parameters), else torch's default.

    Args:
        parameters (`Iterable[torch.nn.Parameter]`): The parameters to train.
        settings (`OptimizationSettings`): Learning rate, betas, weight decay and ε.
        device (`torch.device`): Where the parameters live.
    """
    return torch.optim.AdamW(
        parameters,
        lr=settings.learning_rate,
        betas=(settings.adam_beta1, settings.adam_beta2),
        weight_decay=settings.adam_weight_decay,
        eps=settings.adam_epsilon,
        fused=True if device.type == "cuda" else None,
    )


def make_ema(model: torch.nn.Module, settings: OptimizationSettings, **model_info) -> EMAModel:
    """
    Diffusers' `EMAModel` of `model`'s parameters with warm-up, updated with foreach kernels (a few launches per
    update instead of several per parameter).

    Args:
        model (`torch.nn.Module`): The trained model.
        settings (`OptimizationSettings`): The EMA's largest decay, inverse gamma and power.
        model_info: `model_cls` and `model_config`, for `EMAModel.save_pretrained`.
    """
    return EMAModel(
        model.parameters(),
        decay=settings.ema_max_decay,
        use_ema_warmup=True,
        inv_gamma=settings.ema_inv_gamma,
        power=settings.ema_power,
        foreach=True,
        **model_info,
    )


class DiffusionTrainingStep:
    """
    One update of DDPM training: noise and timesteps drawn for a batch of clean images, the scheduler's `add_noise`,
    the MSE between the model's output and the target of the scheduler's `prediction_type`, backward, gradient
    clipping, the optimizer and learning-rate steps and the EMA update. Nothing in it waits for the device: the loss
    comes back as a tensor.

    Args:
        noise_scheduler (`SimpleDDPMScheduler`): Draws the noise levels and gives the target.
        optimizer (`torch.optim.Optimizer`): The optimizer (accelerate's wrapper skips steps while accumulating).
        lr_scheduler (`torch.optim.lr_scheduler.LRScheduler`): The learning-rate schedule.
        ema_model (`EMAModel`, *optional*): The EMA of the weights, updated after each optimizer update.
        max_grad_norm (`float`, defaults to 1.0): Gradient clipping norm.
        snr_gamma (`float`, *optional*): γ of the Min-SNR loss weighting; the plain mean squared error when not given.
        num_class_embeds (`int`, *optional*): The classes of a class-conditional model; label `num_class_embeds` is
            "no class".
        class_dropout_prob (`float`, defaults to 0.1): Share of labels replaced by "no class".
        caption_embeddings (`CaptionEmbeddings`, *optional*): For a text-conditional model, the table of caption
            embeddings (`text_utils.CaptionEmbeddings`); the batch's `class_labels` are then indices into it.
        caption_dropout (`float`, defaults to 0.1): Share of captions replaced by the empty one.
        memory_format (`torch.memory_format`, defaults to `torch.contiguous_format`): Memory format of the inputs.
        autocast_dtype (`torch.dtype`, *optional*): Run the model's forward under autocast to this dtype (leave it
            `None` when accelerate already wraps the model in autocast).
        backward (`Callable`, *optional*): Runs the backward pass of a loss; `accelerator.backward` in the training
            program (loss scaling, accumulation), `loss.backward()` when not given.
        clip_grad_norm (`Callable`, *optional*): Clips gradients as `torch.nn.utils.clip_grad_norm_(parameters,
            max_norm)`, which it is when not given (`accelerator.clip_grad_norm_` in the training program).
    """

    def __init__(
        self,
        noise_scheduler: SimpleDDPMScheduler,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
        ema_model: EMAModel | None = None,
        max_grad_norm: float = DEFAULT_SETTINGS.max_grad_norm,
        snr_gamma: float | None = DEFAULT_SETTINGS.snr_gamma,
        num_class_embeds: int | None = None,
        class_dropout_prob: float = DEFAULT_SETTINGS.class_dropout_prob,
        caption_embeddings: "CaptionEmbeddings | None" = None,
        caption_dropout: float = 0.1,
        memory_format: torch.memory_format = torch.contiguous_format,
        autocast_dtype: torch.dtype | None = None,
        backward: Callable[[torch.Tensor], None] | None = None,
        clip_grad_norm: Callable | None = None,
    ):
        if max_grad_norm <= 0:
            raise ValueError(f"`max_grad_norm` must be positive, got {max_grad_norm}.")
        if snr_gamma is not None and not snr_gamma > 0:
            raise ValueError(f"`snr_gamma` must be positive, got {snr_gamma}.")
        if not 0.0 <= class_dropout_prob < 1.0:
            raise ValueError(f"`class_dropout_prob` must be in [0, 1), got {class_dropout_prob}.")
        self.noise_scheduler = noise_scheduler
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.ema_model = ema_model
        self.max_grad_norm = max_grad_norm
        self.snr_gamma = snr_gamma
        self.num_class_embeds = num_class_embeds
        self.class_dropout_prob = class_dropout_prob
        self.caption_embeddings = caption_embeddings
        self.caption_dropout = caption_dropout
        self.memory_format = memory_format
        self.autocast_dtype = autocast_dtype
        self.backward = backward or torch.Tensor.backward
        self.clip_grad_norm = clip_grad_norm or torch.nn.utils.clip_grad_norm_

    def loss(
        self,
        model: torch.nn.Module,
        clean_images: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        The diffusion loss of a batch (noise, then timesteps, then class dropout are drawn, in this order).

        Args:
            model (`torch.nn.Module`): The model being trained (its output has a `.sample`).
            clean_images (`torch.Tensor`): The batch [B, C, H, W] in [-1, 1], on the model's device.
            class_labels (`torch.Tensor`, *optional*): The batch's class labels, for a class-conditional model.
            generator (`torch.Generator`, *optional*): The source of noise, timesteps and dropout, on the batch's
                device; torch's global generator when not given.

        Returns:
            `torch.Tensor`: the scalar float32 loss, with its graph.
        """
        device = clean_images.device
        batch_size = clean_images.shape[0]
        clean_images = clean_images.to(memory_format=self.memory_format)
        noise = torch.randn(clean_images.shape, device=device, generator=generator).to(memory_format=self.memory_format)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (batch_size,), device=device, generator=generator
        )
        noisy_images = self.noise_scheduler.add_noise(clean_images, noise, timesteps)
        if self.num_class_embeds is not None:
            if class_labels is None:
                raise ValueError("A class-conditional training step needs the batch's `class_labels`.")
            dropped = torch.rand(batch_size, device=device, generator=generator) < self.class_dropout_prob
            class_labels = torch.where(dropped, self.num_class_embeds, class_labels)
        text_inputs = {}
        if self.caption_embeddings is not None:
            dropped = torch.rand(batch_size, device=device, generator=generator) < self.caption_dropout
            text_inputs = self.caption_embeddings.lookup(class_labels, dropped)
            class_labels = None
        with torch.autocast(device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            model_output = model(noisy_images, timesteps, class_labels=class_labels, **text_inputs).sample
        target = training_target(self.noise_scheduler, clean_images, noise, timesteps)
        if self.snr_gamma is None:
            return F.mse_loss(model_output.float(), target.float())
        per_image = F.mse_loss(model_output.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return (per_image * self.min_snr_weights(timesteps, per_image)).mean()

    def min_snr_weights(self, timesteps: torch.Tensor, per_image_loss: torch.Tensor) -> torch.Tensor:
        """
        The Min-SNR-γ weight of each image's loss: min(SNR, γ) times the squared error of the clean image, written
        for the target of the scheduler's `prediction_type` (whose squared error is that of the clean image times SNR
        for ε, SNR + 1 for v, 1 for the sample itself).

        Args:
            timesteps (`torch.Tensor`): The timestep of every image.
            per_image_loss (`torch.Tensor`): The loss of every image, shape `(batch_size,)`; the weights follow its
                device and dtype.
        """
        snr = self.noise_scheduler.signal_to_noise_ratio(timesteps, per_image_loss)
        clipped = snr.clamp(max=self.snr_gamma)
        prediction_type = self.noise_scheduler.config.prediction_type
        if prediction_type == "epsilon":
            return clipped / snr
        if prediction_type == "v_prediction":
            return clipped / (snr + 1)
        return clipped

    def __call__(
        self,
        model: torch.nn.Module,
        clean_images: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        sync_gradients: bool = True,
    ) -> torch.Tensor:
        """
        One micro-batch: the loss, its backward pass and, when `sync_gradients`, clipping and the EMA update. The
        optimizer and schedule steps run on every call; accelerate's wrappers skip them while gradients accumulate.

        Args:
            model (`torch.nn.Module`): The model being trained.
            clean_images (`torch.Tensor`): The batch [B, C, H, W] in [-1, 1].
            class_labels (`torch.Tensor`, *optional*): Its class labels, for a class-conditional model.
            generator (`torch.Generator`, *optional*): The source of noise, timesteps and dropout.
            sync_gradients (`bool`, defaults to `True`): Whether this micro-batch completes an optimizer update
                (`accelerator.sync_gradients`).

        Returns:
            `torch.Tensor`: the loss, detached, still on the device.
        """
        loss = self.loss(model, clean_images, class_labels, generator)
        self.backward(loss)
        if sync_gradients:
            self.clip_grad_norm(model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if sync_gradients and self.ema_model is not None:
            self.ema_model.step(model.parameters())
        return loss.detach()
