"""`make run`: the local stack in the foreground with a demo user and demo data."""

import logging
import signal
import threading
from pathlib import Path

from sputnik_tools.local import demo
from sputnik_tools.local.front import Front
from sputnik_tools.local.stack import LocalStack

log = logging.getLogger("sputnik_tools.local")

DEMO_LOGIN = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - local stack only, documented in the README


def load_demo(stack: LocalStack) -> list[str]:
    """Create the demo user, upload the demo archive (ingested by S3 events) and demo projects."""
    from sputnik import auth

    auth.add_user(DEMO_LOGIN, DEMO_PASSWORD, demo=True)
    loaded = [f"user {DEMO_LOGIN} (password {DEMO_PASSWORD})", demo.load_scenes(stack)]
    ids = demo.load_projects(DEMO_LOGIN)
    loaded.append(f"projects {', '.join(map(str, ids))} of {DEMO_LOGIN}")
    loaded.append(
        f"RGB product {demo.load_rgb_product(stack, ids[0], 'S2A_33TWL_20210620_0_L2A')} in project {ids[0]}"
    )
    if demo.has_real_scene(stack):
        loaded.append(
            f"RGB product {demo.load_rgb_product(stack, ids[1], demo.REAL_SCENE.name)} in project {ids[1]}"
        )
        loaded.append(demo.load_meta_pull(stack, ids[1]))
    loaded.append(
        f"{demo.load_unannounced_scene(stack)} unannounced: s2_load_meta on project {ids[0]} finds it"
    )
    loaded.append(demo.load_composite(stack, ids[2]))
    # Last, so that the procs before them keep the event ids events/ names (procs 1 and 2 of
    # s2_load_data, 3 of s2_load_meta, 4 of s2_composite): an index series on both projects with scenes.
    loaded.append(demo.load_index_series(ids[0]))
    if demo.has_real_scene(stack):
        loaded.append(demo.load_index_series(ids[1]))
    return loaded


def serve(template: Path, port: int = 8000, aws_port: int = 5000) -> None:
    """Start the stack and the HTTP front, print how to use them, and wait for Ctrl-C."""
    # Each line names the function whose invocation logged it, or "local" (the local stack stamps them).
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s [%(function_name)s] %(name)s: %(message)s",
            defaults={"function_name": "-"},
        )
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stack = LocalStack(template, aws_port=aws_port).start()
    front = Front(stack, port=port, access_log=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        loaded = load_demo(stack)
        print(
            f"\nsputnik local stack is up\n"
            f"  API:              {front.url}\n"
            f"  AWS endpoint:     {stack.endpoint}  (AWS_ENDPOINT_URL for boto3, aws, sputnik users)\n"
            f"  demo data:        {'; '.join(loaded)}\n"
            f"  try:              curl -u demo:demo {front.url}/project/list\n"
            f"                    curl -u demo:demo '{front.url}/meta/dates?project_id=1'\n"
            f"  stop:             Ctrl-C\n",
            flush=True,
        )
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping", flush=True)
        front.stop()
        stack.stop()
