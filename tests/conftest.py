import httpx2
import huggingface_hub
import pytest
import torch
from fake_hub import FakeHub
from huggingface_hub.utils._http import default_client_factory

from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel


def make_tiny_unet(in_channels: int = 1, **kwargs) -> SimpleUNet2DModel:
    """A SimpleUNet2DModel of a few thousand parameters at 8x8, for fast tests."""
    torch.manual_seed(0)
    config = dict(
        sample_size=8,
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=(4, 8, 8),
        time_embedding_dim=8,
        time_embedding_type="sinusoidal",
    )
    config.update(kwargs)
    return SimpleUNet2DModel(**config).eval()


@pytest.fixture
def tiny_pipeline() -> SimpleDDPMPipeline:
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def fake_hub() -> FakeHub:
    """huggingface_hub's real client talking to a `FakeHub` instead of the network, for the test's duration."""
    hub = FakeHub()
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle)))
    yield hub
    huggingface_hub.set_client_factory(default_client_factory)
