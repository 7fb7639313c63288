"""The shared training update (`training_step`) and the batches cut on the device (`data.DeviceImageBatches`)."""

import argparse
import importlib
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from diffusers_simple_ddpm import SimpleDDPMScheduler, SimpleUNet2DModel
from diffusers_simple_ddpm import training as train
from diffusers_simple_ddpm.data import (
    DeviceImageBatches,
    ImageTransform,
    TrainingImageDataset,
    crop_and_flip,
    load_builtin_mnist,
    load_images_to_memory,
)
from diffusers_simple_ddpm.training_args import DEFAULT_PREDICTION_TYPE
from diffusers_simple_ddpm.training_step import DEFAULT_SETTINGS, DiffusionTrainingStep, make_ema, make_optimizer

BENCHMARKS = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks"


def tiny_unet(**config) -> SimpleUNet2DModel:
    torch.manual_seed(0)
    return SimpleUNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(4, 8, 8), time_embedding_dim=8, **config
    )


def rectangular_rgb_dataset(num_images: int = 12) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)) for _ in range(num_images)]
    return datasets.Dataset.from_dict(
        {"image": images, "label": list(range(num_images))},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )


def dataloader_inputs(dataset, transform, indices, epoch, seed=5):
    reference = TrainingImageDataset(dataset, "image", transform, label_column="label", seed=seed)
    reference.set_epoch(epoch)
    items = reference.__getitems__(indices)
    return torch.stack([item["input"] for item in items]), [item["class_labels"] for item in items]


@pytest.mark.parametrize(
    "center_crop, random_flip", [(False, True), (False, False), (True, True)], ids=["random", "crop", "center"]
)
def test_device_batches_are_the_dataloader_images_of_the_same_seed_epoch_and_index(center_crop, random_flip):
    dataset = rectangular_rgb_dataset()  # 16x12 images, resized to 10x8: crops have 3 positions
    transform = ImageTransform(8, 3, center_crop=center_crop, random_flip=random_flip)
    images, labels = load_images_to_memory(dataset, "image", transform, max_bytes=2**20, label_column="label")
    assert images.shape == (12, 3, 8, 10) and images.dtype == torch.uint8
    batches = DeviceImageBatches(images, transform, 4, torch.device("cpu"), labels=labels, seed=5)

    for epoch in (0, 3):
        for indices in batches.epoch_order(epoch):
            batch = batches.batch(indices, epoch)
            expected_inputs, expected_labels = dataloader_inputs(dataset, transform, indices.tolist(), epoch)
            assert torch.equal(batch["input"], expected_inputs)
            assert batch["class_labels"].tolist() == expected_labels
    if not center_crop:  # the augmentation changes with the epoch
        order = batches.epoch_order(0)[0]
        assert not torch.equal(batches.batch(order, 0)["input"], batches.batch(order, 1)["input"])


def test_builtin_mnist_on_the_device_equals_the_dataloader_path():
    dataset = load_builtin_mnist("test").select(range(40))
    transform = ImageTransform(20, 1, random_flip=True)
    images, labels = load_images_to_memory(dataset, "image", transform, max_bytes=2**20, label_column="label")
    batches = DeviceImageBatches(images, transform, 16, torch.device("cpu"), labels=labels, seed=5)
    (indices, *_) = batches.epoch_order(2)
    expected_inputs, expected_labels = dataloader_inputs(dataset, transform, indices.tolist(), 2)
    batch = batches.batch(indices, 2)
    assert torch.equal(batch["input"], expected_inputs) and batch["class_labels"].tolist() == expected_labels


