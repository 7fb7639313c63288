"""`SimpleUNet2DModel`: the teaching notebook's `SimpleUNet` as a diffusers model, and a residual U-Net family."""

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DOutput

TIME_EMBEDDING_TYPES = ("linear", "sinusoidal")
TIME_INJECTION_MODES = ("mid", "all")
TIME_SCALE_SHIFT_MODES = ("default", "scale_shift")
UPSAMPLE_TYPES = ("conv", "conv_transpose")
# Every convolution block of the notebook layout, in forward order, with the name of its convolution.
BLOCK_NAMES = ("conv1", "conv2", "conv3", "mid_conv1", "mid_conv2", "up1", "up2")
NOTEBOOK_NUM_LEVELS = 3


def check_spatial_size(height: int, width: int, argument: str = "sample", num_levels: int = NOTEBOOK_NUM_LEVELS) -> None:
    """
    Raises a `ValueError` unless both spatial sides survive the network's stride-2 stages (one fewer than its
    resolution levels) and come back to the same size.

    Args:
        height (`int`): Image height in pixels.
        width (`int`): Image width in pixels.
        argument (`str`): The name of the argument the size came from, quoted in the error.
        num_levels (`int`, *optional*, defaults to 3): The network's resolution levels (`len(block_out_channels)`).
    """
    divisor = 2 ** (num_levels - 1)
    if height % divisor or width % divisor or height <= 0 or width <= 0:
        raise ValueError(
            f"`{argument}` has spatial size {height}x{width}, but this SimpleUNet2DModel downsamples {num_levels - 1} "
            f"times by 2, so height and width must be positive multiples of {divisor} (for example "
            f"{' or '.join(str(divisor * k) for k in (28 // divisor or 1, 32 // divisor))})."
        )


def compute_dtype(layer: nn.Module) -> torch.dtype:
    """
    The dtype `layer` computes in: its weights' dtype, or the compute dtype of diffusers' layerwise casting
    (`ModelMixin.enable_layerwise_casting`), which stores the weights in another dtype and casts them at each call.

    Args:
        layer (`nn.Module`): A layer with a `weight`.
    """
    registry = getattr(layer, "_diffusers_hook", None)
    hook = registry.get_hook("layerwise_casting") if registry is not None else None
    return hook.compute_dtype if hook is not None else layer.weight.dtype


