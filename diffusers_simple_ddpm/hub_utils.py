"""
The Hub side of `SimpleDDPMPipeline`: downloads by repo id, model cards rendered from `model_card.md`, and pushes.

A trainer describes its run with [`TrainingDetails`] (and [`EvaluationResults`]) and sets it on the pipeline;
`save_pretrained` then writes the model card next to the weights and `push_to_hub` uploads it:

```py
pipeline.training_details = TrainingDetails(dataset_name="MNIST", num_train_steps=3000, ...)
pipeline.save_pretrained("ddpm-mnist")  # model_index.json, unet/, scheduler/, README.md, sample_grid.png
pipeline.push_to_hub("user/ddpm-mnist")  # the same files, nothing else from the folder
```
"""

import json
import numbers
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData, get_token, snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id

from .pipeline_simple_ddpm import MODEL_CARD_NAME, REMOTE_CODE_HEADING, SAMPLE_GRID_NAME, _is_finite_number

# The template of every model card: a link to `model_card.md` at the top of the repository (wheels carry its text).
MODEL_CARD_TEMPLATE_PATH = Path(__file__).parent / "assets" / "model_card.md"
DEFAULT_LICENSE = "apache-2.0"
PIPELINE_TAG = "unconditional-image-generation"
# The Hub has no pipeline tag (task) for class-conditional generation: such a card has no `pipeline_tag`, rather than
# a wrong one, and carries this tag and task name instead.
CLASS_CONDITIONAL_TASK = "class-conditional-image-generation"
TEXT_PIPELINE_TAG = "text-to-image"
MODEL_CARD_TAGS = ["diffusers_simple_ddpm", "ddpm", "diffusers"]
MIXED_PRECISION_MODES = ("no", "fp16", "bf16", "fp8")
# What `download_pipeline` fetches besides the component folders: the pipeline index, the code of a repository
# written with `include_code=True`, and the model card with its sample grid, which a pushed copy keeps.
PIPELINE_FILE_PATTERNS = ["model_index.json", "*.py", MODEL_CARD_NAME, SAMPLE_GRID_NAME]


