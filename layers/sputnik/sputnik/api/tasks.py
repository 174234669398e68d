"""HTTP routes /task/list, /task/run and /proc/list: processing a project with Step Functions."""

from datetime import datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sputnik.api.common import Caller, CurrentUser, create_app
from sputnik.models import ProcModel
from sputnik.projects import check_owner
from sputnik.settings import get_settings
from sputnik.tasks import procs, runner
from sputnik.tasks.registry import TASKS


class TaskRes(BaseModel):
    """A task of the registry."""

    name: str
    descr: str


class TaskListRes(BaseModel):
    """Answer of GET /task/list."""

    tasks: list[TaskRes]


class TaskRunParams(BaseModel):
    """Body of POST /task/run."""

    task: str
    title: str
    project_id: int
    params: Any = None


class TaskRunRes(BaseModel):
    """Answer of POST /task/run."""

    event_id: int


class ScriptRes(BaseModel):
    """One script (stage) of a proc."""

    proc_id: int
    iscript: int
    name: str
    status: str | None = Field(default=None, description="WAIT | NEXT | RUN | DONE")
    result: str | None = Field(default=None, description="SUCCESS | FATAL | ERRORS")


class ProcRes(BaseModel):
    """One run of a task, with its scripts."""

    event_id: int
    status: str | None = Field(default=None, description="WAIT | RUN | DONE")
    result: str | None = Field(default=None, description="SUCCESS | FATAL | ERRORS")
    params: Any = None
    task_id: int
    ctime: datetime
    proc_id: int
    task: str | None = None
    title: str | None = None
    scripts: list[ScriptRes] = []
    message: str | None = Field(default=None, description="why a FATAL proc failed, in one line")
    summary: dict[str, Any] | None = Field(default=None, description="what the proc did: counts, failures")


class ProcListRes(BaseModel):
    """Answer of GET /proc/list."""

    procs: list[ProcRes]


def proc_res(proc: ProcModel) -> ProcRes:
    """A proc record in the contract's terms."""
    return ProcRes(
        event_id=int(proc.event_id),
        status=proc.status,
        result=proc.result,
        params=proc.params,
        task_id=int(proc.task_id),
        ctime=datetime.fromisoformat(proc.ctime),
        proc_id=int(proc.proc_id),
        task=proc.task,
        title=proc.title,
        scripts=[
            ScriptRes(
                proc_id=int(proc.proc_id),
                iscript=int(s.iscript),
                name=s.name,
                status=s.status,
                result=s.result,
            )
            for s in proc.scripts
        ],
        message=proc.message,
        summary=proc.summary,
    )


def list_procs(owner: str, project_id: int) -> list[ProcRes]:
    """The caller's project's last procs, newest first (404 for anyone else's project)."""
    check_owner(owner, project_id)
    return [proc_res(p) for p in procs.list_procs(project_id)]


def create_tasks_app() -> FastAPI:
    """Build the tasks app."""
    # /task/run starts each task's state machine: without their ARNs, fail init, not a request.
    get_settings().require(*(task.machine_setting for task in TASKS.values()))
    app = create_app("sputnik tasks")

    @app.get("/task/list", summary="Task list", response_model=TaskListRes)
    async def task_list(owner: Caller) -> TaskListRes:
        """The tasks a project can run."""
        return TaskListRes(tasks=[TaskRes(name=t.name, descr=t.descr) for t in TASKS.values()])

    @app.post("/task/run", summary="Run processing", response_model=TaskRunRes)
    async def task_run(body: TaskRunParams, user: CurrentUser) -> TaskRunRes:
        """Start a task on the caller's project; the event id to follow it in /proc/list."""
        event_id = await run_in_threadpool(
            runner.run_task, user.id, user.login, body.task, body.title, body.project_id, body.params
        )
        return TaskRunRes(event_id=event_id)

    @app.get("/proc/list", summary="Processing list", response_model=ProcListRes)
    async def proc_list(project_id: int, owner: Caller) -> ProcListRes:
        """The project's last 30 procs, newest first."""
        return ProcListRes(procs=await run_in_threadpool(list_procs, owner, project_id))

    return app