def test_each_process_gets_its_own_shard_of_full_batches_and_resume_skips_batches():
    images = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
    transform = ImageTransform(4, 1)
    shards = [
        DeviceImageBatches(images, transform, 3, torch.device("cpu"), num_processes=2, process_index=rank, seed=1)
        for rank in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 2  # ceil(10 / (3 * 2)), padded by wrapping around
    orders = [shard.epoch_order(0) for shard in shards]
    first_pass = torch.cat([orders[0][0], orders[1][0], orders[0][1][:1]])  # the first 7 of a permutation of 10
    assert len(set(first_pass.tolist())) == 7
    assert set(torch.cat([orders[0].flatten(), orders[1].flatten()]).tolist()) == set(range(10))
    assert not torch.equal(orders[0], shards[0].epoch_order(1))
    assert torch.equal(orders[0], shards[0].epoch_order(0))

    labelled = DeviceImageBatches(
        images, transform, 3, torch.device("cpu"), labels=torch.arange(10), num_processes=2, process_index=1, seed=1
    )
    skipped = [batch["class_labels"] for batch in labelled.epoch_batches(0, skip=1)]
    assert len(skipped) == 1 and torch.equal(skipped[0], orders[1][1])


def test_crop_and_flip_is_one_gather_of_windows_and_mirrors():
    pixels = torch.arange(2 * 1 * 3 * 5).reshape(2, 1, 3, 5)
    out = crop_and_flip(pixels, torch.tensor([2, 0]), torch.tensor([0, 0]), torch.tensor([False, True]), 3)
    assert torch.equal(out[0], pixels[0, :, 0:3, 2:5])
    assert torch.equal(out[1], pixels[1, :, 0:3, 0:3].flip(-1))


def test_load_images_to_memory_keeps_the_dataloader_for_large_or_mixed_datasets():
    transform = ImageTransform(8, 3)
    dataset = rectangular_rgb_dataset(4)
    assert load_images_to_memory(dataset, "image", transform, max_bytes=4 * 3 * 8 * 10 - 1) is None
    square = PIL.Image.new("RGB", (12, 12))
    mixed = datasets.Dataset.from_dict({"image": [*dataset["image"], square]}, features=datasets.Features(
        {"image": datasets.Image()}
    ))  # fmt: skip
    assert load_images_to_memory(mixed, "image", transform, max_bytes=2**20) is None
    with pytest.raises(ValueError, match="max_bytes"):
        load_images_to_memory(dataset, "image", transform, max_bytes=-1)
    with pytest.raises(ValueError, match="shorter side of 8"):
        DeviceImageBatches(torch.zeros(2, 3, 9, 9, dtype=torch.uint8), transform, 2, torch.device("cpu"))


def test_load_images_to_memory_names_an_unreadable_image(tmp_path):
    path = tmp_path / "broken.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])  # its header reads, its pixels do not
    dataset = datasets.Dataset.from_dict({"image": [str(path)]}, features=datasets.Features({"image": datasets.Image()}))
    with pytest.raises(ValueError, match=f"Cannot read the training image '{path}'.*--skip_unreadable_images"):
        load_images_to_memory(dataset, "image", ImageTransform(8, 1), max_bytes=2**20)


def test_data_on_device_auto_holds_a_dataset_that_fits_in_cpu_memory_too():
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    transform = ImageTransform(8, 3)
    dataset = rectangular_rgb_dataset(4)  # 4 images of 3x8x10 uint8 pixels: 960 bytes

    def batches(data_on_device: str, max_mib: float):
        args = argparse.Namespace(
            data_on_device=data_on_device, data_on_device_max_mib=max_mib, resolution=8, train_batch_size=2, seed=0
        )
        return train.make_device_batches(args, accelerator, dataset, "image", transform, "label")

    held = batches("auto", 1)
    assert isinstance(held, DeviceImageBatches) and held.device == torch.device("cpu")
    assert batches("never", 1) is None
    assert batches("auto", 959 / 2**20) is None  # one byte short: the DataLoader stays
    with pytest.raises(ValueError, match="--data_on_device always"):
        batches("always", 959 / 2**20)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_training_step_loss_is_the_mse_to_the_prediction_types_target(prediction_type):
    unet = tiny_unet(num_class_embeds=3)
    scheduler = SimpleDDPMScheduler(prediction_type=prediction_type)
    optimizer = make_optimizer(unet.parameters(), DEFAULT_SETTINGS, torch.device("cpu"))
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step = DiffusionTrainingStep(
        scheduler, optimizer, lr_scheduler, snr_gamma=None, num_class_embeds=3, class_dropout_prob=0.5
    )
    clean = torch.rand(6, 1, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2])

    loss = step.loss(unet, clean, labels, generator=torch.Generator().manual_seed(3))

    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (6,), generator=generator)
    dropped = torch.rand(6, generator=generator) < 0.5
    assert 0 < int(dropped.sum()) < 6
    noisy = scheduler.add_noise(clean, noise, timesteps)
    output = unet(noisy, timesteps, class_labels=torch.where(dropped, 3, labels)).sample
    target = {"epsilon": noise, "sample": clean, "v_prediction": scheduler.get_velocity(clean, noise, timesteps)}
    torch.testing.assert_close(loss, F.mse_loss(output, target[prediction_type]), rtol=0, atol=0)


