"""The `sputnik` command: manage users, run the local stack, write a demo archive, invoke functions."""

import argparse
import getpass
import os
import sys
from pathlib import Path

from sputnik.errors import SputnikError


def _read_password(args: argparse.Namespace) -> str:
    """Read a password from stdin (one line) or ask for it without echo."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("passwords differ")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    """Add, list, remove users, or give the users of an older stack their ids."""
    from sputnik import auth
    from sputnik_tools import users

    if args.users_cmd == "add":
        created = auth.add_user(args.login, _read_password(args))
        print(f"user {args.login} " + ("created" if created else "saved with its new password"))
    elif args.users_cmd == "remove":
        held = users.remove_user(args.login, delete_data=args.delete_data)
        print(f"user {args.login} removed; it owned {held}" + (", all deleted" if held.project_ids else ""))
    elif args.users_cmd == "migrate-ids":
        done = users.migrate_ids()
        print(
            f"ids given to {done.users} users; {done.projects} projects and {done.procs} procs re-owned"
            + (f"; projects of removed logins left unowned: {done.orphans}" if done.orphans else "")
        )
    else:
        for login in auth.list_users():
            print(login)
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    """Run the local stack in the foreground until Ctrl-C."""
    from sputnik_tools.local.run import serve

    # Every invocation prints an EMF metrics line, which on Lambda becomes CloudWatch metrics; on a
    # laptop it only buries the logs. --metrics keeps them (Powertools reads this at each flush).
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false" if args.metrics else "true"
    serve(Path(args.template), port=args.port, aws_port=args.aws_port)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    """Write generated scenes (or a real scene folder) into an archive bucket."""
    import boto3

    from sputnik.settings import get_settings
    from sputnik_tools.archive import generate_archive, upload_fixture_scene

    s3 = boto3.client("s3")
    bucket = args.bucket or get_settings().archive_bucket
    if args.archive_cmd == "generate":
        keys = generate_archive(s3, bucket, args.tiles, args.dates, size=args.size, seed=args.seed)
    else:
        keys = [upload_fixture_scene(s3, bucket, Path(args.folder))]
    for key in keys:
        print(f"s3://{bucket}/{key}")
    return 0


def function_name(logical_id: str, stack: str | None, template: Path) -> str:
    """The name of a template function: in the deployed stack, or as the local stack names it."""
    if stack:
        import boto3

        resource = boto3.client("cloudformation").describe_stack_resource(
            StackName=stack, LogicalResourceId=logical_id
        )
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])
    from sputnik_tools.template import Template

    local = Template.load(template)
    functions = local.of_type("AWS::Serverless::Function")
    if logical_id not in functions:
        raise SputnikError(f"{template} has no function {logical_id}; it has {', '.join(sorted(functions))}")
    return local.physical_name(logical_id)


def cmd_invoke(args: argparse.Namespace) -> int:
    """Run an event (such as one of events/) through a function and print its result."""
    import json

    import boto3

    event = json.loads(Path(args.event).read_text())
    name = function_name(args.function, args.stack, Path(args.template))
    response = boto3.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    print(response["Payload"].read().decode())
    if response.get("FunctionError"):
        print(f"sputnik: {args.function} failed ({response['FunctionError']})", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="sputnik", description=__doc__)
    parser.add_argument(
        "--stack", help="deployed CloudFormation stack to work on (default: environment/local)"
    )
    parser.add_argument(
        "--region",
        help="AWS region of the stack (default: AWS_DEFAULT_REGION; the local stack's own region locally)",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    users = sub.add_parser("users", help="manage logins (works against AWS_ENDPOINT_URL too)")
    users_sub = users.add_subparsers(dest="users_cmd", required=True)
    add = users_sub.add_parser("add", help="create a login or set its password")
    add.add_argument("login")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    remove = users_sub.add_parser(
        "remove", help="delete a login; refused while it owns projects, unless --delete-data"
    )
    remove.add_argument("login")
    remove.add_argument(
        "--delete-data",
        action="store_true",
        help="delete the user's projects, scenes, procs and products (files too) with the login",
    )
    users_sub.add_parser("list", help="list logins")
    users_sub.add_parser(
        "migrate-ids",
        help="once, after upgrading a stack made before user ids: give every login an id and re-own its data",
    )
    users.set_defaults(func=cmd_users)

    archive = sub.add_parser("archive", help="write scenes into the archive bucket (ingested by its events)")
    archive.add_argument("--bucket", help="bucket to write to (default: the stack's archive bucket)")
    archive_sub = archive.add_subparsers(dest="archive_cmd", required=True)
    generate = archive_sub.add_parser("generate", help="generate realistic scenes in the Earth Search layout")
    generate.add_argument("--tiles", nargs="+", required=True, help="MGRS tiles, e.g. 33TWL 33TXL")
    generate.add_argument("--dates", nargs="+", required=True, help="dates as YYYY-MM-DD")
    generate.add_argument("--size", type=int, default=256, help="pixels per side of each COG")
    generate.add_argument("--seed", type=int, default=0)
    upload = archive_sub.add_parser("upload", help="copy a real scene folder (item + COGs) into the archive")
    upload.add_argument("folder")
    archive.set_defaults(func=cmd_archive)

    local = sub.add_parser("local", help="run the local stack (API + AWS endpoint) in the foreground")
    local.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    local.add_argument("--aws-port", type=int, default=int(os.environ.get("AWS_PORT", 5000)))
    local.add_argument("--template", default="template.yaml")
    local.add_argument(
        "--metrics", action="store_true", help="print each invocation's EMF metrics line (off by default)"
    )
    local.set_defaults(func=cmd_local)

    invoke = sub.add_parser(
        "invoke", help="run an event through a function of the local stack (AWS_ENDPOINT_URL) or of --stack"
    )
    invoke.add_argument("function", help="the function's logical id in template.yaml, e.g. ProjectsFunction")
    invoke.add_argument("event", help="JSON file of the event, e.g. events/MetaFunction/meta-dates.json")
    invoke.add_argument("--template", default="template.yaml", help="where the local stack's names come from")
    invoke.set_defaults(func=cmd_invoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    local = endpoint.startswith(("http://127.0.0.1", "http://localhost"))
    if local:
        # The local stack takes any credentials; spare users from inventing some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    from sputnik.settings import MissingSettings
    from sputnik_tools.local_settings import TEMPLATE, local_region, use_local_settings, use_stack_settings
    from sputnik_tools.template import Template

    template = Path(getattr(args, "template", TEMPLATE))
    # The local stack lives in one region whatever the shell's AWS_DEFAULT_REGION says.
    region = args.region or (local_region(Template.load(template)) if local else None)
    if region:
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = region
    try:
        # The library has no default names: the local stack's where it is the endpoint (or is being
        # started), a deployed stack's with --stack; otherwise the SPUTNIK_* variables must be set.
        if local or args.cmd == "local":
            use_local_settings(template)
        if args.stack:
            import boto3

            use_stack_settings(template, boto3.client("cloudformation"), args.stack)
        from sputnik.models import bind_tables

        bind_tables()
        return int(args.func(args))
    except MissingSettings as exc:
        names = ", ".join(exc.variables)
        print(
            f"sputnik: {names} not set: name the deployed stack with --stack, set them,"
            " or point AWS_ENDPOINT_URL at the local stack",
            file=sys.stderr,
        )
    except SputnikError as exc:
        print(f"sputnik: {exc}", file=sys.stderr)
    except Exception as exc:
        message = _aws_problem(exc, args)
        if message is None:
            raise
        print(f"sputnik: {message}", file=sys.stderr)
    return 1


def _aws_problem(exc: Exception, args: argparse.Namespace) -> str | None:
    """One line that says what to set, for the AWS errors a wrong region or missing setup causes."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
    from pynamodb.exceptions import PynamoDBException

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "(none)"
    where = f"region {region}" + (
        f" at {os.environ['AWS_ENDPOINT_URL']}" if "AWS_ENDPOINT_URL" in os.environ else ""
    )
    code = ""
    if isinstance(exc, PynamoDBException):
        code = exc.cause_response_code or ""
    elif isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code"))
    if code == "ResourceNotFoundException" or "TableDoesNotExist" in type(exc).__name__:
        return (
            f"the stack's tables are not in {where}: set AWS_DEFAULT_REGION or --region to the stack's region"
        )
    if code == "ValidationError" and args.stack:
        return f"no stack {args.stack!r} in {where}: set AWS_DEFAULT_REGION or --region to the stack's region"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION or --region to the stack's region"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: configure them (aws configure) or set AWS_PROFILE"
    return None


if __name__ == "__main__":
    sys.exit(main())
