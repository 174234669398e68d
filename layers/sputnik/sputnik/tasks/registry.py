"""The task registry: each task's name, description, parameters, state machine and scripts."""

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from sputnik.band_names import SCL_CLASSES
from sputnik.errors import InvalidInput
from sputnik.indices import INDICES, get_index
from sputnik.settings import Settings

MAX_SCENE_IDS = 500
# A composite's period: a year at most (a season's or a year's picture; each scene costs reads).
MAX_COMPOSITE_DAYS = 366
SceneId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")]


class LoadMetaParams(BaseModel):
    """Parameters of s2_load_meta: which archive to list, the stack's own (the default) or the public one."""

    model_config = ConfigDict(extra="forbid")

    archive: Literal["stack", "public"] | None = None


class LoadDataParams(BaseModel):
    """Parameters of s2_load_data: some scenes by id, the scenes of one date, or (neither) every scene."""

    model_config = ConfigDict(extra="forbid")

    scene_ids: list[SceneId] | None = Field(default=None, min_length=1, max_length=MAX_SCENE_IDS)
    date: dt.date | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> "LoadDataParams":
        """At most one way of choosing scenes."""
        if self.scene_ids is not None and self.date is not None:
            raise ValueError("give scene_ids or date, not both")
        return self


class IndexParams(LoadDataParams):
    """Parameters of s2_index: the index (a name or an expression), scenes as s2_load_data, SCL mask."""

    index: str | dict[str, str]
    mask: list[Annotated[int, Field(ge=min(SCL_CLASSES), le=max(SCL_CLASSES))]] | None = Field(
        default=None, max_length=len(SCL_CLASSES)
    )

    @field_validator("index", mode="before")
    @classmethod
    def _known_index(cls, value: Any) -> str | dict[str, str]:
        """A known name (as its canonical name) or `{"expression": ...}` that the parser accepts."""
        try:
            index = get_index(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc
        return index.name if isinstance(value, str) else {"expression": value["expression"]}

    @field_validator("mask")
    @classmethod
    def _classes(cls, value: list[int] | None) -> list[int] | None:
        """Each class once, in order."""
        return None if value is None else sorted(set(value))


class CompositeParams(BaseModel):
    """Parameters of s2_composite: the period, the product (rgb or an index), the method, the cloud limit."""

    model_config = ConfigDict(extra="forbid")

    start_date: dt.date
    end_date: dt.date
    product: str = "rgb"
    method: Literal["median", "max_ndvi", "least_cloud"] = "median"
    max_scene_cloud: float = Field(default=100, ge=0, le=100)

    @field_validator("product")
    @classmethod
    def _known_product(cls, value: str) -> str:
        """Rgb or a named index, as s2_index names them (lower case)."""
        name = value.strip().lower()
        if name != "rgb" and name not in INDICES:
            raise ValueError(f"unknown product {value[:40]!r}; products are rgb, {', '.join(INDICES)}")
        return name

    @model_validator(mode="after")
    def _bounded_period(self) -> "CompositeParams":
        """end_date on or after start_date, at most MAX_COMPOSITE_DAYS apart."""
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if (self.end_date - self.start_date).days + 1 > MAX_COMPOSITE_DAYS:
            raise ValueError(f"the period is longer than {MAX_COMPOSITE_DAYS} days")
        return self


@dataclass(frozen=True)
class Task:
    """One task: what /task/list shows, how /task/run checks its params, and what runs it."""

    name: str
    descr: str
    params: type[BaseModel]
    machine_setting: str  # the Settings field holding its state machine's ARN
    machine: str  # the state machine's logical id in template.yaml
    scripts: tuple[str, ...]

    def machine_arn(self, settings: Settings) -> str:
        """ARN of the task's state machine in this environment."""
        return settings.value(self.machine_setting)

    def check_params(self, params: Any) -> dict[str, Any]:
        """Validate params against the task's schema; the normalised params, or InvalidInput saying which."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidInput(f"params of {self.name} must be a JSON object")
        try:
            parsed = self.params.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "params"
            raise InvalidInput(f"params of {self.name}: {where}: {first['msg']}") from exc
        return parsed.model_dump(mode="json", exclude_none=True)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="s2_load_meta",
            descr="Load Sentinel-2 metadata: list the archive month by month over the project's tiles "
            "and dates, and catalogue the scenes that cover the project "
            '(params: {"archive": "public"} lists the public archive instead of the stack\'s own)',
            params=LoadMetaParams,
            machine_setting="s2_load_meta_machine",
            machine="S2LoadMetaMachine",
            scripts=("plan_months", "scan_month", "summarise"),
        ),
        Task(
            name="s2_load_data",
            descr="Load Sentinel-2 band data: make the RGB product of scenes of the project "
            '(params: {"scene_ids": [...]}, {"date": "YYYY-MM-DD"}, or none for every scene)',
            params=LoadDataParams,
            machine_setting="s2_load_data_machine",
            machine="S2LoadDataMachine",
            scripts=("resolve_scenes", "build_product", "summarise"),
        ),
        Task(
            name="s2_index",
            descr="Compute a spectral index per scene over the project's border, clouds masked, as a "
            f'COG and statistics (params: {{"index": one of {", ".join(INDICES)} '
            'or {"expression": "(B08-B04)/(B08+B04)"}, then "scene_ids", "date" or neither as for '
            's2_load_data, and "mask": the SCL classes to mask, by default 0, 1, 3, 8, 9, 10})',
            params=IndexParams,
            machine_setting="s2_index_machine",
            machine="S2IndexMachine",
            scripts=("resolve_scenes", "build_index", "summarise"),
        ),
        Task(
            name="s2_composite",
            descr="Composite Sentinel-2 scenes of a period into one cloud-free picture over the project's "
            'border, block by block (params: {"start_date", "end_date", "product": "rgb" or an index name, '
            '"method": "median" | "max_ndvi" | "least_cloud", "max_scene_cloud": 0-100})',
            params=CompositeParams,
            machine_setting="s2_composite_machine",
            machine="S2CompositeMachine",
            scripts=("plan_blocks", "composite_block", "assemble_composite"),
        ),
    )
}


def get_task(name: str) -> Task:
    """The task of that name, or InvalidInput listing the known ones."""
    task = TASKS.get(name)
    if task is None:
        raise InvalidInput(f"unknown task {name!r}; tasks are {', '.join(sorted(TASKS))}")
    return task
