"""The maths of the sample-quality metrics, on features and class probabilities: Fréchet distance, Kernel Inception
Distance, classifier Inception Score, class coverage and the share of recognised digits."""

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features, in float64.

    Args:
        features (`np.ndarray`): Features of shape [N, D], N at least 2.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: the mean [D] and the unbiased covariance [D, D].
    """
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"`features` must have shape [N, D] with N >= 2, got shape {list(features.shape)}.")
    features = features.astype(np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    `|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1^1/2 sigma2 sigma1^1/2)^1/2)`. With the eigendecompositions
    `sigma_i = V_i diag(w_i) V_i^T`, the last trace is the sum of the singular values (the nuclear norm) of
    `diag(w1^1/2) V1^T V2 diag(w2^1/2)`, which needs no matrix square root: the result stays accurate for singular
    covariances (fewer samples than dimensions) and is zero to rounding for identical statistics. Eigenvalues within
    rounding error of zero (the tolerance of `np.linalg.matrix_rank`) are dropped: their square roots would turn
    rounding errors of order 1e-16 into errors of order 1e-8.

    Args:
        mu1 (`np.ndarray`): Mean [D] of the first distribution.
        sigma1 (`np.ndarray`): Covariance [D, D] of the first distribution.
        mu2 (`np.ndarray`): Mean [D] of the second distribution.
        sigma2 (`np.ndarray`): Covariance [D, D] of the second distribution.

    Returns:
        `float`: the squared Fréchet (2-Wasserstein) distance.
    """
    mu1, sigma1, mu2, sigma2 = (np.asarray(array, dtype=np.float64) for array in (mu1, sigma1, mu2, sigma2))
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            "`mu1` and `mu2` must have shape [D] and `sigma1` and `sigma2` shape [D, D] for one D, got "
            f"{list(mu1.shape)}, {list(sigma1.shape)}, {list(mu2.shape)} and {list(sigma2.shape)}."
        )
    eigenvalues1, eigenvectors1 = np.linalg.eigh(sigma1)
    eigenvalues2, eigenvectors2 = np.linalg.eigh(sigma2)
    kept1, kept2 = _above_rounding(eigenvalues1), _above_rounding(eigenvalues2)
    cross = eigenvectors1[:, kept1].T @ eigenvectors2[:, kept2]
    cross *= np.sqrt(eigenvalues1[kept1])[:, None] * np.sqrt(eigenvalues2[kept2])[None, :]
    trace_sqrt_product = np.linalg.svd(cross, compute_uv=False).sum()
    mean_term = np.sum((mu1 - mu2) ** 2)
    return float(mean_term + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product)


def _above_rounding(eigenvalues: np.ndarray) -> np.ndarray:
    """Mask of the eigenvalues of a symmetric matrix above the rounding tolerance of `np.linalg.matrix_rank`."""
    tolerance = eigenvalues.max(initial=0) * len(eigenvalues) * np.finfo(eigenvalues.dtype).eps
    return eigenvalues > tolerance


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: the unbiased squared MMD with the kernel `k(x, y) = (x . y / D + 1)^3`.

    The MMD is averaged over random subsets of both sets (Binkowski et al., 2018), drawn without replacement by a
    seeded generator, so the same inputs always give the same result.

    Args:
        features1 (`np.ndarray`): Features [N1, D] of the first set.
        features2 (`np.ndarray`): Features [N2, D] of the second set.
        num_subsets (`int`, defaults to 100): Number of subset pairs.
        subset_size (`int`, defaults to 1000): Size of each subset, reduced to the smaller set if that has fewer.
        seed (`int`, defaults to 0): Seed of the subset draws.

    Returns:
        `tuple[float, float]`: the mean and the standard deviation of the MMD over the subsets.
    """
    if features1.ndim != 2 or features2.ndim != 2 or features1.shape[1] != features2.shape[1]:
        raise ValueError(
            "`features1` and `features2` must have shapes [N1, D] and [N2, D], got "
            f"{list(features1.shape)} and {list(features2.shape)}."
        )
    if num_subsets < 1:
        raise ValueError(f"`num_subsets` must be at least 1, got {num_subsets}.")
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 features per set, got a subset size of {size}.")
    features1, features2 = features1.astype(np.float64), features2.astype(np.float64)
    generator = np.random.default_rng(seed)
    off_diagonal = size * (size - 1)
    mmds = []
    for _ in range(num_subsets):
        x = features1[generator.choice(len(features1), size, replace=False)]
        y = features2[generator.choice(len(features2), size, replace=False)]
        kernel_xx, kernel_yy, kernel_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        mmds.append(
            (kernel_xx.sum() - np.trace(kernel_xx)) / off_diagonal
            + (kernel_yy.sum() - np.trace(kernel_yy)) / off_diagonal
            - 2 * kernel_xy.mean()
        )
    return float(np.mean(mmds)), float(np.std(mmds))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel matrix `(x . y / D + 1)^3` between the rows of x [N, D] and y [M, D]."""
    kernel = x @ y.T
    kernel /= x.shape[1]
    kernel += 1
    return kernel * kernel * kernel


def classifier_inception_score(probabilities: np.ndarray) -> float:
    """Inception Score computed with the MNIST classifier: `exp(E_x KL(p(y|x) || p(y)))`, over all samples at once.

    It ranges from 1 (every sample gets the same class distribution) to 10 (confident predictions spread evenly over
    the ten digits).

    Args:
        probabilities (`np.ndarray`): Class probabilities [N, 10] of the samples.

    Returns:
        `float`: the score.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    marginal = probabilities.mean(axis=0, keepdims=True)
    # Zero probabilities contribute zero terms; clipping only keeps their logarithms finite.
    tiny = np.finfo(np.float64).tiny
    log_ratios = np.log(np.clip(probabilities, tiny, None)) - np.log(np.clip(marginal, tiny, None))
    kl_divergences = np.sum(probabilities * log_ratios, axis=1)
    return float(np.exp(kl_divergences.mean()))


def class_coverage(probabilities: np.ndarray) -> np.ndarray:
    """Share of the samples predicted as each class (the most probable one).

    Args:
        probabilities (`np.ndarray`): Class probabilities [N, C] of the samples.

    Returns:
        `np.ndarray`: float64 shares [C], summing to 1; 0.1 each for 10 evenly covered digits.
    """
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return counts / len(probabilities)


# The classifier's confidence above which a sample counts as a recognisable digit: real digits reach it 97-99% of the
# time (97.5% of the first 2,000 test digits, 98.9% of the first 2,000 training digits).
RECOGNISED_THRESHOLD = 0.9


def recognised_share(probabilities: np.ndarray, threshold: float = RECOGNISED_THRESHOLD) -> float:
    """Share of the samples that the classifier assigns to one class with probability at least `threshold`: a measure
    of how many samples are recognisable digits at all, whatever their class.

    It complements the Fréchet distance and does not replace it, nor a look at the samples: the classifier never saw
    anything but digits, so it is confident about some shapes that are not digits (uniform noise, for one), and it
    only flags the samples it finds ambiguous.

    Args:
        probabilities (`np.ndarray`): Class probabilities [N, C] of the samples.
        threshold (`float`, defaults to `RECOGNISED_THRESHOLD`, 0.9): The smallest top probability that counts.

    Returns:
        `float`: the share, from 0 to 1.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must be in (0, 1], got {threshold}.")
    return float(np.mean(np.max(probabilities, axis=1) >= threshold))