def test_training_step_updates_weights_clips_and_steps_the_ema():
    unet = tiny_unet()
    settings = DEFAULT_SETTINGS
    optimizer = make_optimizer(unet.parameters(), settings, torch.device("cpu"))
    ema = make_ema(unet, settings)
    assert ema.foreach
    clipped = []

    def clip(parameters, max_norm):
        clipped.append(max_norm)
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    step = DiffusionTrainingStep(
        SimpleDDPMScheduler(), optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0), ema_model=ema,
        max_grad_norm=0.5, clip_grad_norm=clip,
    )  # fmt: skip
    before = [parameter.detach().clone() for parameter in unet.parameters()]
    loss = step(unet, torch.zeros(2, 1, 8, 8), sync_gradients=False)
    assert not loss.requires_grad and clipped == [] and ema.optimization_step == 0
    step(unet, torch.zeros(2, 1, 8, 8))
    assert clipped == [0.5] and ema.optimization_step == 1
    assert all(parameter.grad is None for parameter in unet.parameters())
    assert any(not torch.equal(old, new) for old, new in zip(before, unet.parameters()))
    with pytest.raises(ValueError, match="max_grad_norm"):
        DiffusionTrainingStep(SimpleDDPMScheduler(), optimizer, step.lr_scheduler, max_grad_norm=0)
    with pytest.raises(ValueError, match="class_labels"):
        DiffusionTrainingStep(SimpleDDPMScheduler(), optimizer, step.lr_scheduler, num_class_embeds=2).loss(
            unet, torch.zeros(2, 1, 8, 8)
        )


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_min_snr_weighting_equals_the_clean_image_error_weighted_by_the_clipped_snr(prediction_type):
    scheduler = SimpleDDPMScheduler(prediction_type=prediction_type)
    unet = tiny_unet()
    optimizer = make_optimizer(unet.parameters(), DEFAULT_SETTINGS, torch.device("cpu"))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    weighted = DiffusionTrainingStep(scheduler, optimizer, schedule, snr_gamma=5.0)
    clean_images = torch.rand(32, 1, 8, 8) * 2 - 1
    loss = weighted.loss(unet, clean_images, generator=torch.Generator().manual_seed(3))

    # The same draws by hand: noise, then timesteps; the error of the implied clean image, weighted by min(SNR, 5).
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(clean_images.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (32,), generator=generator)
    assert (timesteps < 90).any()  # some noise levels with SNR above 5, whose weight the clipping changes
    assert (timesteps < 90).any()  # some noise levels with SNR above 5, whose weight the clipping changes
    alpha_bar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noisy = alpha_bar.sqrt() * clean_images + (1 - alpha_bar).sqrt() * noise
    with torch.no_grad():
        output = unet(noisy, timesteps).sample
    if prediction_type == "epsilon":
        predicted_clean = (noisy - (1 - alpha_bar).sqrt() * output) / alpha_bar.sqrt()
    elif prediction_type == "v_prediction":
        predicted_clean = alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * output
    else:
        predicted_clean = output
    snr = (alpha_bar / (1 - alpha_bar)).flatten()
    clean_error = ((predicted_clean - clean_images) ** 2).mean(dim=(1, 2, 3))
    expected = (snr.clamp(max=5.0) * clean_error).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-3)
    # Without γ the loss is the plain mean squared error of the target, a different number.
    plain = DiffusionTrainingStep(scheduler, optimizer, schedule, snr_gamma=None).loss(
        unet, clean_images, generator=torch.Generator().manual_seed(3)
    )
    assert plain.item() != pytest.approx(loss.item(), rel=1e-3)
    with pytest.raises(ValueError, match="snr_gamma"):
        DiffusionTrainingStep(scheduler, optimizer, schedule, snr_gamma=0.0)


