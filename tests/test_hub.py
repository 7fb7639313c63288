"""
Tests of loading by repo id, pushing with a model card, and repositories that load without the package.

The Hub cannot be reached from here. Tests that go through the network use huggingface_hub's real client with only its
HTTP transport replaced: `FakeHub` answers the Hub's API for one repository through an `httpx2.MockTransport`,
installed with `huggingface_hub.set_client_factory`. Tests of other environments (offline mode, no package) run in a
subprocess.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from conftest import make_tiny_unet
from diffusers import DDPMScheduler, DiffusionPipeline
from fake_hub import COMMIT, REPO_ID
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load as load_safetensors

from diffusers_simple_ddpm import (
    SimpleDDPMPipeline,
    SimpleDDPMScheduler,
    SimpleUNet2DModel,
    modeling_simple_unet,
    pipeline_simple_ddpm,
)
from diffusers_simple_ddpm.hub_utils import (
    BUILTIN_MNIST_CARD_NAME,
    CLASS_CONDITIONAL_TASK,
    MODEL_CARD_TEMPLATE_PATH,
    TRAINING_TIME_NAME,
    EvaluationResults,
    TrainingDetails,
    create_model_card,
    metric_id,
    read_training_time,
    training_data_for_card,
    write_training_time,
)

REPO_ROOT = Path(__file__).parents[1]
PIPELINE_FILES = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
}
CODE_FILES = {"pipeline_simple_ddpm.py", "unet/modeling_simple_unet.py"}
# Sampling in the subprocesses below, written out as in `sample`.
SAMPLE_CODE = (
    "pipeline(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=4, output_type='np')"
)


def sample(pipeline: DiffusionPipeline) -> np.ndarray:
    return pipeline(
        batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=4, output_type="np"
    ).images


def folder_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def run_python(code: str, cwd: Path, **env: str) -> str:
    """Runs `code` in a fresh interpreter and returns its output; the test fails with its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def saved_pipeline(tiny_pipeline, tmp_path) -> Path:
    folder = tmp_path / "ddpm-tiny"
    tiny_pipeline.save_pretrained(folder)
    return folder


@pytest.fixture
def training_details(tmp_path) -> TrainingDetails:
    grid = tmp_path / "grid.png"
    Image.new("L", (16, 16), color=128).save(grid)
    evaluation = EvaluationResults(
        metrics={"FID": 12.5, "KID": 0.0042},
        protocol="2,000 samples of 1000 DDPM steps against the 10,000 test digits, Inception-v3 pool features.",
        dataset_name="MNIST test split",
        dataset_id="ylecun/mnist",
        dataset_split="test",
    )
    return TrainingDetails(
        dataset_name="MNIST training split",
        dataset_id="ylecun/mnist",
        num_train_steps=3000,
        num_epochs=4,
        train_batch_size=64,
        num_processes=2,
        gradient_accumulation_steps=2,
        learning_rate=3e-4,
        lr_scheduler="cosine",
        lr_warmup_steps=200,
        mixed_precision="bf16",
        use_ema=True,
        hardware="2 x NVIDIA H200",
        wall_time_seconds=1234.0,
        seed=7,
        evaluation=evaluation,
        sample_grid=grid,
    )


def test_diffusers_download_rejects_the_package_layout_and_from_pretrained_loads_it(
    tiny_pipeline, saved_pipeline, fake_hub, tmp_path
):
    fake_hub.files = folder_files(saved_pipeline) | {"README.md": b"# card", "logs/events.out": b"log"}
    # diffusers takes a component from outside diffusers and transformers for code the repository must carry.
    with pytest.raises(
        ValueError,
        match=r"(unet|scheduler)/diffusers_simple_ddpm\.\w+\.py as defined in `model_index.json` does not exist",
    ):
        DiffusionPipeline.download(REPO_ID, cache_dir=tmp_path / "diffusers-cache")

    fake_hub.requests.clear()
    loaded = SimpleDDPMPipeline.from_pretrained(
        REPO_ID, revision=COMMIT, cache_dir=tmp_path / "cache", token="hf_read", dtype=torch.float32
    )
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(loaded), sample(tiny_pipeline))
    assert loaded.name_or_path == REPO_ID
    downloaded = {
        request.url.path.removeprefix(f"/{REPO_ID}/resolve/{COMMIT}/")
        for request in fake_hub.repository_requests()
        if request.method == "GET" and "/resolve/" in request.url.path
    }
    # The model card comes along, so that a push of the loaded pipeline keeps it; logs do not.
    assert downloaded == PIPELINE_FILES | {"README.md"}
    assert loaded.model_card_files == {"README.md": b"# card"}
    assert {request.headers["authorization"] for request in fake_hub.repository_requests()} == {"Bearer hf_read"}