def metric_id(name: str) -> str:
    """The ASCII id of a metric name in `model-index` metadata: `"Fréchet distance (x)"` gives `"frechet_distance_x"`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")


def _plain_number(name: str, value: Any) -> int | float:
    """
    `value` as a plain Python int or float, for clean YAML metadata; a `ValueError` naming `name` unless it is a finite
    real number (Python, NumPy) that is not a bool.
    """
    if not _is_finite_number(value):
        hint = " Call `.item()` on a tensor or array to pass its number." if hasattr(value, "item") else ""
        raise ValueError(f"`{name}` must be a finite number, got {value!r}.{hint}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


@dataclass
class EvaluationResults:
    r"""
    Sample-quality figures of a pipeline, for the model card and its `model-index` metadata.

    Args:
        metrics (`dict[str, float]`): Metric name to value, such as `{"FID": 4.1, "KID": 0.002}`: the model's own
            results, which the card's table shows and its `model-index` lists. Any finite real number (Python or
            NumPy) is taken and stored as a plain `int` or `float`.
        protocol (`str`): How they were computed: the number of samples, the sampler and its steps, the reference
            images and the feature network. The card prints it under the table.
        dataset_name (`str`): The reference images, such as `"MNIST test split"`.
        dataset_id (`str`, *optional*): The Hub id of the reference dataset, such as `"ylecun/mnist"`.
        dataset_split (`str`, *optional*): Its split, such as `"test"`.
        floors (`dict[str, float]`, *optional*): Figures of real images under the same protocol, such as
            `{"FID floor (real images)": 2.1}`: the best a model could score, not the model's results. The card's
            table shows them after the metrics; its `model-index` leaves them out.
    """

    metrics: dict[str, float]
    protocol: str
    dataset_name: str
    dataset_id: str | None = None
    dataset_split: str | None = None
    floors: dict[str, float] | None = None

    def __post_init__(self):
        if not self.metrics:
            raise ValueError("`metrics` is empty: give at least one metric name and value.")
        self.metrics = {name: _plain_number(f"metrics[{name!r}]", value) for name, value in self.metrics.items()}
        if self.floors is not None:
            self.floors = {name: _plain_number(f"floors[{name!r}]", value) for name, value in self.floors.items()}
        if not self.protocol.strip():
            raise ValueError("`protocol` is empty: say how the metrics were computed.")

    def to_eval_results(self, task_type: str = PIPELINE_TAG) -> list[EvalResult]:
        """
        Returns one `EvalResult` per metric, the entries of the card's `model-index` metadata; the floors are not the
        model's results and have none.

        Args:
            task_type (`str`, *optional*, defaults to `"unconditional-image-generation"`): The task of the model.
        """
        return [
            EvalResult(
                task_type=task_type,
                dataset_type=self.dataset_id or self.dataset_name,
                dataset_name=self.dataset_name,
                dataset_split=self.dataset_split,
                metric_type=metric_id(name),
                metric_name=name,
                metric_value=value,
            )
            for name, value in self.metrics.items()
        ]


@dataclass
class TrainingDetails:
    r"""
    What a training run did, as the model card reports it. Resolution, channels, prediction type and noise schedule
    are read from the pipeline itself.

    Args:
        dataset_name (`str`): The training data as the card names it, such as `"MNIST (training split)"`.
        num_train_steps (`int`): Optimizer updates done.
        num_epochs (`float`): Passes over the training data, such as `20 / 3750` for 20 updates of an epoch of 3750:
            a run may end within an epoch. The card never states more passes than were made: a whole number as
            `"10 epochs"`, a partial one above 1 rounded down to two decimals (`"5.01 epochs"`), one below 1 as a
            percentage of an epoch rounded down to two significant digits (`"0.53% of an epoch"`).
        train_batch_size (`int`): Images per device in each forward pass.
        learning_rate (`float`): The peak learning rate.
        lr_scheduler (`str`): The learning-rate schedule, such as `"cosine"`.
        mixed_precision (`str`): `"no"`, `"fp16"`, `"bf16"` or `"fp8"`.
        hardware (`str`): The devices, such as `"1 x NVIDIA H200"`.
        wall_time_seconds (`float`): The training time.
        num_processes (`int`, *optional*, defaults to 1): Data-parallel processes.
        gradient_accumulation_steps (`int`, *optional*, defaults to 1): Forward passes per optimizer update.
        lr_warmup_steps (`int`, *optional*, defaults to 0): Warm-up updates of the learning-rate schedule.
        use_ema (`bool`, *optional*, defaults to `False`): Whether the saved weights are an exponential moving average.
        ema_max_decay (`float`, *optional*, defaults to 0.9999): The largest EMA decay.
        ema_inv_gamma (`float`, *optional*, defaults to 1.0): The inverse gamma of the EMA warm-up.
        ema_power (`float`, *optional*, defaults to 0.75): The power of the EMA warm-up.
        snr_gamma (`float`, *optional*): γ of the Min-SNR loss weighting; `None` for the plain mean squared error.
        seed (`int`, *optional*): The seed of the run.
        dataset_id (`str`, *optional*): The Hub id of the training dataset, listed in the card's `datasets` metadata.
        license (`str`, *optional*, defaults to `"apache-2.0"`): The license of the weights (a Hub license id).
        evaluation ([`EvaluationResults`], *optional*): Sample-quality figures of the trained pipeline.
        sample_grid (`str` or `os.PathLike`, *optional*): An image of samples, copied next to the card.
        model_config (`str`, *optional*): The network preset or config file it was trained with, such as
            `"auto: default"`.
        autoguidance_step (`int`, *optional*): The update after which the pipeline's `guidance_unet` was taken.
        caption_dropout (`float`, *optional*): The share of captions a text-conditional run replaced by the empty one,
            from which the model learns the prediction that classifier-free guidance steers away from.
    """

    dataset_name: str
    num_train_steps: int
    num_epochs: float
    train_batch_size: int
    learning_rate: float
    lr_scheduler: str
    mixed_precision: str
    hardware: str
    wall_time_seconds: float
    num_processes: int = 1
    gradient_accumulation_steps: int = 1
    lr_warmup_steps: int = 0
    use_ema: bool = False
    ema_max_decay: float = 0.9999
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    snr_gamma: float | None = None
    seed: int | None = None
    dataset_id: str | None = None
    license: str = DEFAULT_LICENSE
    evaluation: EvaluationResults | None = None
    sample_grid: str | os.PathLike | None = None
    model_config: str | None = None
    autoguidance_step: int | None = None
    caption_dropout: float | None = None

    def __post_init__(self):
        counts = ("num_train_steps", "train_batch_size", "num_processes", "gradient_accumulation_steps")
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        self.num_epochs = _plain_number("num_epochs", self.num_epochs)
        if not self.num_epochs > 0:
            raise ValueError(f"`num_epochs` must be positive, got {self.num_epochs}.")
        if self.lr_warmup_steps < 0:
            raise ValueError(f"`lr_warmup_steps` must be non-negative, got {self.lr_warmup_steps}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate}.")
        if self.mixed_precision not in MIXED_PRECISION_MODES:
            raise ValueError(f"`mixed_precision` must be one of {MIXED_PRECISION_MODES}, got {self.mixed_precision!r}.")
        if self.use_ema and not 0 < self.ema_max_decay <= 1:
            raise ValueError(f"`ema_max_decay` must lie in (0, 1], got {self.ema_max_decay}.")
        if not self.wall_time_seconds >= 0:
            raise ValueError(f"`wall_time_seconds` must be non-negative, got {self.wall_time_seconds}.")
        if self.sample_grid is not None and not os.path.isfile(self.sample_grid):
            raise ValueError(f"`sample_grid` must be an existing image file, got {str(self.sample_grid)!r}.")

    @property
    def total_batch_size(self) -> int:
        """Images per optimizer update, over all processes and accumulated passes."""
        return self.train_batch_size * self.num_processes * self.gradient_accumulation_steps


TRAINING_TIME_NAME = "training_time.json"


def write_training_time(checkpoint_dir: str | os.PathLike, seconds: float) -> None:
    """
    Records in a checkpoint how long the run has trained so far, so that a resumed run's card counts every session.

    Args:
        checkpoint_dir (`str` or `os.PathLike`): The checkpoint folder being written.
        seconds (`float`): The training time of all sessions up to this checkpoint.
    """
    Path(checkpoint_dir, TRAINING_TIME_NAME).write_text(json.dumps({"training_seconds": seconds}))


def read_training_time(checkpoint_dir: str | os.PathLike) -> float:
    """
    The training time that `write_training_time` recorded in a checkpoint; 0 for a checkpoint without the record.

    Args:
        checkpoint_dir (`str` or `os.PathLike`): The checkpoint folder.
    """
    path = Path(checkpoint_dir, TRAINING_TIME_NAME)
    if not path.is_file():
        return 0.0
    try:
        seconds = json.loads(path.read_text())["training_seconds"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"The training time record {path} is malformed ({error}); delete it to count from 0.") from error
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(f"The training time record {path} holds {seconds!r}, not a number of seconds.")
    return float(seconds)


BUILTIN_MNIST_CARD_NAME = "MNIST (built-in, 60,000 training digits)"
BUILTIN_MNIST_DATASET_ID = "ylecun/mnist"


def training_data_for_card(
    dataset_name: str | None = None,
    train_data_dir: str | os.PathLike | None = None,
    card_name: str | None = None,
) -> tuple[str, str | None]:
    """
    How a model card names the training data, and the Hub dataset it links to, without publishing local paths.

    Args:
        dataset_name (`str`, *optional*): The `--dataset_name` of the run: a Hub dataset id or a local folder.
        train_data_dir (`str` or `os.PathLike`, *optional*): The `--train_data_dir` of the run, an image folder.
        card_name (`str`, *optional*): The name the user chose for the card (`--dataset_card_name`).

    Returns:
        `tuple[str, str | None]`: The name the card shows (`card_name`, else a Hub id, else the name of the local
        folder, never its path; the built-in MNIST when neither source is given) and the Hub dataset id, `None` for
        local data.
    """
    local_folder = train_data_dir if train_data_dir is not None else dataset_name
    if local_folder is not None and (train_data_dir is not None or os.path.isdir(local_folder)):
        name, dataset_id = Path(local_folder).resolve().name, None
    elif dataset_name is not None:
        name, dataset_id = dataset_name, dataset_name
    else:
        name, dataset_id = BUILTIN_MNIST_CARD_NAME, BUILTIN_MNIST_DATASET_ID
    return card_name or name, dataset_id


def format_duration(seconds: float) -> str:
    """Formats a duration as `"2 h 05 min"`, `"7 min 30 s"` or `"12 s"`."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def format_epochs(num_epochs: float) -> str:
    """
    Formats passes over the training data as the model card states them: `"1 epoch"`, `"10 epochs"`, `"5.01 epochs"` or
    `"0.53% of an epoch"`, by the rule of [`TrainingDetails`]'s `num_epochs`.

    Args:
        num_epochs (`float`): Passes over the training data, positive.
    """
    if float(num_epochs).is_integer():
        return "1 epoch" if num_epochs == 1 else f"{int(num_epochs)} epochs"
    # Decimal from the shortest repr, so that a float such as 0.29 is not rounded down to 28%.
    epochs = Decimal(str(num_epochs))
    if epochs > 1:
        return f"{epochs.quantize(Decimal('0.01'), rounding=ROUND_DOWN)} epochs"
    percent = f"{Context(prec=2, rounding=ROUND_DOWN).multiply(epochs, 100):f}"
    return f"{percent.rstrip('0').rstrip('.') if '.' in percent else percent}% of an epoch"


