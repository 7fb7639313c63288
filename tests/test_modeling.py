import pytest
import torch

from diffusers_simple_ddpm import SimpleUNet2DModel
from diffusers_simple_ddpm.modeling_simple_unet import GroupNorm
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


@pytest.mark.parametrize("layout", ["notebook", "residual", "residual-conv-transpose"])
def test_bf16_and_channels_last_match_float32(layout):
    torch.manual_seed(0)
    if layout == "notebook":
        model = tiny_unet(norm_num_groups=4, time_embedding_type="sinusoidal").eval()
    elif layout == "residual":
        model = residual_unet().eval()
    else:
        model = residual_unet(upsample_type="conv_transpose").eval()
    sample = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        reference = model(sample, 250).sample
        fast = model.to(torch.bfloat16, memory_format=torch.channels_last)
        output = fast(sample.to(torch.bfloat16, memory_format=torch.channels_last), 250).sample
    assert output.dtype == torch.bfloat16
    torch.testing.assert_close(output.float(), reference, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("layout", ["notebook", "notebook-linear-time", "residual"])
def test_layerwise_casting_stores_in_bf16_and_computes_in_float32(layout):
    # diffusers' `enable_layerwise_casting`: the time embedding's input used to be cast to the storage dtype, which
    # failed against the weights cast back to float32 ("mat1 and mat2 must have the same dtype").
    torch.manual_seed(0)
    if layout == "residual":
        model = residual_unet().eval()
    else:
        time_embedding_type = "sinusoidal" if layout == "notebook" else "linear"
        model = tiny_unet(norm_num_groups=4, time_embedding_type=time_embedding_type).eval()
    sample = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        reference = model(sample, 250).sample
        model.enable_layerwise_casting(storage_dtype=torch.bfloat16, compute_dtype=torch.float32)
        assert model.time_mlp[0].weight.dtype == torch.bfloat16
        output = model(sample, 250).sample
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, reference, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "enable, backend",
    [
        (lambda model: model.enable_xformers_memory_efficient_attention(), "xFormers"),
        (lambda model: model.enable_npu_flash_attention(), "NPU flash"),
        (lambda model: model.enable_xla_flash_attention(), "XLA flash"),
    ],
    ids=["xformers", "npu", "xla"],
)
def test_attention_backends_it_does_not_have_are_refused_not_ignored(enable, backend):
    model = residual_unet()
    with pytest.raises(NotImplementedError, match=f"has no {backend} attention"):
        enable(model)
    model.disable_xformers_memory_efficient_attention()
    model.disable_npu_flash_attention()
    model.disable_xla_flash_attention()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_group_norm_of_channels_last_activations_equals_torchs_and_stays_channels_last(dtype):
    torch.manual_seed(0)
    ours = GroupNorm(4, 16).to(dtype)
    torch.nn.init.normal_(ours.weight)
    torch.nn.init.normal_(ours.bias)
    reference = torch.nn.GroupNorm(4, 16).to(dtype)
    reference.load_state_dict(ours.state_dict())
    activations = torch.randn(3, 16, 6, 5, dtype=dtype).to(memory_format=torch.channels_last)
    inputs = [activations.clone().requires_grad_(), activations.clone().requires_grad_()]
    output, expected = ours(inputs[0]), reference(inputs[1])
    assert output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous()
    tolerance = {"rtol": 0.02, "atol": 0.02} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(output, expected, **tolerance)
    upstream = torch.randn_like(output)
    output.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(inputs[0].grad, inputs[1].grad, **tolerance)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad, **tolerance)
    # Contiguous activations take torch's own path unchanged.
    contiguous = torch.randn(3, 16, 6, 5, dtype=dtype)
    assert torch.equal(ours(contiguous), reference(contiguous))


def test_save_and_load_in_safetensors(tmp_path):
    model = tiny_unet(norm_num_groups=4, num_class_embeds=2)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    reloaded = SimpleUNet2DModel.from_pretrained(tmp_path)
    assert reloaded.config.norm_num_groups == 4 and reloaded.config.num_class_embeds == 2
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, rtol=0, atol=0)