@pytest.mark.slow
def test_load_by_repo_id_offline_from_the_hub_cache(tiny_pipeline, saved_pipeline, tmp_path):
    cache = tmp_path / "hub-cache"
    repository = cache / "models--user--ddpm-tiny"
    shutil.copytree(saved_pipeline, repository / "snapshots" / COMMIT)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(COMMIT)
    output = run_python(
        f"""
import numpy as np, torch
from diffusers_simple_ddpm import SimpleDDPMPipeline, SimpleDDPMScheduler, SimpleUNet2DModel

pipeline = SimpleDDPMPipeline.from_pretrained("{REPO_ID}")
pipeline.set_progress_bar_config(disable=True)
np.save("images.npy", {SAMPLE_CODE}.images)
pinned = SimpleDDPMPipeline.from_pretrained(
    "{REPO_ID}", revision="{COMMIT}", cache_dir=r"{cache}", token="hf_unused", dtype=torch.bfloat16
)
assert pinned.unet.dtype == torch.bfloat16, pinned.unet.dtype
unet = SimpleUNet2DModel.from_pretrained("{REPO_ID}", subfolder="unet")
torch.testing.assert_close(unet.state_dict(), pipeline.unet.state_dict(), rtol=0, atol=0)
scheduler = SimpleDDPMScheduler.from_pretrained("{REPO_ID}", subfolder="scheduler")
assert scheduler.config == pipeline.scheduler.config
try:
    SimpleDDPMPipeline.from_pretrained("user/never-downloaded")
except OSError as error:
    print(error)
""",
        cwd=tmp_path,
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(cache),
    )
    np.testing.assert_array_equal(np.load(tmp_path / "images.npy"), sample(tiny_pipeline))
    assert "'user/never-downloaded'" in output and "not in the Hugging Face cache" in output
    assert "Load it once while online" in output


def test_push_uploads_exactly_the_pipeline_files_and_card(tiny_pipeline, training_details, fake_hub, tmp_path):
    output_dir = tmp_path / "ddpm-tiny"
    for leftover in ("checkpoint-500/optimizer.bin", "logs/events.out.tfevents", ".cache/lock"):
        (output_dir / leftover).parent.mkdir(parents=True, exist_ok=True)
        (output_dir / leftover).write_bytes(b"not part of the pipeline")
    tiny_pipeline.training_details = training_details
    tiny_pipeline.save_pretrained(
        output_dir, push_to_hub=True, repo_id=REPO_ID, token="hf_write", private=True, commit_message="Train 3000 steps"
    )

    (commit,) = fake_hub.commits
    assert commit["summary"] == "Train 3000 steps"
    assert set(commit["files"]) == PIPELINE_FILES | {"README.md", "sample_grid.png"}
    for name, data in commit["files"].items():
        assert data == (output_dir / name).read_bytes(), name
    assert commit["files"]["sample_grid.png"] == training_details.sample_grid.read_bytes()
    weights = load_safetensors(commit["files"]["unet/diffusion_pytorch_model.safetensors"])
    torch.testing.assert_close(weights, tiny_pipeline.unet.state_dict(), rtol=0, atol=0)
    assert fake_hub.created_repos == [{"name": "ddpm-tiny", "organization": "user", "visibility": "private"}]
    assert {request.headers["authorization"] for request in fake_hub.repository_requests()} == {"Bearer hf_write"}


def test_push_to_hub_with_code_and_without_training_details(tiny_pipeline, fake_hub):
    tiny_pipeline.push_to_hub(REPO_ID, private=False, token="hf_write", include_code=True)

    (commit,) = fake_hub.commits
    assert commit["summary"] == "Upload SimpleDDPMPipeline"
    assert set(commit["files"]) == PIPELINE_FILES | CODE_FILES | {"README.md"}
    assert commit["files"]["pipeline_simple_ddpm.py"] == Path(pipeline_simple_ddpm.__file__).read_bytes()
    assert commit["files"]["unet/modeling_simple_unet.py"] == Path(modeling_simple_unet.__file__).read_bytes()
    card = ModelCard(commit["files"]["README.md"].decode())
    assert (
        "trust_remote_code=True" in card.text
        and "This pipeline was saved without a record of its training" in card.text
    )
    assert fake_hub.created_repos == [{"name": "ddpm-tiny", "organization": "user", "visibility": "public"}]