def check_repo_id(repo_id: str, argument: str = "repo_id", folder_allowed: bool = False) -> None:
    """
    Raises a `ValueError` naming `argument` unless `repo_id` is a valid Hub repository id.

    Args:
        repo_id (`str`): The id to check, `"name"` or `"namespace/name"`.
        argument (`str`, *optional*, defaults to `"repo_id"`): The argument it came from, quoted in the error.
        folder_allowed (`bool`, *optional*, defaults to `False`): Whether the argument may also be a folder, which
            the error then mentions.
    """
    try:
        validate_repo_id(str(repo_id))
    except HFValidationError as error:
        if folder_allowed:
            what = "neither an existing folder (one written by `save_pretrained`) nor a valid Hub repo id"
        else:
            what = "not a valid Hub repo id"
        raise ValueError(
            f"`{argument}` is {str(repo_id)!r}, which is {what}. A repo id is "
            f"'namespace/name' of letters, digits, '-', '_' and '.', such as 'user/ddpm-mnist'. ({error})"
        ) from None


def download_pipeline(
    repo_id: str,
    component_names: list[str],
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> str:
    """
    Downloads the files of a pipeline repository into the Hugging Face cache, or finds them there when offline.

    Only `model_index.json`, the code files, the model card, its sample grid and the component folders are fetched.

    Args:
        repo_id (`str`): The repository id.
        component_names (`list[str]`): The folders of the pipeline's components, such as `["scheduler", "unet"]`.
        revision (`str`, *optional*): A branch, tag or commit; defaults to `"main"`.
        cache_dir (`str` or `os.PathLike`, *optional*): The cache to use instead of `HF_HUB_CACHE`.
        token (`str`, *optional*): A token for a private repository.
        local_files_only (`bool`, *optional*, defaults to `False`): Whether to use the cache only.
        force_download (`bool`, *optional*, defaults to `False`): Whether to download files that are cached.

    Returns:
        `str`: The snapshot folder.
    """
    check_repo_id(repo_id, argument="pretrained_model_name_or_path", folder_allowed=True)
    try:
        return snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
            allow_patterns=PIPELINE_FILE_PATTERNS + [f"{name}/*" for name in component_names],
        )
    except LocalEntryNotFoundError as error:
        raise OSError(
            f"Cannot load {repo_id!r} (revision {revision or 'main'!r}): it is not in the Hugging Face cache "
            f"({cache_dir or 'HF_HUB_CACHE'}) and the Hub cannot be reached (offline, HF_HUB_OFFLINE=1 or "
            "local_files_only=True). Load it once while online (or `hf download` it), or pass the folder of a saved "
            "pipeline instead."
        ) from error