def residual_unet(**kwargs) -> SimpleUNet2DModel:
    """A tiny model of the residual layout: 3 levels at 8x8, attention at the lowest level."""
    config = dict(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(4, 8, 8), time_embedding_dim=8,
        time_embedding_type="sinusoidal", layers_per_block=1, norm_num_groups=2, attention_levels=(2,),
        attention_head_dim=4, resnet_time_scale_shift="scale_shift",
    )  # fmt: skip
    config.update(kwargs)
    torch.manual_seed(0)
    model = SimpleUNet2DModel(**config)
    # Zero-initialised output layers make a fresh model ignore time, class and text; give every weight a value.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize(
    "kwargs, size",
    [
        (dict(), (8, 8)),
        (dict(layers_per_block=2, resnet_time_scale_shift="default"), (8, 12)),
        (dict(block_out_channels=(4, 8), attention_levels=(0, 1)), (6, 6)),
        (dict(block_out_channels=(4, 8, 8, 8), attention_levels=(1, 3), sample_size=16), (16, 16)),
        (dict(block_out_channels=(8,), attention_levels=(0,), in_channels=3, out_channels=3, sample_size=5), (5, 7)),
        (dict(upsample_type="conv_transpose"), (8, 12)),
        (dict(upsample_type="conv_transpose", block_out_channels=(4, 8, 8, 8), sample_size=16), (16, 8)),
    ],
    ids=["3-levels", "2-layers-additive", "2-levels", "4-levels", "1-level-rgb", "conv-transpose", "conv-transpose-4"],
)
def test_residual_layout_output_shapes(kwargs, size):
    model = residual_unet(**kwargs)
    channels = model.config.in_channels
    output = model(torch.randn(2, channels, *size), torch.tensor([1, 999])).sample
    assert output.shape == (2, model.config.out_channels, *size)
    assert torch.isfinite(output).all()


def test_residual_layout_keeps_the_notebook_layout_intact():
    model = residual_unet()
    names = {name.split(".")[0] for name in model.state_dict()}
    assert names == {"time_mlp", "conv_in", "down_levels", "downsamplers", "mid_level", "upsamplers", "up_levels",
                     "norm_out", "conv_out"}  # fmt: skip
    assert not any(name.startswith(("conv1", "mid_conv", "up1", "final")) for name in model.state_dict())
    assert list(tiny_unet().state_dict()) == list(SimpleUNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(4, 8, 8), time_embedding_dim=8,
        layers_per_block=None).state_dict())  # fmt: skip


def test_residual_layout_spatial_rule_follows_the_number_of_levels():
    with pytest.raises(ValueError, match="sample_size.*12x12.*3 times by 2.*multiples of 8"):
        residual_unet(block_out_channels=(4, 8, 8, 8), sample_size=12)
    with pytest.raises(ValueError, match="6x8.*multiples of 4"):
        residual_unet()(torch.randn(1, 1, 6, 8), 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layers_per_block=0), "layers_per_block"),
        (dict(norm_num_groups=None), "norm_num_groups"),
        (dict(time_injection="all"), "time_injection"),
        (dict(resnet_time_scale_shift="film"), "resnet_time_scale_shift"),
        (dict(attention_levels=(3,)), "attention_levels.*0..2"),
        (dict(attention_head_dim=3), "attention_head_dim"),
        (dict(cross_attention_dim=6, attention_levels=()), "cross_attention_dim.*attention_levels"),
        (dict(block_out_channels=(4, 0, 8)), "block_out_channels"),
        (dict(upsample_type="nearest"), "upsample_type.*conv_transpose.*nearest"),
    ],
)
def test_bad_residual_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        residual_unet(**kwargs)


@pytest.mark.parametrize("option", [dict(attention_levels=(1,)), dict(resnet_time_scale_shift="scale_shift"),
                                    dict(cross_attention_dim=8), dict(upsample_type="conv_transpose")])  # fmt: skip
def test_residual_options_are_refused_in_the_notebook_layout(option):
    with pytest.raises(ValueError, match="residual layout.*layers_per_block"):
        tiny_unet(**option)


@pytest.mark.parametrize("scale_shift", ["default", "scale_shift"])
def test_residual_layout_depends_on_time_and_class(scale_shift):
    model = residual_unet(num_class_embeds=3, resnet_time_scale_shift=scale_shift).eval()
    sample = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        reference = model(sample, 10, class_labels=torch.tensor([0, 1])).sample
        assert not torch.allclose(reference, model(sample, 900, class_labels=torch.tensor([0, 1])).sample)
        assert not torch.allclose(reference, model(sample, 10, class_labels=torch.tensor([2, 1])).sample)


def test_out_of_range_and_float_class_labels_are_refused_with_a_message():
    model = residual_unet(num_class_embeds=3).eval()
    sample = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"class_labels.*0\.\.2, or 3 for no class.*\[0, 7\]"):
        model(sample, 5, class_labels=torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="class_labels.*integer"):
        model(sample, 5, class_labels=torch.tensor([0.0, 1.5]))


