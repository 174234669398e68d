"""Admin work on users: what a user owns, removing a user (and, when asked, their data), migrating ids.

These run from the `sputnik users` command, never in a request: they may Scan.
"""

from dataclasses import dataclass, field

from sputnik import auth, projects, quotas
from sputnik.errors import SputnikError
from sputnik.models import (
    CounterModel,
    MetaModel,
    ProcModel,
    ProductModel,
    ProjectModel,
    ProjectTileModel,
    UserModel,
)
from sputnik.settings import get_settings


@dataclass
class Holdings:
    """What one user owns."""

    project_ids: list[int] = field(default_factory=list)
    procs: int = 0
    products: int = 0
    scenes: int = 0

    def __str__(self) -> str:
        ids = ", ".join(map(str, self.project_ids)) or "none"
        return (
            f"{len(self.project_ids)} projects (ids {ids}) with {self.scenes} scene records, "
            f"{self.procs} procs and {self.products} products"
        )


def holdings(user_id: str) -> Holdings:
    """Count what a user owns, project by project."""
    held = Holdings()
    for project in projects.list_projects(user_id):
        pid = int(project.project_id)
        held.project_ids.append(pid)
        held.scenes += sum(1 for _ in MetaModel.query(pid, attributes_to_get=["date_scene"]))
        held.procs += sum(1 for _ in ProcModel.query(pid, attributes_to_get=["event_id"]))
        held.products += sum(1 for _ in ProductModel.query(pid, attributes_to_get=["product_id"]))
    return held


def delete_project_data(project: ProjectModel) -> None:
    """Delete a project with everything made for it: scenes matched, procs, products and their files."""
    import boto3

    pid = int(project.project_id)
    for model in (MetaModel, ProcModel, ProductModel):
        with model.batch_write() as batch:
            for item in model.query(pid):
                batch.delete(item)
    s3 = boto3.client("s3")
    bucket = get_settings().products_bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"projects/{pid}/"):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    projects.delete_project(project)


def remove_user(login: str, *, delete_data: bool = False) -> Holdings:
    """Remove a login; refuse while it owns anything, unless `delete_data` deletes that too. What it owned."""
    user = auth.get_user(login)
    owner = str(user.user_id or "")
    held = holdings(owner) if owner else Holdings()
    if held.project_ids and not delete_data:
        raise SputnikError(
            f"{login} owns {held}: not removed. `sputnik users remove {login} --delete-data` "
            "deletes all of it with the user"
        )
    for project in projects.list_projects(owner) if owner else []:
        delete_project_data(project)
    if owner:
        for key in (quotas.running_key(owner), quotas.projects_key(owner)):
            CounterModel(key).delete()
    auth.delete_user(user)
    return held


@dataclass
class Migration:
    """What `migrate_ids` changed."""

    users: int = 0
    projects: int = 0
    procs: int = 0
    orphans: list[int] = field(default_factory=list)


def migrate_ids() -> Migration:
    """Give every login made before user ids an id, and re-own its projects, tile rows and procs by it.

    Idempotent: a login that has an id keeps it, a project that has an owner keeps it, and each
    user's project count is set (not added to) from what they own.
    """
    done = Migration()
    ids: dict[str, str] = {}
    for user in UserModel.scan(UserModel.password_hash.exists()):
        if not user.user_id:
            user.update(
                actions=[
                    UserModel.user_id.set(UserModel.user_id | auth.new_user_id()),
                    UserModel.credential_version.set(UserModel.credential_version | 1),
                ]
            )
            done.users += 1
        ids[str(user.login)] = str(user.user_id)
    counts: dict[str, int] = {}
    for project in ProjectModel.scan():
        pid = int(project.project_id)
        if not project.owner:
            owner = ids.get(str(project.login or ""))
            if owner is None:
                done.orphans.append(pid)  # its login was removed: nobody may own it
                continue
            project.update(
                actions=[ProjectModel.owner.set(owner)], condition=ProjectModel.owner.does_not_exist()
            )
            for tile in project.tiles:
                ProjectTileModel(tile, pid).update(actions=[ProjectTileModel.owner.set(owner)])
            done.projects += 1
        owner = str(project.owner)
        counts[owner] = counts.get(owner, 0) + 1
        for proc in ProcModel.query(pid, filter_condition=ProcModel.owner.does_not_exist()):
            proc.update(actions=[ProcModel.owner.set(owner)])
            done.procs += 1
    for owner, count in counts.items():
        CounterModel(quotas.projects_key(owner)).update(actions=[CounterModel.value.set(count)])
    return done