# The heading the remote-code usage section of a model card always stands before.
TRAINING_DETAILS_HEADING = "\n\n## Training details"


def match_remote_code_section(card: str, pipeline: Any, repo_id: str, include_code: bool) -> str:
    """
    A kept model card (one written by `create_model_card` for an earlier save) with its remote-code usage section
    added or removed to match `include_code`: the section a card rendered now for `repo_id` with `include_code=True`
    would have, so that a pipeline pushed with its code says how to load it without this package, and one pushed
    without its code does not. A card without the "## Training details" heading (not written by this package) is
    returned unchanged.

    Args:
        card (`str`): The kept card's text, metadata included.
        pipeline ([`SimpleDDPMPipeline`]): The pipeline the card describes.
        repo_id (`str`): The repository the section's snippet loads.
        include_code (`bool`): Whether the repository or folder now carries the pipeline's code.
    """
    has_section = REMOTE_CODE_HEADING in card
    if has_section == include_code or TRAINING_DETAILS_HEADING not in card:
        return card
    if include_code:
        fresh = str(create_model_card(pipeline, repo_id, include_code=True))
        section = fresh[fresh.index(REMOTE_CODE_HEADING) : fresh.index(TRAINING_DETAILS_HEADING)]
        return card.replace(TRAINING_DETAILS_HEADING, section + TRAINING_DETAILS_HEADING, 1)
    start = card.index(REMOTE_CODE_HEADING)
    return card[:start] + card[card.index(TRAINING_DETAILS_HEADING, start) :]


