"""Typed schema of ``params.yaml``, validated when a stage starts.

Every section mirrors a DVC stage (``data`` for fetch, ``index``, ``model``/``loss``/``train`` for
train, ``evaluate``) or a script outside the pipeline (``tune``, ``lr_find``); ``tracking`` is
shared. Unknown keys, wrong types and out-of-range values stop the stage with one line per problem
that names the key and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from depthseg.core.errors import DepthsegError

PARAMS_FILE = Path("params.yaml")

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
#: Scales every channel count of DSResNet; 1.0 is the reference (10.3 M parameters).
ModelWidth = Annotated[float, Field(gt=0.0, le=4.0)]
#: The side of the square the network sees: DSResNet halves it five times.
ImageSize = Annotated[int, Field(ge=32, le=2048, multiple_of=32)]


class ParamsError(DepthsegError, ValueError):
    """params.yaml (or an override) is invalid; the message is ready to show to a user."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(Section):
    backgrounds: PositiveInt = 200
    foregrounds: PositiveInt = 8
    placements: Annotated[int, Field(gt=0, multiple_of=2)] = 2
    image_size: Annotated[int, Field(ge=32, le=1024)] = 224
    seed: int = 0
    # Knobs for deliberately different datasets (robustness checks); the defaults give the
    # built-in one byte for byte. [low, high] range of figure height over image height: rooms
    # have places for about 0.2 to 0.44, a range that misses those may stop generation; the low
    # end also moves the plinths (beyond the farthest figure), so rooms change with it.
    figure_fraction: Annotated[
        list[Annotated[float, Field(ge=0.05, le=0.95)]], Field(min_length=2, max_length=2)
    ] = [0.33, 0.6]
    # [low, high] range of a gain on each room's light (and its figures'): < 1 darker.
    light_gain: Annotated[
        list[Annotated[float, Field(ge=0.2, le=3.0)]], Field(min_length=2, max_length=2)
    ] = [1.0, 1.0]
    # Colour tables and pattern sizes of walls, floors, doors...: "alternate" looks different.
    palette: Literal["default", "alternate"] = "default"

    @field_validator("figure_fraction")
    @classmethod
    def _low_below_high(cls, value: list[float]) -> list[float]:
        if not value[0] < value[1]:
            raise ValueError(f"expected [low, high] with low < high, got {value}")
        return value

    @field_validator("light_gain")
    @classmethod
    def _low_not_above_high(cls, value: list[float]) -> list[float]:
        if not value[0] <= value[1]:
            raise ValueError(f"expected [low, high] with low <= high, got {value}")
        return value


class DataParams(Section):
    source: Literal["synthetic", "local", "kaggle"] = "synthetic"
    path: str | None = None
    kaggle_dataset: str = "shanwizard/modest-museum-dataset"
    synthetic: SyntheticParams = SyntheticParams()

    @model_validator(mode="after")
    def _local_needs_path(self) -> DataParams:
        if self.source == "local" and not self.path:
            raise ValueError(
                "data.source is 'local' but data.path is empty: set data.path to a folder or "
                ".zip in the MODEST layout"
            )
        return self


class SplitParams(Section):
    method: Literal["by_background", "random"] = "by_background"
    train: Fraction = 0.8
    val: Fraction = 0.1
    test: Fraction = 0.1
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"index.split.train + val + test must add up to 1, got {total:g}")
        if self.train == 0:
            raise ValueError("index.split.train must be greater than 0")
        return self


