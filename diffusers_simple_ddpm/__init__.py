"""A classic DDPM as first-class HuggingFace Diffusers components."""

import importlib
from typing import TYPE_CHECKING, Any

# The public classes and the modules that define them. They are imported on first use, so that light entry points
# (the training program's `--help`, `simple-ddpm train`) do not pay for importing torch and 🤗 Diffusers.
_CLASS_MODULES = {
    "SimpleDDPMPipeline": "pipeline_simple_ddpm",
    "SimpleDDPMScheduler": "scheduling_simple_ddpm",
    "SimpleDDPMSchedulerOutput": "scheduling_simple_ddpm",
    "SimpleDDPMTextPipeline": "pipeline_simple_ddpm_text",
    "SimpleUNet2DModel": "modeling_simple_unet",
}

if TYPE_CHECKING:
    from .modeling_simple_unet import SimpleUNet2DModel
    from .pipeline_simple_ddpm import SimpleDDPMPipeline
    from .pipeline_simple_ddpm_text import SimpleDDPMTextPipeline
    from .scheduling_simple_ddpm import SimpleDDPMScheduler, SimpleDDPMSchedulerOutput

__all__ = sorted(_CLASS_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _CLASS_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_CLASS_MODULES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_CLASS_MODULES))