def create_model_card(
    pipeline: Any,
    repo_id: str,
    training_details: TrainingDetails | None = None,
    include_code: bool = False,
) -> ModelCard:
    """
    Renders the model card of a pipeline from the `model_card.md` template.

    Args:
        pipeline ([`SimpleDDPMPipeline`]): The pipeline; the card describes its unet and scheduler.
        repo_id (`str`): The repository (or folder) the usage snippet loads.
        training_details ([`TrainingDetails`], *optional*): The run that trained it; without it the card says that
            the training is unknown and has no evaluation or samples.
        include_code (`bool`, *optional*, defaults to `False`): Whether the repository carries the pipeline's code,
            so the card also shows how to load it without this package.

    Returns:
        [`~huggingface_hub.ModelCard`]: The card, metadata included.
    """
    model_name = repo_id.split("/")[-1]
    evaluation = training_details.evaluation if training_details is not None else None
    dataset_id = training_details.dataset_id if training_details is not None else None
    is_text_pipeline = getattr(pipeline, "text_encoder", None) is not None
    task = TEXT_PIPELINE_TAG if is_text_pipeline else CLASS_CONDITIONAL_TASK if pipeline.num_classes else PIPELINE_TAG
    card_data = ModelCardData(
        library_name="diffusers",
        license=training_details.license if training_details is not None else DEFAULT_LICENSE,
        pipeline_tag=None if task == CLASS_CONDITIONAL_TASK else task,
        tags=[*MODEL_CARD_TAGS, task],
        datasets=[dataset_id] if dataset_id else None,
        # `model-index` names the model; without evaluation results there is no `model-index`.
        model_name=model_name if evaluation is not None else None,
        eval_results=evaluation.to_eval_results(task) if evaluation is not None else None,
    )
    unet_config, scheduler_config = pipeline.unet.config, pipeline.scheduler.config
    sample_size = unet_config.sample_size
    height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
    num_channels = unet_config.in_channels
    text_encoder_details = sample_prompt = None
    if is_text_pipeline:
        text_encoder = pipeline.text_encoder
        text_encoder_details = {
            "class_name": type(text_encoder).__name__,
            "num_parameters": f"{sum(parameter.numel() for parameter in text_encoder.parameters()):,}",
            "hidden_size": text_encoder.config.hidden_size,
            "source": pipeline.config.get("text_encoder_source"),
            "license": pipeline.config.get("text_encoder_license"),
        }
        sample_prompt = (pipeline.config.get("sample_prompts") or ["a photo"])[0]
    return ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE_PATH),
        repo_id=repo_id,
        model_name=model_name,
        include_code=include_code,
        pipeline_class=type(pipeline).__name__,
        text_encoder=text_encoder_details,
        sample_prompt=sample_prompt,
        # Classifier-free guidance needs the empty prompt learnt from dropped captions; a run without them samples at 1.
        text_guidance_scale=1.0 if training_details is not None and training_details.caption_dropout == 0 else 3.0,
        autoguidance=getattr(pipeline, "guidance_unet", None) is not None,
        unet_class=type(pipeline.unet).__name__,
        num_parameters=f"{sum(parameter.numel() for parameter in pipeline.unet.parameters()):,}",
        block_out_channels=unet_config.get("block_out_channels"),
        height=height,
        width=width,
        color={1: "grayscale", 3: "RGB"}.get(num_channels, f"{num_channels}-channel"),
        num_classes=pipeline.num_classes,
        class_names=pipeline.config.get("class_names"),
        scheduler_class=type(pipeline.scheduler).__name__,
        num_train_timesteps=scheduler_config.num_train_timesteps,
        beta_schedule=scheduler_config.get("beta_schedule"),
        beta_start=scheduler_config.get("beta_start"),
        beta_end=scheduler_config.get("beta_end"),
        prediction_type=scheduler_config.get("prediction_type", "epsilon"),
        training=training_details,
        epochs=format_epochs(training_details.num_epochs) if training_details is not None else None,
        wall_time=format_duration(training_details.wall_time_seconds) if training_details is not None else None,
        evaluation=evaluation,
        sample_grid=SAMPLE_GRID_NAME if training_details is not None and training_details.sample_grid else None,
    )


