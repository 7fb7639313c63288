"""`SimpleUNet2DModel`: the teaching notebook's `SimpleUNet` as a diffusers model."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DOutput

TIME_EMBEDDING_TYPES = ("linear", "sinusoidal")
TIME_INJECTION_MODES = ("mid", "all")
# Every convolution block of the network, in forward order, with the name of its convolution.
BLOCK_NAMES = ("conv1", "conv2", "conv3", "mid_conv1", "mid_conv2", "up1", "up2")
SPATIAL_DIVISOR = 4


def check_spatial_size(height: int, width: int, argument: str = "sample") -> None:
    """
    Raises a `ValueError` unless both spatial sides survive the network's two stride-2 stages and come back to the
    same size.

    Args:
        height (`int`): Image height in pixels.
        width (`int`): Image width in pixels.
        argument (`str`): The name of the argument the size came from, quoted in the error.
    """
    if height % SPATIAL_DIVISOR or width % SPATIAL_DIVISOR or height <= 0 or width <= 0:
        raise ValueError(
            f"`{argument}` has spatial size {height}x{width}, but SimpleUNet2DModel downsamples twice by 2, so height "
            f"and width must be positive multiples of {SPATIAL_DIVISOR} (for example 28 or 32)."
        )


class SimpleUNet2DModel(ModelMixin, ConfigMixin):
    r"""
    The notebook's three-level convolutional U-Net with skip connections, as a diffusers model.

    With the default configuration the layers, their shapes and parameter names are exactly those of the notebook's
    `SimpleUNet`, so a notebook `state_dict` loads with `strict=True`. The options below add what the notebook lacks
    (a sinusoidal timestep embedding, time injection at every resolution, GroupNorm, dropout, class conditioning);
    each of them is off by default.

    Args:
        sample_size (`int` or `tuple[int, int]`, *optional*, defaults to 32):
            Height and width of the images the model generates. Both must be multiples of 4.
        in_channels (`int`, *optional*, defaults to 3): Number of channels of the input image.
        out_channels (`int`, *optional*, defaults to 3): Number of channels of the output.
        block_out_channels (`tuple[int, int, int]`, *optional*, defaults to `(64, 128, 256)`):
            Channels of the three resolutions (full, half, quarter).
        time_embedding_dim (`int`, *optional*, defaults to 100): Width of the timestep embedding.
        time_embedding_type (`str`, *optional*, defaults to `"linear"`):
            `"linear"` feeds the raw timestep to `Linear(1, time_embedding_dim)` as the notebook does; `"sinusoidal"`
            feeds a sinusoidal embedding of the timestep to `Linear(time_embedding_dim, time_embedding_dim)`.
        time_injection (`str`, *optional*, defaults to `"mid"`):
            `"mid"` adds the time embedding only at the bottleneck as the notebook does; `"all"` adds a projection of it
            after every convolution block. Use `"all"` with the `"sinusoidal"` embedding: the linear embedding of the raw
            timestep (0 to 999) injected everywhere made training diverge in the architecture ablation.
        norm_num_groups (`int`, *optional*, defaults to `None`):
            Number of groups of a GroupNorm after every convolution block but the last; `None` for no normalisation.
        dropout (`float`, *optional*, defaults to 0.0): Dropout probability between the two bottleneck convolutions.
        num_class_embeds (`int`, *optional*, defaults to `None`):
            Number of classes for class conditioning. A learned class embedding (with one extra index, the last, for
            "no class", used by classifier-free guidance) is added to the time embedding. `None` for an unconditional
            model.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int | tuple[int, int] | None = 32,
        in_channels: int = 3,
        out_channels: int = 3,
        block_out_channels: tuple[int, int, int] = (64, 128, 256),
        time_embedding_dim: int = 100,
        time_embedding_type: str = "linear",
        time_injection: str = "mid",
        norm_num_groups: int | None = None,
        dropout: float = 0.0,
        num_class_embeds: int | None = None,
    ):
        super().__init__()
        if sample_size is not None:
            height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
            check_spatial_size(height, width, argument="sample_size")
        if len(block_out_channels) != 3:
            raise ValueError(f"`block_out_channels` must hold 3 widths (one per resolution), got {block_out_channels}.")
        if time_embedding_type not in TIME_EMBEDDING_TYPES:
            raise ValueError(f"`time_embedding_type` must be one of {TIME_EMBEDDING_TYPES}, got {time_embedding_type!r}.")
        if time_injection not in TIME_INJECTION_MODES:
            raise ValueError(f"`time_injection` must be one of {TIME_INJECTION_MODES}, got {time_injection!r}.")
        if norm_num_groups is not None and any(width % norm_num_groups for width in block_out_channels):
            raise ValueError(
                f"`norm_num_groups` ({norm_num_groups}) must divide every width of `block_out_channels` "
                f"{tuple(block_out_channels)}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
        if num_class_embeds is not None and num_class_embeds < 1:
            raise ValueError(f"`num_class_embeds` must be a positive number of classes or None, got {num_class_embeds}.")

        width1, width2, width3 = block_out_channels
        time_input_dim = 1 if time_embedding_type == "linear" else time_embedding_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_input_dim, time_embedding_dim),
            nn.SiLU(),
            nn.Linear(time_embedding_dim, time_embedding_dim),
        )
        if num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds + 1, time_embedding_dim)

        self.conv1 = nn.Conv2d(in_channels, width1, 3, padding=1)
        self.conv2 = nn.Conv2d(width1, width2, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(width2, width3, 3, stride=2, padding=1)

        self.time_proj = nn.Linear(time_embedding_dim, width3)
        self.mid_conv1 = nn.Conv2d(width3, width3, 3, padding=1)
        self.mid_conv2 = nn.Conv2d(width3, width3, 3, padding=1)

        self.up1 = nn.ConvTranspose2d(width3, width2, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * width2, width1, 4, stride=2, padding=1)
        self.final = nn.Conv2d(2 * width1, out_channels, 3, padding=1)

        block_widths = dict(zip(BLOCK_NAMES, (width1, width2, width3, width3, width3, width2, width1)))
        if norm_num_groups is not None:
            self.norms = nn.ModuleDict(
                {name: nn.GroupNorm(norm_num_groups, width) for name, width in block_widths.items()}
            )
        if time_injection == "all":
            # conv3's projection is the notebook's `time_proj`; the other blocks get one each.
            self.time_projs = nn.ModuleDict(
                {
                    name: nn.Linear(time_embedding_dim, width)
                    for name, width in block_widths.items()
                    if name != "conv3"
                }
            )
        self.mid_dropout = nn.Dropout(dropout)
        self.gradient_checkpointing = False

    def _time_embedding(
        self, timestep: torch.Tensor | float | int, batch_size: int, device: torch.device
    ) -> torch.Tensor:
        """Turns `timestep` (a number, or a 0-d or 1-d tensor) into a float32 tensor of shape `(batch_size,)`."""
        timesteps = torch.as_tensor(timestep, device=device).to(torch.float32)
        if timesteps.ndim > 1 or (timesteps.ndim == 1 and timesteps.shape[0] not in (1, batch_size)):
            raise ValueError(
                f"`timestep` must be a number, a 0-d tensor or a 1-d tensor of length 1 or batch size {batch_size}, "
                f"got shape {tuple(timesteps.shape)}."
            )
        timesteps = timesteps.reshape(-1).expand(batch_size)
        if self.config.time_embedding_type == "linear":
            time_input = timesteps[:, None]
        else:
            time_input = get_timestep_embedding(
                timesteps, self.config.time_embedding_dim, flip_sin_to_cos=True, downscale_freq_shift=0
            )
        return self.time_mlp(time_input.to(self.time_mlp[0].weight.dtype))

    def _class_embedding(self, class_labels: torch.Tensor | None, batch_size: int, device: torch.device) -> torch.Tensor:
        """Looks up the class embedding; `None` labels mean "no class" (the last embedding index)."""
        num_classes = self.config.num_class_embeds
        if class_labels is None:
            class_labels = torch.full((batch_size,), num_classes, dtype=torch.long, device=device)
        class_labels = torch.as_tensor(class_labels, device=device).reshape(-1)
        if class_labels.shape[0] != batch_size:
            raise ValueError(
                f"`class_labels` has {class_labels.shape[0]} labels but the batch holds {batch_size} samples."
            )
        return self.class_embedding(class_labels.long())

    def _block(self, name: str, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Runs one convolution block: convolution, optional GroupNorm, SiLU, optional time injection."""
        hidden_states = getattr(self, name)(hidden_states)
        if self.config.norm_num_groups is not None:
            hidden_states = self.norms[name](hidden_states)
        hidden_states = F.silu(hidden_states)
        if name == "conv3":
            hidden_states = hidden_states + self.time_proj(temb)[:, :, None, None]
        elif self.config.time_injection == "all":
            hidden_states = hidden_states + self.time_projs[name](temb)[:, :, None, None]
        return hidden_states

    def _run_block(self, name: str, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(self._block, name, hidden_states, temb)
        return self._block(name, hidden_states, temb)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple[torch.Tensor]:
        r"""
        Predicts the noise (or sample, or velocity, as trained) of a noisy batch.

        Args:
            sample (`torch.Tensor`): The noisy input of shape `(batch, in_channels, height, width)`; height and width
                must be multiples of 4.
            timestep (`torch.Tensor`, `float` or `int`): The diffusion timestep: a number, a 0-d tensor, or a 1-d tensor
                with one entry per sample, of any dtype and on any device. A scalar is broadcast to the batch.
            class_labels (`torch.Tensor`, *optional*): Class indices of shape `(batch,)` for a class-conditional model;
                the index `num_class_embeds` (or `None` for the whole batch) means "no class".
            return_dict (`bool`, *optional*, defaults to `True`): Whether to return a `UNet2DOutput` or a tuple.

        Returns:
            [`~models.unets.unet_2d.UNet2DOutput`] or `tuple`: the prediction, of shape `(batch, out_channels, height,
            width)`.
        """
        if sample.ndim != 4:
            raise ValueError(f"`sample` must have shape (batch, channels, height, width), got {tuple(sample.shape)}.")
        check_spatial_size(sample.shape[-2], sample.shape[-1])
        if class_labels is not None and self.config.num_class_embeds is None:
            raise ValueError(
                "`class_labels` were given to an unconditional model; build it with `num_class_embeds` to condition it."
            )
        batch_size = sample.shape[0]
        temb = self._time_embedding(timestep, batch_size, sample.device)
        if self.config.num_class_embeds is not None:
            temb = temb + self._class_embedding(class_labels, batch_size, sample.device)

        skip1 = self._run_block("conv1", sample, temb)
        skip2 = self._run_block("conv2", skip1, temb)
        hidden_states = self._run_block("conv3", skip2, temb)
        hidden_states = self._run_block("mid_conv1", hidden_states, temb)
        hidden_states = self._run_block("mid_conv2", self.mid_dropout(hidden_states), temb)
        hidden_states = self._run_block("up1", hidden_states, temb)
        hidden_states = self._run_block("up2", torch.cat([hidden_states, skip2], dim=1), temb)
        output = self.final(torch.cat([hidden_states, skip1], dim=1))

        if not return_dict:
            return (output,)
        return UNet2DOutput(sample=output)
