"""WorkDirLock: one run per work dir, held by flock for the life of the process, stale files taken over."""
import json
import os
import socket
import subprocess
import sys

import pytest

from visionmix.engine.work_dir_lock import LOCK_NAME, WorkDirLock, WorkDirLockedError

HOLD = """import sys, time
from visionmix.engine.work_dir_lock import WorkDirLock
lock = WorkDirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "work")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkDirLockedError, match=rf"work dir .*work is in use by another run \(PID {holder.pid} "
                                                    rf"on {socket.gethostname()}, started .*\); wait for it"):
            WorkDirLock(tmp_path / "work").acquire()
    finally:
        holder.kill()
        holder.wait()
    with WorkDirLock(tmp_path / "work") as lock:  # the kernel dropped the dead holder's flock
        assert lock.taken_over and f"PID {holder.pid}" in lock.taken_over  # its file said who it was
        record = json.loads((tmp_path / "work" / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert not (tmp_path / "work" / LOCK_NAME).exists()


def test_a_stale_file_is_taken_over_and_a_live_unlocked_one_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    pid = dead_pid()
    (work / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "then"}))
    with WorkDirLock(work) as lock:
        assert lock.taken_over.startswith(f"took over the lock of a run that is gone (PID {pid} on ")
    # a file naming a live process that holds no flock (another host's view of an NFS folder, say): refused
    (work / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(WorkDirLockedError, match=rf"locked by PID {os.getppid()} .*alive on this host; if that run "
                                                 rf"is gone, delete .*{LOCK_NAME}"):
        WorkDirLock(work).acquire()
    (work / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(WorkDirLockedError, match="on host elsewhere"):
        WorkDirLock(work).acquire()


def test_a_folder_made_for_the_lock_alone_is_removed_again(tmp_path):
    lock = WorkDirLock(tmp_path / "new").acquire()
    assert (tmp_path / "new" / LOCK_NAME).is_file()
    lock.release()
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        WorkDirLock(tmp_path / "file").acquire()


def test_a_refusal_waits_a_moment_for_the_holders_record(tmp_path):
    """A run that has just taken the lock writes who it is a moment later: the refusal names it all the same."""
    import fcntl
    import threading

    work = tmp_path / "work"
    work.mkdir()
    fd = os.open(work / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, record not written yet
    late = threading.Timer(0.3, lambda: os.pwrite(fd, json.dumps({"pid": 4242, "host": "h", "started": "now",
                                                                    "command": "x"}).encode(), 0))
    late.start()
    try:
        with pytest.raises(WorkDirLockedError, match=r"in use by another run \(PID 4242 on h, started now: x\)"):
            WorkDirLock(work).acquire()
    finally:
        late.join()
        os.close(fd)
