"""A classic DDPM as first-class HuggingFace Diffusers components."""

from .modeling_simple_unet import SimpleUNet2DModel

__all__ = ["SimpleUNet2DModel"]