def test_save_pretrained_pushes_to_the_folder_name_in_the_token_namespace(tiny_pipeline, fake_hub, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "ddpm-tiny", push_to_hub=True, repo_id=None, token="hf_write")
    # The Hub puts a repository named without namespace in the token's namespace; FakeHub answers "user".
    assert fake_hub.created_repos == [{"name": "ddpm-tiny", "organization": None}]
    (commit,) = fake_hub.commits
    assert set(commit["files"]) == PIPELINE_FILES | {"README.md"}
    assert f'SimpleDDPMPipeline.from_pretrained("{REPO_ID}")' in commit["files"]["README.md"].decode()


def test_a_loaded_pipeline_pushes_and_saves_its_trained_card(tiny_pipeline, training_details, fake_hub, tmp_path):
    run = tmp_path / "run1"
    tiny_pipeline.training_details = training_details
    tiny_pipeline.save_pretrained(run, repo_id=REPO_ID)
    trained = folder_files(run)

    loaded = SimpleDDPMPipeline.from_pretrained(run)
    assert loaded.training_details is None and set(loaded.model_card_files) == {"README.md", "sample_grid.png"}
    loaded.push_to_hub(REPO_ID, token="hf_write")
    loaded.save_pretrained(run, push_to_hub=True, repo_id=REPO_ID, token="hf_write")
    for commit in fake_hub.commits:
        assert commit["files"]["README.md"] == trained["README.md"]
        assert commit["files"]["sample_grid.png"] == trained["sample_grid.png"]
    for name in ("README.md", "sample_grid.png"):
        assert (run / name).read_bytes() == trained[name], name

    # Saved elsewhere, the card is unchanged; for another repository, its snippets load that one.
    loaded.save_pretrained(tmp_path / "copy")
    for name in ("README.md", "sample_grid.png"):
        assert (tmp_path / "copy" / name).read_bytes() == trained[name], name
    loaded.save_pretrained(tmp_path / "other", repo_id="user/other")
    expected = trained["README.md"].decode().replace(f'from_pretrained("{REPO_ID}"', 'from_pretrained("user/other"')
    assert (tmp_path / "other" / "README.md").read_text() == expected != trained["README.md"].decode()


def test_a_kept_card_says_how_to_load_without_the_package_exactly_when_the_code_goes_with_it(
    tiny_pipeline, training_details, fake_hub, tmp_path
):
    # A kept card was written as it was: pushed with its code, it lacked the remote-code snippet (and kept it without).
    tiny_pipeline.training_details = training_details
    tiny_pipeline.save_pretrained(tmp_path / "plain", repo_id=REPO_ID)
    tiny_pipeline.save_pretrained(tmp_path / "with-code", repo_id=REPO_ID, include_code=True)
    plain_card, code_card = ((tmp_path / name / "README.md").read_text() for name in ("plain", "with-code"))
    assert "### Without the package" in code_card and "trust_remote_code=True" not in plain_card

    loaded = SimpleDDPMPipeline.from_pretrained(tmp_path / "plain")
    loaded.push_to_hub(REPO_ID, token="hf_write", include_code=True)
    assert fake_hub.commits[0]["files"]["README.md"].decode() == code_card
    loaded.save_pretrained(tmp_path / "copy", include_code=True)
    assert (tmp_path / "copy" / "README.md").read_text() == code_card
    reloaded = SimpleDDPMPipeline.from_pretrained(tmp_path / "with-code")
    reloaded.save_pretrained(tmp_path / "copy-without-code", include_code=False)
    assert (tmp_path / "copy-without-code" / "README.md").read_text() == plain_card
    # A card this package did not write stays as it is.
    foreign = SimpleDDPMPipeline.from_pretrained(tmp_path / "plain")
    foreign.model_card_files = {"README.md": b"# card"}
    foreign.save_pretrained(tmp_path / "foreign", include_code=True)
    assert (tmp_path / "foreign" / "README.md").read_text() == "# card"


