"""Fresh Python processes without the import bill: forks of one interpreter that has the libraries.

A test that starts `python -c ...` or `python -m sputnik_tools.cli ...` to see what a cold process
does (a function's init as Lambda runs it, the CLI as a user runs it) pays a second or so of
importing numpy, rasterio, FastAPI and boto3 each time, which is most of its cost. Here one helper
process imports those third-party libraries once (none of sputnik's modules, under an environment
without any AWS_ or SPUTNIK_ variable, and they read none of theirs at import) and forks a child per
run. The child takes the run's environment, working directory, arguments and stdin before it
imports anything of sputnik, as a new process would: sputnik's modules, settings and clients are
all made in the child. The helper forks from a single thread, so no lock is held across the fork.
"""

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

# Third-party modules whose import is most of a cold start, and which read no setting of the
# environment when imported (Powertools and PynamoDB do, so they are left to each child).
PRELOAD = (
    "numpy",
    "rasterio",
    "rasterio.warp",
    "rasterio.features",
    "shapely",
    "pyproj",
    "pydantic",
    "fastapi",
    "mangum",
    "boto3",
    "botocore.session",
    "s3transfer.manager",
    "morecantile",
    "rio_tiler.io",
    "titiler.core.factory",
    "pystac",
    "httpx",
    "yaml",
)
# The variables whose values the helper's own imports could see: none of the stack's or AWS's.
OURS = ("AWS_", "SPUTNIK_", "POWERTOOLS_", "MOTO_")

# The helper's loop (run as `python -c`): a JSON request per line in, a JSON answer per line out.
SERVE = r"""
import importlib, json, os, runpy, sys, traceback
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
threads = len(os.listdir('/proc/self/task'))
sys.stdout.write('ready\n' if threads == 1 else f'{threads} threads after the imports\n'); sys.stdout.flush()
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(job['cwd'])
            os.environ.clear()
            os.environ.update(job['env'])
            for fd, path, mode in ((0, job['stdin'], os.O_RDONLY), (1, job['stdout'], os.O_WRONLY),
                                   (2, job['stderr'], os.O_WRONLY)):
                os.dup2(os.open(path, mode), fd)
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(1, 'w', closefd=False)
            sys.stderr = open(2, 'w', closefd=False)
            argv = job['argv']
            sys.path[0] = os.getcwd()
            if argv[0] == '-c':
                sys.argv = ['-c', *argv[2:]]
                exec(compile(argv[1], '<string>', 'exec'), {'__name__': '__main__'})
            else:
                sys.argv = [argv[1], *argv[2:]]
                runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                import atexit; atexit._run_exitfuncs()
            except BaseException:
                traceback.print_exc()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(code)
    print(json.dumps({'pid': pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({'returncode': os.waitstatus_to_exitcode(status)}), flush=True)
"""


class WarmPython:
    """One helper process per test process, started on first use; runs are one at a time."""

    def __init__(self) -> None:
        self._helper: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
        # No thread pools in the helper (a fork copies only the forking thread): OpenBLAS and
        # numexpr start theirs at import unless told one thread.
        env.update(OPENBLAS_NUM_THREADS="1", NUMEXPR_NUM_THREADS="1")
        helper = subprocess.Popen(
            [sys.executable, "-c", SERVE, *PRELOAD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        assert helper.stdout is not None
        started = helper.stdout.readline()
        assert started == "ready\n", f"the helper did not start: {started!r}"
        atexit.register(self._stop, helper)
        return helper

    @staticmethod
    def _stop(helper: subprocess.Popen[str]) -> None:
        """End the helper: its loop ends with its stdin."""
        for stream in (helper.stdin, helper.stdout):
            if stream is not None:
                stream.close()
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: str | Path | None = None,
        input: str = "",  # subprocess.run's name
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Like `subprocess.run([python, *args], capture_output=True, text=True)`: args `-c CODE ...`
        or `-m MODULE ...`; the run's own interpreter if its PYTHONPATH differs from the helper's."""
        if args[0] not in ("-c", "-m") or env.get("PYTHONPATH") != os.environ.get("PYTHONPATH"):
            return subprocess.run(
                [sys.executable, *args],
                env=env,
                cwd=cwd,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        with self._lock, tempfile.TemporaryDirectory() as folder:
            if self._helper is None or self._helper.poll() is not None:
                self._helper = self._start()
            paths = {name: Path(folder) / name for name in ("stdin", "stdout", "stderr")}
            paths["stdin"].write_text(input)
            for name in ("stdout", "stderr"):
                paths[name].touch()
            job: dict[str, Any] = {
                "argv": args,
                "env": env,
                "cwd": str(cwd or os.getcwd()),
                **{name: str(path) for name, path in paths.items()},
            }
            assert self._helper.stdin is not None and self._helper.stdout is not None
            self._helper.stdin.write(json.dumps(job) + "\n")
            self._helper.stdin.flush()
            pid = json.loads(self._helper.stdout.readline())["pid"]
            timer = threading.Timer(timeout, os.kill, (pid, 9))
            timer.start()
            try:
                answer = self._helper.stdout.readline()
            finally:
                timer.cancel()
            returncode = json.loads(answer)["returncode"]
            if returncode == -9:
                raise subprocess.TimeoutExpired([sys.executable, *args], timeout)
            return subprocess.CompletedProcess(
                [sys.executable, *args], returncode, paths["stdout"].read_text(), paths["stderr"].read_text()
            )


WARM = WarmPython()