class IndexParams(Section):
    split: SplitParams = SplitParams()
    on_problem: Literal["stop", "skip"] = "stop"
    # decode: decode every image once, in parallel; bad ones (unreadable, undecodable, corrupt
    # data, wrong size or mode) are problems like missing files.
    verify: Literal["off", "decode"] = "off"

    @field_validator("verify", mode="before")
    @classmethod
    def _off_is_not_a_boolean(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


#: ``model.name``: the network trained (``models.catalog`` builds it).
ModelName = Literal["dsresnet", "masknet"]
#: The networks that predict the mask alone: no depth loss, metric or output.
MASK_ONLY_MODELS = frozenset({"masknet"})


def model_outputs(model_name: str) -> tuple[str, ...]:
    """What the network ``model_name`` predicts (its model card and registry versions say so)."""
    return ("mask",) if model_name in MASK_ONLY_MODELS else ("mask", "depth")


def predicts_depth(model_name: str) -> bool:
    return "depth" in model_outputs(model_name)


class ModelParams(Section):
    name: ModelName = "dsresnet"
    width: ModelWidth = 1.0
    # Predict (evaluate, predict, serve, export) as the mean over the scene and its mirror image.
    mirror_average: bool = True

    @property
    def predicts_depth(self) -> bool:
        return predicts_depth(self.name)


class DepthLossParams(Section):
    rmse: NonNegative = 2.0
    ssim: NonNegative = 0.0


class MaskLossParams(Section):
    bce: NonNegative = 1.0
    dice: NonNegative = 2.0
    ssim: NonNegative = 0.0


#: The original's three combined losses (``objectives.losses.LOSS_PRESETS``), the winner first.
LossPreset = Literal["rmse_bce_dice", "ssim_dice", "rmse_bce"]
LOSS_PRESET_NAMES: tuple[str, ...] = get_args(LossPreset)


class LossParams(Section):
    preset: LossPreset | None = None
    depth: DepthLossParams = DepthLossParams()
    mask: MaskLossParams = MaskLossParams()


class OptimizerParams(Section):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Annotated[float, Field(gt=0.0, le=10.0)] = 0.1
    momentum: Fraction = 0.9
    weight_decay: NonNegative = 0.0


class SchedulerParams(Section):
    name: Literal["plateau", "onecycle", "step", "none"] = "onecycle"
    # plateau (ReduceLROnPlateau on the validation loss), as the original
    patience: Annotated[int, Field(ge=0)] = 2
    min_lr: NonNegative = 1e-6
    # step: multiply the lr by gamma every step_epochs epochs (the original divided by 10 after 3)
    step_epochs: PositiveInt = 3
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    # onecycle: peak lr = optimizer.lr, reached after pct_start of all steps
    pct_start: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.25


class AugmentParams(Section):
    photometric: bool = True
    photometric_p: Fraction = 0.5
    geometric: bool = True
    flip_p: Fraction = 0.5
    shift: Annotated[float, Field(ge=0.0, le=0.3)] = 0.05
    scale: Annotated[float, Field(ge=0.0, le=0.3)] = 0.1


class TrainParams(Section):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    # CUDA only: fp32 matmuls and convolutions on TF32 tensor cores (Ampere and later).
    tf32: bool = True
    # torch.compile the network for training and validation (one compilation per image size).
    compile: bool = False
    # DDP processes on this machine (one per GPU): train.py starts itself again under torchrun.
    # batch_size is per process; scenes_per_epoch is shared out among them.
    processes: PositiveInt = 1
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 16
    # Progressive resizing: the image size of each epoch; the last one repeats.
    image_sizes: Annotated[list[ImageSize], Field(min_length=1)] = [64] * 3 + [96] * 7
    train_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    # Scenes drawn per epoch (shuffled passes over the train split, the last one cut short);
    # None: each training scene once. A fixed number gives small datasets as many steps as
    # large ones, and a time per epoch that does not grow with the data.
    scenes_per_epoch: PositiveInt | None = 2400
    optimizer: OptimizerParams = OptimizerParams()
    scheduler: SchedulerParams = SchedulerParams()
    augment: AugmentParams = AugmentParams()
    seed: int = 0
    workers: Annotated[int, Field(ge=0)] = 1
    # Later epochs read each scene's decoded images from $TMPDIR (data/decoded_cache.py).
    decoded_cache: bool = True
    preview_images: Annotated[int, Field(ge=0, le=64)] = 8
    # Continue from models/checkpoints/last.pt: "auto" when it is unfinished and was trained
    # with the same params and data (else start afresh, saying why); true: resume or refuse.
    resume: Literal["auto"] | bool = "auto"
    # Which epoch's weights become models/model.pt: "best", the lowest validation loss among the
    # epochs trained (and validated) at the final image size, so that epochs are compared at one
    # size; or "last", the final epoch (for schedules built to end there).
    keep_epoch: Literal["best", "last"] = "best"
    # A scene whose image cannot be read or decoded: stop with one line naming it, or skip it
    # (counted as skipped_scenes in the history and MLflow); also used by evaluate.
    on_bad_image: Literal["stop", "skip"] = "stop"

    def image_size(self, epoch: int) -> int:
        """Image size of ``epoch`` (counted from 1)."""
        return self.image_sizes[min(epoch, len(self.image_sizes)) - 1]


class EvaluateParams(Section):
    split: Literal["train", "val", "test"] = "test"
    # None: the size the model was trained at last.
    image_size: ImageSize | None = None
    batch_size: PositiveInt = 32
    prediction_images: Annotated[int, Field(ge=0, le=64)] = 8


class TrackingParams(Section):
    experiment: str = "depthseg"
    # None: MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db in the working directory.
    tracking_uri: str | None = None


class RegistryParams(Section):
    model_name: str = "depthseg"
    # The champion rule: higher wins. iou_minus_rmse: test mask IoU - test depth RMSE.
    score: Literal["iou_minus_rmse", "mask_iou", "depth_rmse"] = "iou_minus_rmse"
    min_improvement: NonNegative = 0.0


class SearchDimension(Section):
    """A float range (``low``, ``high``, ``log``) or a list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchDimension:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give either non-empty choices or low and high, not both")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("needs low < high (or a list of choices)")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class TrialBudget(Section):
    epochs: PositiveInt = 3
    train_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    image_size: ImageSize = 64


class PrunerParams(Section):
    name: Literal["median", "hyperband", "none"] = "median"
    startup_trials: Annotated[int, Field(ge=0)] = 3  # median: trials finished before pruning
    warmup_epochs: Annotated[int, Field(ge=0)] = 1  # median: epochs a trial always runs


class TuneParams(Section):
    study_name: str = "depthseg"
    # None: sqlite:///optuna.db; any Optuna storage URL, or a path ending in .journal
    storage: str | None = None
    n_trials: PositiveInt | None = 10
    timeout: Annotated[float, Field(gt=0)] | None = None
    objective: Literal["score", "pareto"] = "score"
    seed: int = 0
    pruner: PrunerParams = PrunerParams()
    # Stop the study after this many consecutive trials failing with the same error type.
    max_consecutive_failures: PositiveInt = 3
    heartbeat_interval: PositiveInt = 30
    grace_period: PositiveInt = 120
    budget: TrialBudget = TrialBudget()
    space: dict[str, SearchDimension] = Field(
        default_factory=lambda: {
            "loss.depth.rmse": SearchDimension(low=0.0, high=4.0),
            "loss.depth.ssim": SearchDimension(low=0.0, high=4.0),
            "loss.mask.bce": SearchDimension(low=0.0, high=2.0),
            "loss.mask.dice": SearchDimension(low=0.0, high=4.0),
            "train.optimizer.lr": SearchDimension(low=0.005, high=0.2, log=True),
        }
    )


class LRFindParams(Section):
    """The LR range test (``python src/lr_find.py``); the original tried start 1e-7..1e-4, end
    1..10 and 100..400 iterations."""

    start_lr: Annotated[float, Field(gt=0.0)] = 1e-7
    end_lr: Annotated[float, Field(gt=0.0, le=100.0)] = 10.0
    iterations: Annotated[int, Field(ge=10)] = 100
    # Exponential moving average of the loss: weight of the newest loss.
    smoothing: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    # Stop once the smoothed loss exceeds this multiple of its minimum.
    diverge_factor: Annotated[float, Field(gt=1.0)] = 4.0
    image_size: ImageSize = 64

    @model_validator(mode="after")
    def _range_grows(self) -> LRFindParams:
        if not self.start_lr < self.end_lr:
            raise ValueError(
                f"lr_find.start_lr ({self.start_lr:g}) must be below lr_find.end_lr "
                f"({self.end_lr:g})"
            )
        return self


MiB = 2**20


class LimitsParams(Section):
    """What an image, archive, request or model file from outside may be: anything larger is
    refused, naming it, its size and the key that raises the limit, before it is decoded or
    allocated. The defaults admit the release (224-px scenes; file_map.txt 26 MB; 1.2 M files)
    and any phone camera's photo, and refuse decompression bombs."""

    # One image (dataset, predict.py, the served model): width x height, and encoded bytes.
    image_pixels: PositiveInt = 50_000_000
    image_bytes: PositiveInt = 64 * MiB
    # Each scan of a progressive JPEG decodes the whole image again: cameras write about 10.
    jpeg_scans: PositiveInt = 64
    # One request to the served model: scenes, and the pixels of all its images together.
    request_rows: PositiveInt = 16
    request_pixels: PositiveInt = 100_000_000
    # A dataset folder or archive (fetch): one file, how many, and how far a zip member may
    # deflate (images barely compress; file_map.txt about 8x).
    member_bytes: PositiveInt = 256 * MiB
    members: PositiveInt = 2_000_000
    compression_ratio: Annotated[float, Field(gt=1.0)] = 20.0
    # file_map.txt and bbox.txt (fetch and index).
    text_bytes: PositiveInt = 64 * MiB
    # Model weights fetched from a registry or run (predict.py, export.py).
    model_bytes: PositiveInt = 2048 * MiB

    def exceeded(self, key: str, found: float, what: str, unit: str = "bytes") -> str | None:
        """The refusal of ``what`` when ``found`` is over the limit ``key``; None within it."""
        limit = getattr(self, key)
        if found <= limit:
            return None
        return (
            f"{what} is {found:,} {unit}, over the limit of {limit:,} {unit} (limits.{key}): "
            f"refused; raise limits.{key} if such input is expected"
        )


class Params(Section):
    data: DataParams = DataParams()
    index: IndexParams = IndexParams()
    model: ModelParams = ModelParams()
    loss: LossParams = LossParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    registry: RegistryParams = RegistryParams()
    tracking: TrackingParams = TrackingParams()
    tune: TuneParams = TuneParams()
    lr_find: LRFindParams = LRFindParams()
    limits: LimitsParams = LimitsParams()

    @model_validator(mode="after")
    def _mask_only_models_ask_for_no_depth(self) -> Params:
        """A network without a depth output has no depth loss to train and no depth metric to
        rank by: params that ask for one are refused before training starts."""
        loss, score = self.loss, self.registry.score
        depth_asks = {
            "loss.preset": loss.preset,
            "loss.depth.rmse": loss.depth.rmse,
            "loss.depth.ssim": loss.depth.ssim,
            "registry.score": None if score == "mask_iou" else score,
        }
        asked = [f"{key} is {value}" for key, value in depth_asks.items() if value]
        if asked and not self.model.predicts_depth:
            raise ValueError(
                f"model.name is {self.model.name}, which predicts no depth, but "
                f"{', '.join(asked)}: set loss.preset to null, loss.depth.rmse and "
                "loss.depth.ssim to 0 and registry.score to mask_iou"
            )
        return self


def _section_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the section at ``loc`` of params.yaml; [] if that is no section."""
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _format_error(error: dict[str, Any], source: str) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _section_keys(error["loc"][:-1])
        known = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return f"{source}: unknown key '{key}': remove it or check its spelling{known}"
    if error["type"] == "literal_error":
        return f"{source}: {key}: {message}, got {error['input']!r}"
    location = f"{key}: " if key else ""
    got = "" if error["type"] == "value_error" else f" (got {error['input']!r})"
    return f"{source}: {location}{message}{got}"


def parse_params(raw: dict[str, Any], source: str = str(PARAMS_FILE)) -> Params:
    """Validate a params mapping; raise ParamsError with one line per problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = [_format_error(detail, source) for detail in error.errors()]
        raise ParamsError("\n".join(lines)) from None


def flatten(params: BaseModel | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'train': {'epochs': 3}}`` -> ``{'train.epochs': 3}``, for MLflow and Optuna."""
    mapping = params.model_dump() if isinstance(params, BaseModel) else params
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