def test_a_push_never_replaces_the_card_of_the_folder_with_a_blank_one(
    tiny_pipeline, training_details, fake_hub, tmp_path
):
    folder = tmp_path / "ddpm-tiny"
    tiny_pipeline.training_details = training_details
    tiny_pipeline.save_pretrained(folder)
    card = (folder / "README.md").read_bytes()
    fresh = SimpleDDPMPipeline(unet=tiny_pipeline.unet, scheduler=tiny_pipeline.scheduler)
    fresh.save_pretrained(folder, push_to_hub=True, repo_id=REPO_ID, token="hf_write")
    assert (folder / "README.md").read_text() == card.decode().replace(
        'from_pretrained("ddpm-tiny"', f'from_pretrained("{REPO_ID}"'
    )
    assert "without a record of its training" not in fake_hub.commits[0]["files"]["README.md"].decode()


def test_model_card_template_is_the_top_level_model_card():
    # One file: the packaged template is a link to model_card.md, so there is no copy to keep in step.
    assert MODEL_CARD_TEMPLATE_PATH.is_symlink()
    assert MODEL_CARD_TEMPLATE_PATH.resolve() == (REPO_ROOT / "model_card.md").resolve()


@pytest.mark.slow
def test_wheel_carries_the_model_card_template(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        template = archive.read("diffusers_simple_ddpm/assets/model_card.md")
    assert template == (REPO_ROOT / "model_card.md").read_bytes()


def test_save_pretrained_writes_the_model_card_of_a_run(tiny_pipeline, training_details, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "untrained")
    assert not (tmp_path / "untrained" / "README.md").exists()

    tiny_pipeline.training_details = training_details
    folder = tmp_path / "ddpm-tiny"
    tiny_pipeline.save_pretrained(folder, repo_id=REPO_ID)
    assert (folder / "sample_grid.png").read_bytes() == training_details.sample_grid.read_bytes()
    card = ModelCard.load(folder / "README.md")
    expected = create_model_card(tiny_pipeline, REPO_ID, training_details=training_details)
    assert card.data.to_dict() == expected.data.to_dict()
    metadata = card.data.to_dict()
    assert metadata["library_name"] == "diffusers" and metadata["license"] == "apache-2.0"
    assert metadata["pipeline_tag"] == "unconditional-image-generation"
    assert {"diffusers_simple_ddpm", "ddpm", "unconditional-image-generation"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["ylecun/mnist"]
    results = {(result.metric_type, result.metric_name): result for result in card.data.eval_results}
    assert set(results) == {("fid", "FID"), ("kid", "KID")}
    assert results["fid", "FID"].metric_value == 12.5 and results["fid", "FID"].dataset_type == "ylecun/mnist"
    assert results["kid", "KID"].dataset_split == "test" and card.data.model_name == "ddpm-tiny"
    for fact in (
        "MNIST training split",
        "8x8, grayscale",
        "| Optimizer updates | 3000 (4 epochs) |",
        "256 images per update (64 per device, 2 processes, gradient accumulation 2)",
        "0.0003, cosine schedule, 200 warm-up updates",
        "| Mixed precision | bf16 |",
        "decay up to 0.9999",
        "| Loss | mean squared error of the predicted noise |",
        "2 x NVIDIA H200",
        "20 min 34 s",
        "| FID | 12.5 |",
        training_details.evaluation.protocol,
        "## Limitations",
        "![Samples of this pipeline](sample_grid.png)",
        f'SimpleDDPMPipeline.from_pretrained("{REPO_ID}")',
    ):
        assert fact in card.text, fact
    assert "trust_remote_code" not in card.text
    assert "Min-SNR" not in card.text


@pytest.mark.parametrize(
    "beta_schedule, statement",
    [
        ("linear", "1000 diffusion steps, linear β from 0.0001 to 0.02."),
        ("squaredcos_cap_v2", "1000 diffusion steps, the cosine β schedule (`squaredcos_cap_v2`)."),
    ],
)
def test_the_card_states_the_noise_schedule(beta_schedule, statement):
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler(beta_schedule=beta_schedule))
    assert statement in create_model_card(pipeline, REPO_ID).text


@pytest.mark.parametrize(
    "num_train_steps, num_epochs, row",
    [
        (9380, 9380 / 938, "| Optimizer updates | 9380 (10 epochs) |"),
        (7500, 2, "| Optimizer updates | 7500 (2 epochs) |"),
        (938, 1.0, "| Optimizer updates | 938 (1 epoch) |"),
        # A run that ends within an epoch: never rounded up to a pass over the data it did not make.
        (4700, 4700 / 938, "| Optimizer updates | 4700 (5.01 epochs) |"),
        (20, 20 / 3750, "| Optimizer updates | 20 (0.53% of an epoch) |"),
        (3749, 3749 / 3750, "| Optimizer updates | 3749 (99% of an epoch) |"),
        (29, 0.29, "| Optimizer updates | 29 (29% of an epoch) |"),
        (9381, 9381 / 938, "| Optimizer updates | 9381 (10.00 epochs) |"),
    ],
)
def test_the_card_states_partial_epochs_without_rounding_up(
    tiny_pipeline, training_details, num_train_steps, num_epochs, row
):
    training_details = dataclasses.replace(training_details, num_train_steps=num_train_steps, num_epochs=num_epochs)
    assert row in create_model_card(tiny_pipeline, REPO_ID, training_details=training_details).text


def test_the_card_states_the_min_snr_weighting_of_a_run(tiny_pipeline, training_details, tmp_path):
    training_details.snr_gamma = 5.0
    tiny_pipeline.training_details = training_details
    tiny_pipeline.save_pretrained(tmp_path / "ddpm-tiny")
    card = (tmp_path / "ddpm-tiny" / "README.md").read_text()
    assert "| Loss | mean squared error of the predicted noise, Min-SNR-γ weighting with γ = 5.0 |" in card


def test_the_card_of_an_autoguided_pipeline_says_how_to_guide(training_details, tmp_path):
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler(), guidance_unet=make_tiny_unet())
    pipeline.training_details = dataclasses.replace(training_details, autoguidance_step=300)
    pipeline.save_pretrained(tmp_path / "ddpm-tiny")
    card = " ".join((tmp_path / "ddpm-tiny" / "README.md").read_text().split())
    assert "**Guiding model:** `guidance_unet`, the same network after 300 of its 3000 updates, for autoguidance" in card
    assert "| Autoguidance | guiding model: the EMA weights after update 300 |" in card
    assert card.count("guidance_scale=2.0") == 2
    # The snippet for users without the package guides too.
    pipeline.save_pretrained(tmp_path / "with-code", include_code=True)
    _, remote_snippet = re.findall(r"```python\n(.*?)```", (tmp_path / "with-code" / "README.md").read_text(), re.DOTALL)
    assert "trust_remote_code=True" in remote_snippet and "guidance_scale=2.0" in remote_snippet
    plain = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler())
    plain.training_details = training_details
    plain.save_pretrained(tmp_path / "plain")
    plain_card = (tmp_path / "plain" / "README.md").read_text()
    assert "Guiding model" not in plain_card and "guidance_scale" not in plain_card and "Autoguidance" not in plain_card


