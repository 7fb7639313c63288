"""A classic DDPM as first-class HuggingFace Diffusers components."""

from .modeling_simple_unet import SimpleUNet2DModel
from .pipeline_simple_ddpm import SimpleDDPMPipeline
from .pipeline_simple_ddpm_text import SimpleDDPMTextPipeline
from .scheduling_simple_ddpm import SimpleDDPMScheduler, SimpleDDPMSchedulerOutput

__all__ = [
    "SimpleDDPMPipeline",
    "SimpleDDPMScheduler",
    "SimpleDDPMSchedulerOutput",
    "SimpleDDPMTextPipeline",
    "SimpleUNet2DModel",
]
