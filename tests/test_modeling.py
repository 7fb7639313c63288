import pytest
import torch

from diffusers_simple_ddpm import SimpleUNet2DModel
from diffusers_simple_ddpm.notebook import SimpleUNet


def tiny_unet(**kwargs) -> SimpleUNet2DModel:
    config = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(4, 8, 8), time_embedding_dim=8)
    config.update(kwargs)
    return SimpleUNet2DModel(**config)


def test_default_is_the_notebook_network():
    torch.manual_seed(0)
    notebook = SimpleUNet(channels=3)
    model = SimpleUNet2DModel()
    assert sum(p.numel() for p in model.parameters()) == 2_377_215
    assert list(model.state_dict()) == list(notebook.state_dict())
    model.load_state_dict(notebook.state_dict(), strict=True)
    sample = torch.randn(3, 3, 32, 32)
    timesteps = torch.tensor([0, 417, 999])
    with torch.no_grad():
        torch.testing.assert_close(model(sample, timesteps).sample, notebook(sample, timesteps), rtol=0, atol=1e-6)


def test_grayscale_notebook_network_loads():
    notebook = SimpleUNet(channels=1)
    model = SimpleUNet2DModel(sample_size=28, in_channels=1, out_channels=1)
    model.load_state_dict(notebook.state_dict(), strict=True)
    sample = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(sample, torch.tensor([3, 4])).sample, notebook(sample, torch.tensor([3, 4])))


@pytest.mark.parametrize(
    "timestep",
    [7, 7.0, torch.tensor(7), torch.tensor(7.0), torch.tensor([7]), torch.tensor([7, 7, 7], dtype=torch.long)],
    ids=["int", "float", "0d-long", "0d-float", "1d-one", "1d-batch"],
)
def test_timestep_forms_broadcast_to_the_batch(timestep):
    torch.manual_seed(0)
    model = tiny_unet().eval()
    sample = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected = model(sample, torch.full((3,), 7.0)).sample
        output = model(sample, timestep)
    assert isinstance(output.sample, torch.Tensor)
    torch.testing.assert_close(output.sample, expected, rtol=0, atol=0)
    assert model(sample, timestep, return_dict=False)[0].shape == (3, 1, 8, 8)


def test_timestep_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="timestep"):
        tiny_unet()(torch.randn(3, 1, 8, 8), torch.tensor([1, 2]))


def test_spatial_size_rule_at_construction_and_forward():
    with pytest.raises(ValueError, match="sample_size.*30x30.*multiples of 4"):
        SimpleUNet2DModel(sample_size=30)
    with pytest.raises(ValueError, match="sample_size.*16x18"):
        SimpleUNet2DModel(sample_size=(16, 18))
    model = tiny_unet()
    with pytest.raises(ValueError, match="10x12.*multiples of 4"):
        model(torch.randn(1, 1, 10, 12), 1)
    assert model(torch.randn(1, 1, 12, 16), 1).sample.shape == (1, 1, 12, 16)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(time_embedding_type="fourier"), "time_embedding_type"),
        (dict(time_injection="every"), "time_injection"),
        (dict(norm_num_groups=3), "norm_num_groups"),
        (dict(dropout=1.5), "dropout"),
        (dict(block_out_channels=(4, 8)), "block_out_channels"),
        (dict(num_class_embeds=0), "num_class_embeds"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_unet(**kwargs)


def test_options_add_parameters_only_when_on():
    plain = set(tiny_unet().state_dict())
    full = tiny_unet(
        time_embedding_type="sinusoidal", time_injection="all", norm_num_groups=4, dropout=0.1, num_class_embeds=10
    )
    extra = set(full.state_dict()) - plain
    assert plain <= set(full.state_dict())
    assert {name.split(".")[0] for name in extra} == {"norms", "time_projs", "class_embedding"}
    assert full.time_mlp[0].in_features == 8
    assert full.class_embedding.num_embeddings == 11


def test_time_injection_all_makes_every_block_depend_on_time():
    torch.manual_seed(0)
    model = tiny_unet(time_injection="all").eval()
    sample = torch.randn(1, 1, 8, 8)
    # Zero the bottleneck injection: only the per-block projections can carry time information then.
    with torch.no_grad():
        model.time_proj.weight.zero_()
        model.time_proj.bias.zero_()
        assert not torch.allclose(model(sample, 10).sample, model(sample, 900).sample)


def test_class_labels():
    torch.manual_seed(0)
    model = tiny_unet(num_class_embeds=3).eval()
    sample = torch.randn(2, 1, 8, 8).repeat(2, 1, 1, 1)
    with torch.no_grad():
        conditional = model(sample, 5, class_labels=torch.tensor([0, 1, 0, 1])).sample
        unconditional = model(sample, 5).sample
        null_labels = model(sample, 5, class_labels=torch.tensor([3, 3, 3, 3])).sample
    torch.testing.assert_close(conditional[:2], conditional[2:])
    assert not torch.allclose(conditional[0], conditional[1])
    torch.testing.assert_close(unconditional, null_labels)
    with pytest.raises(ValueError, match="class_labels.*3 labels.*4 samples"):
        model(sample, 5, class_labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_unet()(sample, 5, class_labels=torch.tensor([0, 1, 0, 1]))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = tiny_unet(time_injection="all", norm_num_groups=4)
    sample, timesteps = torch.randn(2, 1, 8, 8), torch.tensor([3, 500])

    def gradients():
        model.zero_grad()
        model(sample, timesteps).sample.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    conv1_calls = []
    model.conv1.register_forward_hook(lambda *_: conv1_calls.append(1))
    plain = gradients()
    assert len(conv1_calls) == 1
    model.enable_gradient_checkpointing()
    checkpointed_gradients = gradients()
    # Checkpointing recomputes each block's forward pass during the backward pass instead of keeping its activations.
    assert len(conv1_calls) == 3
    for checkpointed, reference in zip(checkpointed_gradients, plain):
        torch.testing.assert_close(checkpointed, reference)


def test_bf16_and_channels_last():
    torch.manual_seed(0)
    model = tiny_unet(norm_num_groups=4, time_embedding_type="sinusoidal").eval()
    sample = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        reference = model(sample, 250).sample
        fast = model.to(torch.bfloat16, memory_format=torch.channels_last)
        output = fast(sample.to(torch.bfloat16, memory_format=torch.channels_last), 250).sample
    assert output.dtype == torch.bfloat16
    torch.testing.assert_close(output.float(), reference, rtol=0.05, atol=0.05)


def test_save_and_load_in_safetensors(tmp_path):
    model = tiny_unet(norm_num_groups=4, num_class_embeds=2)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    reloaded = SimpleUNet2DModel.from_pretrained(tmp_path)
    assert reloaded.config.norm_num_groups == 4 and reloaded.config.num_class_embeds == 2
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, rtol=0, atol=0)