@pytest.mark.slow
@pytest.mark.parametrize("num_class_embeds, autoguided", [(None, False), (3, False), (None, True)])
def test_model_card_usage_snippet_runs(num_class_embeds, autoguided, training_details, tmp_path, monkeypatch):
    # 50 diffusion steps keep the snippet's full DDPM sampling fast.
    pipeline = SimpleDDPMPipeline(
        unet=make_tiny_unet(num_class_embeds=num_class_embeds),
        scheduler=SimpleDDPMScheduler(num_train_timesteps=50),
        guidance_unet=make_tiny_unet() if autoguided else None,
    )
    pipeline.training_details = training_details
    pipeline.save_pretrained(tmp_path / "ddpm-tiny")
    card_text = (tmp_path / "ddpm-tiny" / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", card_text, flags=re.DOTALL)
    # The snippet loads "ddpm-tiny", the folder's name: from the folder's parent, that is the local folder.
    monkeypatch.chdir(tmp_path)
    exec(snippet, {})
    for grid in ("samples.png", "samples_dpm.png"):
        assert Image.open(tmp_path / grid).size == (4 * 8, 4 * 8)


def test_include_code_writes_diffusers_custom_code_layout(saved_pipeline, tiny_pipeline, tmp_path):
    folder = tmp_path / "with-code"
    tiny_pipeline.save_pretrained(folder, include_code=True)
    assert set(folder_files(folder)) == PIPELINE_FILES | CODE_FILES
    assert (folder / "pipeline_simple_ddpm.py").read_bytes() == Path(pipeline_simple_ddpm.__file__).read_bytes()
    assert (folder / "unet" / "modeling_simple_unet.py").read_bytes() == Path(
        modeling_simple_unet.__file__
    ).read_bytes()
    model_index = json.loads((folder / "model_index.json").read_text())
    assert model_index["_class_name"] == ["pipeline_simple_ddpm", "SimpleDDPMPipeline"]
    assert model_index["unet"] == ["modeling_simple_unet", "SimpleUNet2DModel"]
    assert model_index["scheduler"] == ["diffusers", "DDPMScheduler"]
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    torch.testing.assert_close(scheduler.alphas_cumprod, tiny_pipeline.scheduler.alphas_cumprod, rtol=0, atol=0)
    assert (
        folder_files(folder)["unet/diffusion_pytorch_model.safetensors"]
        == folder_files(saved_pipeline)["unet/diffusion_pytorch_model.safetensors"]
    )


def test_code_in_a_repository_imports_only_torch_and_diffusers():
    for module in (pipeline_simple_ddpm, modeling_simple_unet):
        source = Path(module.__file__).read_text()
        imported = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, flags=re.MULTILINE)
        top_level = {name.split(".")[0] for name in imported}
        assert top_level - set(sys.stdlib_module_names) <= {"torch", "diffusers"}, (module.__name__, top_level)