def save_model_card(
    pipeline: Any,
    save_directory: str | os.PathLike,
    repo_id: str | None = None,
    training_details: TrainingDetails | None = None,
    include_code: bool = False,
) -> None:
    """
    Writes the model card (`README.md`) of a pipeline into its folder, with the sample grid it shows.

    Args:
        pipeline ([`SimpleDDPMPipeline`]): The pipeline saved in `save_directory`.
        save_directory (`str` or `os.PathLike`): The pipeline folder.
        repo_id (`str`, *optional*): The repository the usage snippet loads; defaults to the folder's name, which
            loads from the folder's parent directory.
        training_details ([`TrainingDetails`], *optional*): The run that trained the pipeline.
        include_code (`bool`, *optional*, defaults to `False`): Whether the folder carries the pipeline's code.
    """
    repo_id = repo_id or os.path.basename(os.path.abspath(save_directory))
    card = create_model_card(pipeline, repo_id, training_details=training_details, include_code=include_code)
    card.save(os.path.join(save_directory, MODEL_CARD_NAME))
    if training_details is not None and training_details.sample_grid:
        grid_path = os.path.join(save_directory, SAMPLE_GRID_NAME)
        if not (os.path.exists(grid_path) and os.path.samefile(training_details.sample_grid, grid_path)):
            shutil.copyfile(training_details.sample_grid, grid_path)


def create_pipeline_repo(repo_id: str, private: bool | None = None, token: str | None = None) -> tuple[HfApi, str]:
    """
    Creates the Hub repository a pipeline is pushed to, or finds it, before anything is rendered or uploaded.

    Args:
        repo_id (`str`): The repository, `"name"` or `"namespace/name"`; created if it does not exist.
        private (`bool`, *optional*): Whether a new repository is private.
        token (`str`, *optional*): A token with write access; defaults to the logged-in one.

    Returns:
        `tuple[HfApi, str]`: The client, holding the token, and the full `"namespace/name"` id of the repository.
    """
    check_repo_id(repo_id)
    token = token or get_token()
    if token is None:
        raise ValueError(
            "`push_to_hub` needs a Hugging Face token with write access, and none was found: pass `token=...`, set "
            "the HF_TOKEN environment variable, or log in with `hf auth login`."
        )
    api = HfApi(token=token)
    return api, api.create_repo(repo_id, private=private, exist_ok=True).repo_id


def upload_pipeline_files(
    api: HfApi, repo_id: str, folder: str | os.PathLike, files: list[str], commit_message: str, create_pr: bool = False
) -> CommitInfo:
    """
    Uploads exactly `files` of a pipeline folder, in one commit: nothing else of the folder (checkpoints, logs).

    Args:
        api (`HfApi`): The client of `create_pipeline_repo`.
        repo_id (`str`): The full repository id.
        folder (`str` or `os.PathLike`): The pipeline folder.
        files (`list[str]`): The files to upload, relative to `folder` with `/` separators.
        commit_message (`str`): The commit message.
        create_pr (`bool`, *optional*, defaults to `False`): Whether to open a pull request.

    Returns:
        [`~huggingface_hub.CommitInfo`]: The commit that was made.
    """
    operations = [
        CommitOperationAdd(path_in_repo=relative, path_or_fileobj=os.path.join(folder, relative)) for relative in files
    ]
    return api.create_commit(repo_id, operations, commit_message=commit_message, create_pr=create_pr)