def test_cross_attention_reads_the_encoder_tokens_and_honours_the_mask():
    model = residual_unet(cross_attention_dim=6, attention_levels=(1, 2)).eval()
    sample = torch.randn(2, 1, 8, 8)
    tokens = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        reference = model(sample, 10, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample
        other_text = model(sample, 10, encoder_hidden_states=torch.randn(2, 5, 6), encoder_attention_mask=mask).sample
        assert not torch.allclose(reference[0], other_text[0]) and not torch.allclose(reference[1], other_text[1])
        # Changing the masked-out tokens of the first sample changes nothing.
        padded = tokens.clone()
        padded[0, 3:] = torch.randn(2, 6)
        masked = model(sample, 10, encoder_hidden_states=padded, encoder_attention_mask=mask).sample
        torch.testing.assert_close(masked, reference)
        unmasked = model(sample, 10, encoder_hidden_states=padded).sample
        assert not torch.allclose(unmasked[0], reference[0])


def test_encoder_hidden_states_are_checked():
    text_model = residual_unet(cross_attention_dim=6)
    sample = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="encoder_hidden_states.*exactly when.*cross_attention_dim"):
        text_model(sample, 1)
    with pytest.raises(ValueError, match="encoder_hidden_states.*exactly when"):
        residual_unet()(sample, 1, encoder_hidden_states=torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"encoder_hidden_states.*\(batch=2, tokens, 6\).*\(2, 3, 4\)"):
        text_model(sample, 1, encoder_hidden_states=torch.randn(2, 3, 4))


def test_transposed_convolution_upsampling_goes_straight_to_the_higher_levels_width():
    conv = residual_unet()
    transposed = residual_unet(upsample_type="conv_transpose")
    # Widths (4, 8, 8): the 8 -> 4 step up is one 4x4 stride-2 transposed convolution, and the blocks after it take
    # its 4 channels plus the skip's 4 instead of 8 plus 4.
    assert isinstance(transposed.upsamplers[0], torch.nn.ConvTranspose2d)
    assert (transposed.upsamplers[0].in_channels, transposed.upsamplers[0].out_channels) == (8, 4)
    assert transposed.up_levels[0].resnets[0].conv1.in_channels == 8
    assert conv.up_levels[0].resnets[0].conv1.in_channels == 12
    # The transposed convolution reads neighbouring pixels: the output depends on the whole input, as with "conv".
    sample = torch.zeros(1, 1, 8, 8, requires_grad=True)
    transposed(sample, 10).sample[0, 0, 0, 0].backward()
    assert (sample.grad[0, 0] != 0).sum() > 16


@pytest.mark.parametrize("upsample_type", ["conv", "conv_transpose"])
def test_residual_layout_gradient_checkpointing_gives_the_same_gradients(upsample_type):
    model = residual_unet(cross_attention_dim=6, num_class_embeds=2, dropout=0.0, upsample_type=upsample_type)
    inputs = dict(sample=torch.randn(2, 1, 8, 8), timestep=torch.tensor([3, 500]), class_labels=torch.tensor([0, 1]),
                  encoder_hidden_states=torch.randn(2, 4, 6))  # fmt: skip

    def gradients():
        model.zero_grad()
        model(**inputs).sample.square().mean().backward()
        return [parameter.grad.clone() for parameter in model.parameters()]

    plain = gradients()
    model.enable_gradient_checkpointing()
    for checkpointed, reference in zip(gradients(), plain):
        torch.testing.assert_close(checkpointed, reference)


@pytest.mark.parametrize("upsample_type", ["conv", "conv_transpose"])
def test_residual_layout_save_and_reload_give_the_same_outputs(tmp_path, upsample_type):
    model = residual_unet(block_out_channels=(4, 8, 8, 8), attention_levels=(2, 3), num_class_embeds=2,
                          upsample_type=upsample_type).eval()  # fmt: skip
    model.save_pretrained(tmp_path)
    reloaded = SimpleUNet2DModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.layers_per_block == 1 and tuple(reloaded.config.attention_levels) == (2, 3)
    assert reloaded.config.upsample_type == upsample_type
    sample = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(sample, 7, class_labels=torch.tensor([1, 0])).sample,
                                   model(sample, 7, class_labels=torch.tensor([1, 0])).sample, rtol=0, atol=1e-6)  # fmt: skip


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = SimpleUNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                              time_embedding_type="sinusoidal", time_embedding_dim=16, layers_per_block=1,
                              norm_num_groups=4, attention_levels=(1,), attention_head_dim=8,
                              resnet_time_scale_shift="scale_shift")  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    clean = torch.zeros(16, 1, 8, 8)
    clean[:, :, 2:6, 3:5] = 1.0  # one bar, the same in every image
    noise = torch.randn(16, 1, 8, 8)
    alpha = torch.linspace(0.2, 0.9, 16)[:, None, None, None]
    noisy = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
    timesteps = torch.linspace(900, 100, 16)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(model(noisy, timesteps).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