@pytest.mark.slow
@pytest.mark.parametrize("autoguided", [False, True])
def test_repository_with_code_loads_without_the_package(autoguided, training_details, tmp_path):
    pipeline = SimpleDDPMPipeline(
        unet=make_tiny_unet(),
        scheduler=SimpleDDPMScheduler(num_train_timesteps=50),
        guidance_unet=make_tiny_unet() if autoguided else None,
    )
    pipeline.set_progress_bar_config(disable=True)
    pipeline.training_details = training_details
    pipeline.save_pretrained(tmp_path / "ddpm-tiny", include_code=True)
    _, remote_snippet = re.findall(
        r"```python\n(.*?)```", (tmp_path / "ddpm-tiny" / "README.md").read_text(), re.DOTALL
    )
    output = run_python(
        f"""
import sys
sys.modules["diffusers_simple_ddpm"] = None  # makes `import diffusers_simple_ddpm` fail, whatever is installed
try:
    import diffusers_simple_ddpm
except ImportError:
    print("no package")
exec({remote_snippet!r})  # the model card's snippet for users without the package
assert len(images) == 16

import numpy as np, torch
from diffusers import DiffusionPipeline

pipeline = DiffusionPipeline.from_pretrained("ddpm-tiny", trust_remote_code=True)
pipeline.set_progress_bar_config(disable=True)
print(type(pipeline).__module__, type(pipeline.unet).__module__, type(pipeline.scheduler).__name__)
np.save("remote.npy", {SAMPLE_CODE}.images)
pipeline.save_pretrained("resaved")
pipeline = DiffusionPipeline.from_pretrained("resaved", trust_remote_code=True)
pipeline.set_progress_bar_config(disable=True)
np.save("resaved.npy", {SAMPLE_CODE}.images)
""",
        cwd=tmp_path,
        HF_MODULES_CACHE=str(tmp_path / "modules"),
    )
    assert output.splitlines()[0] == "no package"
    assert output.splitlines()[1] == (
        "diffusers_modules.local.pipeline_simple_ddpm diffusers_modules.local.modeling_simple_unet DDPMScheduler"
    )
    # DDPMScheduler and SimpleDDPMScheduler agree to float32 rounding (tests/test_scheduler.py).
    np.testing.assert_allclose(np.load(tmp_path / "remote.npy"), sample(pipeline), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "resaved.npy"), np.load(tmp_path / "remote.npy"))
    guidance_files = {f"guidance_unet/{name}" for name in ("config.json", "diffusion_pytorch_model.safetensors")}
    guidance_files |= {"guidance_unet/modeling_simple_unet.py"}
    expected_files = PIPELINE_FILES | CODE_FILES | (guidance_files if autoguided else set())
    assert set(folder_files(tmp_path / "resaved")) == expected_files