def test_training_program_defaults_are_the_shared_settings(tmp_path):
    args = train.parse_args(["--output_dir", str(tmp_path / "out")])
    assert train.optimization_settings(args) == DEFAULT_SETTINGS
    assert args.data_on_device == "auto" and not args.compile
    assert args.snr_gamma is None and args.train_batch_size == 64
    assert args.prediction_type == DEFAULT_PREDICTION_TYPE
    assert args.ddpm_beta_schedule == "squaredcos_cap_v2"
    assert (args.eval_scheduler, args.eval_num_inference_steps, args.eval_clip_sample) == ("ddpm", 50, True)
    assert (args.autoguidance_fraction, args.eval_guidance_scale) == (0.1, 2.0)
    # The evaluation's default steps follow a short diffusion instead of refusing it (it once asked for 50 of 40).
    assert train.parse_args(["--output_dir", str(tmp_path / "out"), "--ddpm_num_steps", "40"]).eval_num_inference_steps == 40
    weighted = train.parse_args(["--output_dir", str(tmp_path / "out"), "--snr_gamma", "5"])
    assert train.optimization_settings(weighted).snr_gamma == 5.0
    plain = train.parse_args(["--output_dir", str(tmp_path / "out"), "--snr_gamma", "None"])
    assert train.optimization_settings(plain).snr_gamma is None


@pytest.fixture()
def benchmark_utils(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield importlib.import_module("benchmark_utils")
    sys.modules.pop("benchmark_utils", None)


def test_the_benchmarks_bare_loop_runs_the_shared_training_step(benchmark_utils, monkeypatch):
    calls = []
    original = DiffusionTrainingStep.__call__

    def spy(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionTrainingStep, "__call__", spy)
    trainer = benchmark_utils.BareTrainer(tiny_unet(), torch.zeros(4, 1, 8, 8), 2, torch.device("cpu"))
    trainer.step()
    assert calls == [trainer.training_step]
    (group,) = trainer.training_step.optimizer.param_groups
    assert group["lr"] == pytest.approx(DEFAULT_SETTINGS.learning_rate / DEFAULT_SETTINGS.lr_warmup_steps)
    assert (group["betas"], group["eps"]) == ((0.95, 0.999), 1e-8)
    assert trainer.ema_model.decay == DEFAULT_SETTINGS.ema_max_decay
    assert trainer.training_step.max_grad_norm == DEFAULT_SETTINGS.max_grad_norm
    assert trainer.training_step.snr_gamma == DEFAULT_SETTINGS.snr_gamma
    # The bare loop trains, and its sampling pipelines sample, with the training program's default prediction type.
    assert trainer.training_step.noise_scheduler.config.prediction_type == DEFAULT_PREDICTION_TYPE
    pipeline = benchmark_utils.sampling_pipeline(trainer.ema_copy(), "DDPM clip")
    assert pipeline.scheduler.config.prediction_type == DEFAULT_PREDICTION_TYPE
    assert pipeline.scheduler.config.clip_sample
    trained_with = SimpleDDPMScheduler(prediction_type="sample")
    pipeline = benchmark_utils.sampling_pipeline(trainer.ema_copy(), "DDIM", trained_with)
    assert pipeline.scheduler.config.prediction_type == "sample"


@pytest.mark.slow
def test_compiled_bare_loop_trains_on_the_cpu(benchmark_utils):
    trainer = benchmark_utils.BareTrainer(tiny_unet(), torch.rand(4, 1, 8, 8), 2, torch.device("cpu"), compile=True)
    losses = [trainer.step() for _ in range(2)]
    assert all(torch.isfinite(loss) for loss in losses) and trainer.num_steps == 2
