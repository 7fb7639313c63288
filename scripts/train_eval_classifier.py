"""Train the MNIST classifier behind the fast sample-quality metrics and write its weights.

The network is `diffusers_simple_ddpm.evaluation.MNISTClassifier`, trained on the 60000 MNIST training digits of
`diffusers_simple_ddpm.data.load_mnist_arrays` with AdamW and a one-cycle learning rate, from a fixed seed and with
torch's deterministic algorithms, so the same torch version and number of threads give the same weights. The accuracy
on the 10000 test digits is printed and stored in the file's metadata; no choice is made on the test split.

Usage (about two minutes on 2 CPU cores):

```
python scripts/train_eval_classifier.py --output diffusers_simple_ddpm/assets/mnist_classifier.safetensors
```
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from diffusers_simple_ddpm.data import load_mnist_arrays
from diffusers_simple_ddpm.evaluation import CLASSIFIER_PATH, MNISTClassifier, classifier_features


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=CLASSIFIER_PATH, help="Where to write the safetensors file.")
    parser.add_argument("--epochs", type=int, default=4, help="Passes over the training split.")
    parser.add_argument("--batch_size", type=int, default=128, help="Training batch size.")
    parser.add_argument(
        "--learning_rate", type=float, default=3e-3, help="Peak learning rate of the one-cycle schedule."
    )
    parser.add_argument("--weight_decay", type=float, default=1e-4, help="AdamW weight decay.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the initialisation, the order and the dropout.")
    return parser.parse_args()


def train(args: argparse.Namespace) -> MNISTClassifier:
    """Train the classifier as `args` say and return it in eval mode."""
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    train_images, train_labels = load_mnist_arrays("train")
    images = torch.from_numpy(train_images.copy()).unsqueeze(1).float() / 255
    labels = torch.from_numpy(train_labels.copy())
    classifier = MNISTClassifier().train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    steps_per_epoch = len(images) // args.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.learning_rate, total_steps=args.epochs * steps_per_epoch
    )
    order_generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        order = torch.randperm(len(images), generator=order_generator)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            _, logits = classifier(images[batch])
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}/{args.epochs}: last batch loss {loss.item():.4f}", flush=True)
    return classifier.eval().requires_grad_(False)


def main():
    args = parse_args()
    start = time.perf_counter()
    classifier = train(args)
    training_seconds = time.perf_counter() - start
    test_images, test_labels = load_mnist_arrays("test")
    _, probabilities = classifier_features(test_images, classifier)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == test_labels))
    metadata = {
        "test_accuracy": f"{accuracy:.4f}",
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "learning_rate": str(args.learning_rate),
        "weight_decay": str(args.weight_decay),
        "seed": str(args.seed),
        "torch_version": torch.__version__,
        "num_threads": str(torch.get_num_threads()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file(classifier.state_dict(), args.output, metadata=metadata)
    print(f"test accuracy {accuracy:.4f}, trained in {training_seconds:.0f} s, wrote {args.output}")


if __name__ == "__main__":
    main()