def test_package_loads_a_repository_with_code_as_its_own_classes(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "with-code", include_code=True)
    loaded = SimpleDDPMPipeline.from_pretrained(tmp_path / "with-code")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is SimpleDDPMPipeline and type(loaded.unet) is SimpleUNet2DModel
    assert type(loaded.scheduler) is DDPMScheduler
    np.testing.assert_allclose(sample(loaded), sample(tiny_pipeline), rtol=0, atol=1e-5)

    for include_code in (False, True):
        resaved_folder = tmp_path / f"resaved-{include_code}"
        loaded.save_pretrained(resaved_folder, include_code=include_code)
        resaved = SimpleDDPMPipeline.from_pretrained(resaved_folder)
        resaved.set_progress_bar_config(disable=True)
        assert type(resaved.unet) is SimpleUNet2DModel
        np.testing.assert_array_equal(sample(resaved), sample(loaded))


@pytest.mark.parametrize(
    "make_folder, match",
    [
        (
            lambda folder: folder.mkdir(),
            r"no model_index.json\. Pass the folder that `SimpleDDPMPipeline.save_pretrained`",
        ),
        (
            lambda folder: make_tiny_unet().save_pretrained(folder),
            r"It holds a model: load it with `SimpleUNet2DModel.from_pretrained\(folder\)`",
        ),
        (
            lambda folder: SimpleDDPMScheduler().save_pretrained(folder),
            r"It holds a scheduler: load it with `SimpleDDPMScheduler.from_pretrained\(folder\)`",
        ),
    ],
)
def test_a_folder_that_is_not_a_pipeline(make_folder, match, tmp_path):
    make_folder(tmp_path / "folder")
    with pytest.raises(ValueError, match=match):
        SimpleDDPMPipeline.from_pretrained(tmp_path / "folder")


@pytest.mark.parametrize("name", ["runs/ddpm/final", "user/ddpm mnist", "../ddpm-mnist"])
def test_malformed_repo_ids(tiny_pipeline, name, fake_hub):
    with pytest.raises(ValueError, match="`pretrained_model_name_or_path` is .*neither an existing folder"):
        SimpleDDPMPipeline.from_pretrained(name)
    with pytest.raises(ValueError, match="`repo_id` is .*not a valid Hub repo id.*'namespace/name'"):
        tiny_pipeline.push_to_hub(name, token="hf_write")
    assert fake_hub.repository_requests() == []


def test_push_without_a_token(tiny_pipeline, fake_hub, tmp_path, monkeypatch):
    # A logged-out user: no token in the environment, none in the token file.
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ValueError, match="needs a Hugging Face token with write access.*`hf auth login`"):
        tiny_pipeline.push_to_hub(REPO_ID)
    assert fake_hub.repository_requests() == []


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(mixed_precision="fp64"), "`mixed_precision` must be one of"),
        (dict(num_train_steps=0), "`num_train_steps` must be a positive integer"),
        (dict(num_epochs=0.0), "`num_epochs` must be positive, got 0.0"),
        (dict(num_epochs=float("inf")), "`num_epochs` must be a finite number, got inf"),
        (dict(sample_grid="missing.png"), "`sample_grid` must be an existing image file"),
        (
            dict(evaluation=dict(metrics={"FID": float("nan")}, protocol="p", dataset_name="d")),
            r"`metrics\['FID'\]` must be a finite number",
        ),
    ],
)
def test_training_details_check_their_values(training_details, changes, match):
    values = {**training_details.__dict__, **changes}
    with pytest.raises(ValueError, match=match):
        if isinstance(values["evaluation"], dict):
            values["evaluation"] = EvaluationResults(**values["evaluation"])
        TrainingDetails(**values)


