"""One training run writes to an output folder at a time: `OUT/.run.lock` holds the host and
process id of the run that owns the folder. A second run refuses to start while that process
lives; a lock left by a run that was killed (its process is gone) is taken over, with a note.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def acquire_run_lock(out: str | Path) -> Path:
    """Take the folder's lock for this process, released at exit; a ValueError naming the
    process that holds it otherwise."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            fd = None
        if fd is None:
            try:
                owner = json.loads(path.read_text())
            except (OSError, ValueError):
                owner = {}
            if owner == me:
                return path
            if not owner and time.time() - path.stat().st_mtime < 10:
                raise ValueError(f"{out} is in use by a training run that is starting; wait "
                                 "or give another --out")
            same_host = owner.get("host") == me["host"]
            if same_host and isinstance(owner.get("pid"), int) and _alive(owner["pid"]):
                raise ValueError(f"{out} is in use by another training run (process "
                                 f"{owner['pid']}); wait for it to end or give another --out")
            if not same_host and owner:
                raise ValueError(f"{out} is in use by a training run on {owner.get('host')} "
                                 f"(process {owner.get('pid')}); if that run is gone, delete "
                                 f"{path}")
            print(f"{path}: taking over the lock of a run that ended without releasing it")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        atexit.register(release_run_lock, path)
        return path
    raise ValueError(f"{path}: could not take the run lock")


def release_run_lock(path: str | Path) -> None:
    """Remove the lock if this process holds it."""
    path = Path(path)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