class GroupNorm(nn.GroupNorm):
    """
    `torch.nn.GroupNorm` (same parameters and results) that normalises `channels_last` activations on the CPU in the
    contiguous layout and hands them back as `channels_last`: at the sizes of the 28x28 presets torch's CPU kernel for
    `channels_last` is slower than the contiguous one with both copies, and GroupNorm took a quarter of a training step
    of the `default` preset on the CPU.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        channels_last_on_cpu = (
            hidden_states.device.type == "cpu"
            and not hidden_states.is_contiguous()
            and hidden_states.is_contiguous(memory_format=torch.channels_last)
        )
        if not channels_last_on_cpu:
            return super().forward(hidden_states)
        normed = F.group_norm(hidden_states.contiguous(), self.num_groups, self.weight, self.bias, self.eps)
        return normed.contiguous(memory_format=torch.channels_last)


class ResnetBlock(nn.Module):
    r"""
    A residual block of two 3x3 convolutions with GroupNorm, SiLU and dropout, conditioned on the time (and class)
    embedding, as in the DDPM paper's U-Net.

    Args:
        in_channels (`int`): Input channels.
        out_channels (`int`): Output channels (a 1x1 convolution matches the shortcut when they differ).
        temb_channels (`int`): Width of the time embedding.
        norm_num_groups (`int`): Groups of both GroupNorms.
        dropout (`float`): Dropout before the second convolution.
        time_scale_shift (`str`): `"default"` adds a projection of the embedding after the first convolution;
            `"scale_shift"` scales and shifts the second normalisation with it (`h = norm(h) * (1 + scale) + shift`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        norm_num_groups: int,
        dropout: float,
        time_scale_shift: Literal["default", "scale_shift"],
    ):
        super().__init__()
        self.time_scale_shift = time_scale_shift
        self.norm1 = GroupNorm(norm_num_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        time_out = 2 * out_channels if time_scale_shift == "scale_shift" else out_channels
        self.time_emb_proj = nn.Linear(temb_channels, time_out)
        self.norm2 = GroupNorm(norm_num_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # The residual branch starts as the identity, which speeds up early training (as in the DDPM paper's code).
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        residual = hidden_states if self.conv_shortcut is None else self.conv_shortcut(hidden_states)
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        time_emb = self.time_emb_proj(F.silu(temb))[:, :, None, None]
        if self.time_scale_shift == "scale_shift":
            scale, shift = time_emb.chunk(2, dim=1)
            hidden_states = self.norm2(hidden_states) * (1 + scale) + shift
        else:
            hidden_states = self.norm2(hidden_states + time_emb)
        hidden_states = self.conv2(self.dropout(F.silu(hidden_states)))
        return residual + hidden_states


class AttentionBlock(nn.Module):
    r"""
    Multi-head self-attention over the pixels of a feature map, optionally followed by cross-attention to encoder
    tokens (a text encoder's hidden states), each with a residual connection.

    Args:
        channels (`int`): Channels of the feature map.
        norm_num_groups (`int`): Groups of the GroupNorm before self-attention.
        attention_head_dim (`int`): Channels per head (`channels` must be a multiple).
        cross_attention_dim (`int`, *optional*): Width of the encoder tokens; `None` for self-attention only.
    """

    def __init__(
        self, channels: int, norm_num_groups: int, attention_head_dim: int, cross_attention_dim: int | None = None
    ):
        super().__init__()
        self.num_heads = channels // attention_head_dim
        self.group_norm = GroupNorm(norm_num_groups, channels)
        self.to_qkv = nn.Linear(channels, 3 * channels)
        self.to_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        if cross_attention_dim is not None:
            self.norm_cross = nn.LayerNorm(channels)
            self.to_q_cross = nn.Linear(channels, channels)
            self.to_kv_cross = nn.Linear(cross_attention_dim, 2 * channels)
            self.to_out_cross = nn.Linear(channels, channels)
            nn.init.zeros_(self.to_out_cross.weight)
            nn.init.zeros_(self.to_out_cross.bias)

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length, channels = tokens.shape
        return tokens.reshape(batch, length, self.num_heads, channels // self.num_heads).transpose(1, 2)

    def _attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """softmax(QKᵀ/√d) V per head, written out: for the few tokens of these feature maps (49 at 7x7) it trains
        about 3x faster on a CPU than `scaled_dot_product_attention`'s fused kernel, and costs little on a GPU."""
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        scores = query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return (scores.softmax(dim=-1) @ value).transpose(1, 2).flatten(2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, channels, height, width = hidden_states.shape
        tokens = hidden_states.flatten(2).transpose(1, 2)
        normed = self.group_norm(hidden_states).flatten(2).transpose(1, 2)
        tokens = tokens + self.to_out(self._attend(*self.to_qkv(normed).chunk(3, dim=-1)))
        if encoder_hidden_states is not None:
            mask = None
            if encoder_attention_mask is not None:
                # (batch, tokens) with 1 = attend, 0 = ignore, broadcast over heads and queries.
                mask = encoder_attention_mask.bool()[:, None, None, :]
            key, value = self.to_kv_cross(encoder_hidden_states.to(tokens.dtype)).chunk(2, dim=-1)
            tokens = tokens + self.to_out_cross(self._attend(self.to_q_cross(self.norm_cross(tokens)), key, value, mask))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class ResidualLevel(nn.Module):
    r"""
    The residual blocks (and attention blocks) of one resolution level of the U-Net, on the way down or up.

    Args:
        in_channels (`int`): Channels entering the first block.
        out_channels (`int`): Channels of every block's output.
        num_layers (`int`): Residual blocks.
        attention (`bool`): Whether each residual block is followed by an `AttentionBlock`.
        block_kwargs (`dict`): `temb_channels`, `norm_num_groups`, `dropout`, `time_scale_shift` of `ResnetBlock`.
        attention_kwargs (`dict`): `norm_num_groups`, `attention_head_dim`, `cross_attention_dim` of `AttentionBlock`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int, attention: bool, block_kwargs: dict, attention_kwargs: dict
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(in_channels if index == 0 else out_channels, out_channels, **block_kwargs)
            for index in range(num_layers)
        )
        self.attentions = (
            nn.ModuleList(AttentionBlock(out_channels, **attention_kwargs) for _ in range(num_layers)) if attention else None
        )


class SimpleUNet2DModel(ModelMixin, ConfigMixin):
    r"""
    The notebook's three-level convolutional U-Net with skip connections, as a diffusers model, and a residual U-Net
    family built from the same configuration.

    With the default configuration the layers, their shapes and parameter names are exactly those of the notebook's
    `SimpleUNet`, so a notebook `state_dict` loads with `strict=True`. Every option below is off by default.

    Two layouts:
    - `layers_per_block=None` (default), the notebook's layout: three levels of single convolutions with skips, time
      added at the bottleneck. Its options: a sinusoidal timestep embedding, time injection after every block,
      GroupNorm, dropout at the bottleneck, widths, class conditioning.
    - `layers_per_block=N`, the residual layout of the DDPM paper's U-Net: any number of levels (one per entry of
      `block_out_channels`, the widths; a stride-2 convolution between levels), `N` residual blocks per level on the
      way down and on the way up (GroupNorm, SiLU, dropout, time and class conditioning added or by scale and shift),
      one skip connection per level, self-attention after every block of the levels in `attention_levels` and in the
      bottleneck when the lowest level is one of them, optional cross-attention to encoder tokens (text).

    Args:
        sample_size (`int` or `tuple[int, int]`, *optional*, defaults to 32):
            Height and width of the images the model generates. Both must be multiples of `2 ** (levels - 1)`.
        in_channels (`int`, *optional*, defaults to 3): Number of channels of the input image.
        out_channels (`int`, *optional*, defaults to 3): Number of channels of the output.
        block_out_channels (`tuple[int, ...]`, *optional*, defaults to `(64, 128, 256)`):
            Channels of each resolution level, full resolution first (exactly three in the notebook layout).
        time_embedding_dim (`int`, *optional*, defaults to 100): Width of the timestep embedding.
        time_embedding_type (`str`, *optional*, defaults to `"linear"`):
            `"linear"` feeds the raw timestep to `Linear(1, time_embedding_dim)` as the notebook does; `"sinusoidal"`
            feeds a sinusoidal embedding of the timestep to `Linear(time_embedding_dim, time_embedding_dim)`.
        time_injection (`str`, *optional*, defaults to `"mid"`):
            Notebook layout only. `"mid"` adds the time embedding only at the bottleneck as the notebook does; `"all"`
            adds a projection of it after every convolution block. Use `"all"` with the `"sinusoidal"` embedding: the
            linear embedding of the raw timestep (0 to 999) injected everywhere made training diverge in the
            architecture ablation.
        norm_num_groups (`int`, *optional*, defaults to `None`):
            Groups of the GroupNorms. In the notebook layout a GroupNorm follows every convolution block but the last
            when set; the residual layout needs it.
        dropout (`float`, *optional*, defaults to 0.0):
            Dropout probability: between the two bottleneck convolutions (notebook layout) or in every residual block.
        num_class_embeds (`int`, *optional*, defaults to `None`):
            Number of classes for class conditioning. A learned class embedding (with one extra index, the last, for
            "no class", used by classifier-free guidance) is added to the time embedding. `None` for an unconditional
            model.
        layers_per_block (`int`, *optional*, defaults to `None`):
            Residual blocks per level and direction; `None` keeps the notebook layout.
        resnet_time_scale_shift (`str`, *optional*, defaults to `"default"`):
            Residual layout: `"default"` adds the time embedding's projection to the features, `"scale_shift"` scales
            and shifts the normalised features with it (diffusers' name for the improved-DDPM conditioning).
        attention_levels (`tuple[int, ...]`, *optional*, defaults to `()`):
            Residual layout: indices of the levels (0 = full resolution) whose blocks are followed by attention.
        attention_head_dim (`int`, *optional*, defaults to 32): Channels per attention head.
        cross_attention_dim (`int`, *optional*, defaults to `None`):
            Residual layout: width of the encoder tokens (`encoder_hidden_states`) that every attention block also
            attends to, for text conditioning; `None` for none.
        upsample_type (`str`, *optional*, defaults to `"conv"`):
            Residual layout: how the way up doubles the resolution. `"conv"` (the DDPM paper's) repeats each pixel 2x2
            and applies a 3x3 convolution at the lower level's width; `"conv_transpose"` (the notebook's) applies a 4x4
            stride-2 transposed convolution straight to the higher level's width, so the blocks after it also take
            fewer channels (a third fewer multiply-adds for the `default` preset's widths).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int | tuple[int, int] | None = 32,
        in_channels: int = 3,
        out_channels: int = 3,
        block_out_channels: tuple[int, ...] = (64, 128, 256),
        time_embedding_dim: int = 100,
        time_embedding_type: Literal["linear", "sinusoidal"] = "linear",
        time_injection: Literal["mid", "all"] = "mid",
        norm_num_groups: int | None = None,
        dropout: float = 0.0,
        num_class_embeds: int | None = None,
        layers_per_block: int | None = None,
        resnet_time_scale_shift: Literal["default", "scale_shift"] = "default",
        attention_levels: tuple[int, ...] = (),
        attention_head_dim: int = 32,
        cross_attention_dim: int | None = None,
        upsample_type: Literal["conv", "conv_transpose"] = "conv",
    ):
        super().__init__()
        residual = layers_per_block is not None
        num_levels = len(block_out_channels)
        if sample_size is not None:
            height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
            check_spatial_size(height, width, argument="sample_size", num_levels=num_levels)
        if not residual and num_levels != NOTEBOOK_NUM_LEVELS:
            raise ValueError(
                f"`block_out_channels` must hold 3 widths (one per resolution) in the notebook layout, got "
                f"{block_out_channels}; set `layers_per_block` for the residual layout, which takes any number of levels."
            )
        if num_levels < 1 or any(not isinstance(width, int) or width < 1 for width in block_out_channels):
            raise ValueError(f"`block_out_channels` must be positive integer widths, got {block_out_channels}.")
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
        if residual:
            self._check_residual_options(
                block_out_channels, time_injection, norm_num_groups, layers_per_block, resnet_time_scale_shift,
                attention_levels, attention_head_dim, cross_attention_dim, upsample_type,
            )  # fmt: skip
        elif (tuple(attention_levels), resnet_time_scale_shift, cross_attention_dim, upsample_type) != (
            (), "default", None, "conv"
        ):
            raise ValueError(
                "`attention_levels`, `resnet_time_scale_shift`, `cross_attention_dim` and `upsample_type` belong to the "
                "residual layout: set `layers_per_block` to use them."
            )

        time_input_dim = 1 if time_embedding_type == "linear" else time_embedding_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_input_dim, time_embedding_dim),
            nn.SiLU(),
            nn.Linear(time_embedding_dim, time_embedding_dim),
        )
        if num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds + 1, time_embedding_dim)
        if residual:
            self._build_residual_layout()
        else:
            self._build_notebook_layout()
        self.gradient_checkpointing = False

    @staticmethod
    def _check_residual_options(
        block_out_channels: tuple[int, ...],
        time_injection: str,
        norm_num_groups: int | None,
        layers_per_block: int,
        resnet_time_scale_shift: str,
        attention_levels: tuple[int, ...],
        attention_head_dim: int,
        cross_attention_dim: int | None,
        upsample_type: str,
    ) -> None:
        """Refuses residual-layout options that cannot build a network, naming the option and what is allowed."""
        if not isinstance(layers_per_block, int) or layers_per_block < 1:
            raise ValueError(f"`layers_per_block` must be a positive integer or None, got {layers_per_block!r}.")
        if norm_num_groups is None:
            raise ValueError("The residual layout (`layers_per_block` set) needs `norm_num_groups`, e.g. 8 or 32.")
        if time_injection != "mid":
            raise ValueError(
                "`time_injection` belongs to the notebook layout; the residual layout conditions every residual block."
            )
        if resnet_time_scale_shift not in TIME_SCALE_SHIFT_MODES:
            raise ValueError(
                f"`resnet_time_scale_shift` must be one of {TIME_SCALE_SHIFT_MODES}, got {resnet_time_scale_shift!r}."
            )
        if upsample_type not in UPSAMPLE_TYPES:
            raise ValueError(f"`upsample_type` must be one of {UPSAMPLE_TYPES}, got {upsample_type!r}.")
        levels = range(len(block_out_channels))
        if any(level not in levels for level in attention_levels):
            raise ValueError(
                f"`attention_levels` must be level indices in 0..{len(block_out_channels) - 1}, got {attention_levels}."
            )
        for level in attention_levels:
            if block_out_channels[level] % attention_head_dim:
                raise ValueError(
                    f"`attention_head_dim` ({attention_head_dim}) must divide the width {block_out_channels[level]} of "
                    f"attention level {level}."
                )
        if cross_attention_dim is not None and (cross_attention_dim < 1 or not attention_levels):
            raise ValueError(
                "`cross_attention_dim` must be a positive width, and cross-attention needs `attention_levels` (it runs "
                f"in the attention blocks); got {cross_attention_dim} with attention_levels={attention_levels}."
            )

    def _build_notebook_layout(self) -> None:
        """The notebook's layers, under the notebook's names, and the options of that layout."""
        config = self.config
        width1, width2, width3 = config.block_out_channels
        self.conv1 = nn.Conv2d(config.in_channels, width1, 3, padding=1)
        self.conv2 = nn.Conv2d(width1, width2, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(width2, width3, 3, stride=2, padding=1)

        self.time_proj = nn.Linear(config.time_embedding_dim, width3)
        self.mid_conv1 = nn.Conv2d(width3, width3, 3, padding=1)
        self.mid_conv2 = nn.Conv2d(width3, width3, 3, padding=1)

        self.up1 = nn.ConvTranspose2d(width3, width2, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * width2, width1, 4, stride=2, padding=1)
        self.final = nn.Conv2d(2 * width1, config.out_channels, 3, padding=1)

        block_widths = dict(zip(BLOCK_NAMES, (width1, width2, width3, width3, width3, width2, width1)))
        if config.norm_num_groups is not None:
            self.norms = nn.ModuleDict(
                {name: GroupNorm(config.norm_num_groups, width) for name, width in block_widths.items()}
            )
        if config.time_injection == "all":
            # conv3's projection is the notebook's `time_proj`; the other blocks get one each.
            self.time_projs = nn.ModuleDict(
                {
                    name: nn.Linear(config.time_embedding_dim, width)
                    for name, width in block_widths.items()
                    if name != "conv3"
                }
            )
        self.mid_dropout = nn.Dropout(config.dropout)

    def _build_residual_layout(self) -> None:
        """`conv_in`, the levels down and up with their resampling, the bottleneck and the output head."""
        config = self.config
        widths = tuple(config.block_out_channels)
        block_kwargs = {
            "temb_channels": config.time_embedding_dim,
            "norm_num_groups": config.norm_num_groups,
            "dropout": config.dropout,
            "time_scale_shift": config.resnet_time_scale_shift,
        }
        attention_kwargs = {
            "norm_num_groups": config.norm_num_groups,
            "attention_head_dim": config.attention_head_dim,
            "cross_attention_dim": config.cross_attention_dim,
        }
        lowest = len(widths) - 1
        self.conv_in = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.down_levels = nn.ModuleList(
            ResidualLevel(
                widths[max(level - 1, 0)], widths[level], config.layers_per_block, level in config.attention_levels,
                block_kwargs, attention_kwargs,
            )  # fmt: skip
            for level in range(lowest)
        )
        self.downsamplers = nn.ModuleList(
            nn.Conv2d(widths[level], widths[level], 3, stride=2, padding=1) for level in range(lowest)
        )
        # The bottleneck: the lowest level's blocks (two of them at least, as in the DDPM paper's middle block).
        self.mid_level = ResidualLevel(
            widths[max(lowest - 1, 0)], widths[lowest], max(config.layers_per_block, 2), lowest in config.attention_levels,
            block_kwargs, attention_kwargs,
        )  # fmt: skip
        if config.upsample_type == "conv_transpose":
            self.upsamplers = nn.ModuleList(
                nn.ConvTranspose2d(widths[level + 1], widths[level], 4, stride=2, padding=1) for level in range(lowest)
            )
            upsampled_widths = widths[:lowest]
        else:
            self.upsamplers = nn.ModuleList(
                nn.Conv2d(widths[level + 1], widths[level + 1], 3, padding=1) for level in range(lowest)
            )
            upsampled_widths = widths[1:]
        self.up_levels = nn.ModuleList(
            ResidualLevel(
                upsampled_widths[level] + widths[level], widths[level], config.layers_per_block,
                level in config.attention_levels, block_kwargs, attention_kwargs,
            )  # fmt: skip
            for level in range(lowest)
        )
        self.norm_out = GroupNorm(config.norm_num_groups, widths[0])
        self.conv_out = nn.Conv2d(widths[0], config.out_channels, 3, padding=1)

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
        return self.time_mlp(time_input.to(compute_dtype(self.time_mlp[0])))

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
        if class_labels.is_floating_point():
            raise ValueError(f"`class_labels` must be integer class indices, got dtype {class_labels.dtype}.")
        try:
            return self.class_embedding(class_labels.long())
        except IndexError as error:  # Raised on the CPU; checking on a GPU would cost a host synchronisation.
            raise ValueError(
                f"`class_labels` must be in 0..{num_classes - 1}, or {num_classes} for no class; got "
                f"{class_labels.tolist()}."
            ) from error

    def _block(self, name: str, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Runs one convolution block of the notebook layout: convolution, GroupNorm, SiLU, time injection."""
        hidden_states = getattr(self, name)(hidden_states)
        if self.config.norm_num_groups is not None:
            hidden_states = self.norms[name](hidden_states)
        hidden_states = F.silu(hidden_states)
        if name == "conv3":
            hidden_states = hidden_states + self.time_proj(temb)[:, :, None, None]
        elif self.config.time_injection == "all":
            hidden_states = hidden_states + self.time_projs[name](temb)[:, :, None, None]
        return hidden_states

    def _checkpointed(self, function, *args):
        """Calls `function(*args)`, through gradient checkpointing when it is enabled and gradients are on."""
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(function, *args)
        return function(*args)

    def _forward_notebook(self, sample: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        skip1 = self._checkpointed(self._block, "conv1", sample, temb)
        skip2 = self._checkpointed(self._block, "conv2", skip1, temb)
        hidden_states = self._checkpointed(self._block, "conv3", skip2, temb)
        hidden_states = self._checkpointed(self._block, "mid_conv1", hidden_states, temb)
        hidden_states = self._checkpointed(self._block, "mid_conv2", self.mid_dropout(hidden_states), temb)
        hidden_states = self._checkpointed(self._block, "up1", hidden_states, temb)
        hidden_states = self._checkpointed(self._block, "up2", torch.cat([hidden_states, skip2], dim=1), temb)
        return self.final(torch.cat([hidden_states, skip1], dim=1))

    def _run_level(
        self,
        level: ResidualLevel,
        hidden_states: torch.Tensor,
        temb: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        encoder_attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        for index, resnet in enumerate(level.resnets):
            hidden_states = self._checkpointed(resnet, hidden_states, temb)
            if level.attentions is not None:
                hidden_states = self._checkpointed(
                    level.attentions[index], hidden_states, encoder_hidden_states, encoder_attention_mask
                )
        return hidden_states

    def _forward_residual(
        self,
        sample: torch.Tensor,
        temb: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        encoder_attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        context = (encoder_hidden_states, encoder_attention_mask)
        hidden_states = self.conv_in(sample)
        skips = []
        for level, downsampler in zip(self.down_levels, self.downsamplers):
            hidden_states = self._run_level(level, hidden_states, temb, *context)
            skips.append(hidden_states)
            hidden_states = downsampler(hidden_states)
        hidden_states = self._run_level(self.mid_level, hidden_states, temb, *context)
        for level, upsampler, skip in zip(reversed(self.up_levels), reversed(self.upsamplers), reversed(skips)):
            if self.config.upsample_type == "conv":
                hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
            hidden_states = upsampler(hidden_states)
            hidden_states = self._run_level(level, torch.cat([hidden_states, skip], dim=1), temb, *context)
        return self.conv_out(F.silu(self.norm_out(hidden_states)))

    def _refuse_attention_backend(self, backend: str, enable: bool) -> None:
        if enable:
            raise NotImplementedError(
                f"{type(self).__name__} has no {backend} attention: its self- and cross-attention are written out in "
                "plain torch (the few tokens of its feature maps, 49 at 7x7, attend faster that way), so there is no "
                "kernel to switch to. Leave it off."
            )

    def set_use_memory_efficient_attention_xformers(self, valid: bool, attention_op: Callable | None = None) -> None:
        """Refuses to enable xFormers attention, which this model does not have (see `_refuse_attention_backend`)."""
        self._refuse_attention_backend("xFormers", valid)

    def set_use_npu_flash_attention(self, valid: bool) -> None:
        """Refuses to enable NPU flash attention, which this model does not have."""
        self._refuse_attention_backend("NPU flash", valid)

    def set_use_xla_flash_attention(
        self, use_xla_flash_attention: bool, partition_spec: Callable | None = None, **kwargs
    ) -> None:
        """Refuses to enable XLA flash attention, which this model does not have."""
        self._refuse_attention_backend("XLA flash", use_xla_flash_attention)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple[torch.Tensor]:
        r"""
        Predicts the noise (or sample, or velocity, as trained) of a noisy batch.

        Args:
            sample (`torch.Tensor`): The noisy input of shape `(batch, in_channels, height, width)`; height and width
                must be multiples of `2 ** (levels - 1)`.
            timestep (`torch.Tensor`, `float` or `int`): The diffusion timestep: a number, a 0-d tensor, or a 1-d tensor
                with one entry per sample, of any dtype and on any device. A scalar is broadcast to the batch.
            class_labels (`torch.Tensor`, *optional*): Class indices of shape `(batch,)` for a class-conditional model;
                the index `num_class_embeds` (or `None` for the whole batch) means "no class".
            encoder_hidden_states (`torch.Tensor`, *optional*): Encoder tokens of shape `(batch, tokens,
                cross_attention_dim)` (a text encoder's last hidden states), for a model with `cross_attention_dim`.
            encoder_attention_mask (`torch.Tensor`, *optional*): Shape `(batch, tokens)`, 1 for tokens to attend to and
                0 for padding.
            return_dict (`bool`, *optional*, defaults to `True`): Whether to return a `UNet2DOutput` or a tuple.

        Returns:
            [`~models.unets.unet_2d.UNet2DOutput`] or `tuple`: the prediction, of shape `(batch, out_channels, height,
            width)`.
        """
        if sample.ndim != 4:
            raise ValueError(f"`sample` must have shape (batch, channels, height, width), got {tuple(sample.shape)}.")
        check_spatial_size(sample.shape[-2], sample.shape[-1], num_levels=len(self.config.block_out_channels))
        if class_labels is not None and self.config.num_class_embeds is None:
            raise ValueError(
                "`class_labels` were given to an unconditional model; build it with `num_class_embeds` to condition it."
            )
        if (encoder_hidden_states is None) != (self.config.cross_attention_dim is None):
            raise ValueError(
                "`encoder_hidden_states` must be given exactly when the model has `cross_attention_dim` (it has "
                f"{self.config.cross_attention_dim})."
            )
        if encoder_hidden_states is not None and (
            encoder_hidden_states.ndim != 3
            or encoder_hidden_states.shape[0] != sample.shape[0]
            or encoder_hidden_states.shape[-1] != self.config.cross_attention_dim
        ):
            raise ValueError(
                f"`encoder_hidden_states` must have shape (batch={sample.shape[0]}, tokens, "
                f"{self.config.cross_attention_dim}), got {tuple(encoder_hidden_states.shape)}."
            )
        batch_size = sample.shape[0]
        temb = self._time_embedding(timestep, batch_size, sample.device)
        if self.config.num_class_embeds is not None:
            temb = temb + self._class_embedding(class_labels, batch_size, sample.device)

        if self.config.layers_per_block is None:
            output = self._forward_notebook(sample, temb)
        else:
            output = self._forward_residual(sample, temb, encoder_hidden_states, encoder_attention_mask)
        if not return_dict:
            return (output,)
        return UNet2DOutput(sample=output)