def test_evaluation_results_take_numpy_numbers_as_plain_ones():
    evaluation = EvaluationResults(
        metrics={"FID": np.float32(4.25), "Samples": np.int64(500)}, protocol="p", dataset_name="d"
    )
    assert evaluation.metrics == {"FID": 4.25, "Samples": 500}
    assert type(evaluation.metrics["FID"]) is float and type(evaluation.metrics["Samples"]) is int
    pipeline = SimpleDDPMPipeline(unet=make_tiny_unet(), scheduler=SimpleDDPMScheduler())
    card = create_model_card(pipeline, REPO_ID, training_details=None)
    card.data.eval_results = evaluation.to_eval_results()
    assert "numpy" not in card.data.to_yaml() and "value: 4.25" in card.data.to_yaml()
    tensor_error = r"`metrics\['FID'\]` must be a finite number, got tensor\(4\.\d*\)\. Call `\.item\(\)`"
    with pytest.raises(ValueError, match=tensor_error):
        EvaluationResults(metrics={"FID": torch.tensor(4.2)}, protocol="p", dataset_name="d")
    with pytest.raises(ValueError, match=r"`floors\['FID floor'\]` must be a finite number, got True\.$"):
        EvaluationResults(metrics={"FID": 4.2}, floors={"FID floor": True}, protocol="p", dataset_name="d")


def test_floors_are_in_the_card_table_but_not_in_the_model_index(tiny_pipeline, training_details):
    training_details.evaluation = dataclasses.replace(
        training_details.evaluation, floors={"Fréchet distance floor (real digits)": 6.56}
    )
    card = create_model_card(tiny_pipeline, REPO_ID, training_details=training_details)
    assert {result.metric_name for result in card.data.eval_results} == {"FID", "KID"}
    assert "floor" not in card.data.to_yaml()
    assert "| FID | 12.5 |\n| KID | 0.0042 |\n| Fréchet distance floor (real digits) | 6.56 |" in card.text


def test_metric_ids_are_clean_ascii():
    assert metric_id("Fréchet distance (MNIST classifier features)") == "frechet_distance_mnist_classifier_features"
    evaluation = EvaluationResults(metrics={"Fréchet distance floor (real digits)": 6.6}, protocol="p", dataset_name="d")
    (result,) = evaluation.to_eval_results()
    assert result.metric_type == "frechet_distance_floor_real_digits"


def test_a_class_conditional_card_is_not_tagged_unconditional(training_details, tmp_path):
    pipeline = SimpleDDPMPipeline(
        unet=make_tiny_unet(num_class_embeds=3), scheduler=SimpleDDPMScheduler(), class_names=["a", "b", "c"]
    )
    pipeline.training_details = training_details
    pipeline.save_pretrained(tmp_path / "conditional")

    metadata = ModelCard.load(tmp_path / "conditional" / "README.md").data.to_dict()
    assert "pipeline_tag" not in metadata  # the Hub has no task for class-conditional generation
    assert "unconditional-image-generation" not in metadata["tags"]
    assert CLASS_CONDITIONAL_TASK in metadata["tags"]
    assert {result["task"]["type"] for result in metadata["model-index"][0]["results"]} == {CLASS_CONDITIONAL_TASK}


def test_the_card_says_how_to_install_the_package_for_real(tiny_pipeline, training_details):
    card = create_model_card(tiny_pipeline, REPO_ID, training_details=training_details)
    assert "pip install diffusers-simple-ddpm" not in card.text
    assert "from its repository" in card.text and "pip install -e ." in card.text


def test_the_card_names_local_data_by_its_folder_never_its_path(tmp_path):
    (tmp_path / "my-digits").mkdir()
    assert training_data_for_card(train_data_dir=str(tmp_path / "my-digits")) == ("my-digits", None)
    assert training_data_for_card(train_data_dir=str(tmp_path / "my-digits" / ".." / "my-digits")) == (
        "my-digits",
        None,
    )
    assert training_data_for_card(dataset_name=str(tmp_path / "my-digits")) == ("my-digits", None)
    assert training_data_for_card(dataset_name="user/faces") == ("user/faces", "user/faces")
    assert training_data_for_card(train_data_dir="x", card_name="Handwritten digits") == ("Handwritten digits", None)
    assert training_data_for_card() == (BUILTIN_MNIST_CARD_NAME, "ylecun/mnist")


def test_training_time_record_of_a_checkpoint(tmp_path):
    assert read_training_time(tmp_path) == 0.0  # a checkpoint written before the record existed
    write_training_time(tmp_path, 754.5)
    assert read_training_time(tmp_path) == 754.5
    (tmp_path / TRAINING_TIME_NAME).write_text('{"training_seconds": -3}')
    with pytest.raises(ValueError, match="training_time.json holds -3"):
        read_training_time(tmp_path)
