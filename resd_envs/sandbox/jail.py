"""Child-side set-up that runs before any model code: the minimal root, the uid drop, the keeper.

Stdlib only and no resd imports: its text is prepended to ``child.py``'s and handed to the sandbox
interpreter with ``-c``. Three entry points, one per tier that needs them:

* :func:`enter_jail` (``unshare`` tier; we are root in fresh mount/pid namespaces): mount an
  empty tmpfs, bind into it read-only only the interpreter's files and directories, hide package
  directories inside them, add a few device nodes, a fresh ``/proc`` and a size-limited ``/tmp``
  (``/var/tmp`` and ``/dev/shm`` are links to it), make the new root read-only, move it over
  ``/`` and chroot into it.
* :func:`drop_privileges`: switch to the sandbox uid with no groups, set no_new_privs, and re-arm
  the parent-death signal (a uid change clears it).
* :func:`become_keeper` (``rlimit`` tier): fork; the parent stays behind as a child subreaper that
  never runs model code and, when the worker ends or the caller asks (SIGTERM, also its
  parent-death signal), kills every descendant -- including ``setsid`` + double-fork escapees,
  which the kernel re-parents to it.

:func:`check_lifeline` ends the process when the caller is already gone (its end of a pipe closed),
which closes the window in which a parent-death signal may not yet have been armed.
"""

import os

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
SIGKILL, SIGTERM = 9, 15
ROOT_TMPFS = "size=1m,nr_inodes=4096,mode=0755"
HIDDEN_TMPFS = "size=4k,nr_inodes=16,mode=0555"


class JailError(Exception):
    """A set-up step failed (reported to the parent as a sandbox failure, never as the model's)."""


class _Libc:
    """The few libc calls we need, through ``_ctypes`` (importing ``ctypes`` costs ~10 ms a run)."""

    def __init__(self):
        import _ctypes

        class _Int(_ctypes._SimpleCData):
            _type_ = "i"

        class _ULong(_ctypes._SimpleCData):
            _type_ = "L"

        class _Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _Int

        class _Handle:
            _handle = _ctypes.dlopen(None)

        self.ulong = _ULong
        self.get_errno = _ctypes.get_errno
        for name in ("mount", "chroot", "prctl"):
            setattr(self, name, _Function((name, _Handle)))

    def check(self, result, what):
        if result != 0:
            raise JailError("%s: %s" % (what, os.strerror(self.get_errno())))


_LIBC = []


def _libc():
    if not _LIBC:
        _LIBC.append(_Libc())
    return _LIBC[0]


def _prctl(option, value):
    libc = _libc()
    zero = libc.ulong(0)
    libc.check(libc.prctl(option, libc.ulong(value), zero, zero, zero), "prctl(%d)" % option)


def _locked_flags(path):
    """Mount flags of ``path``'s mount that a bind remount must keep (locked inside a user ns)."""
    flags = os.statvfs(path).f_flag
    out = 0
    for st_bit, ms_bit in ((8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME), (4096, MS_RELATIME)):
        if flags & st_bit:
            out |= ms_bit
    return out


def enter_jail(spec):
    """Build the minimal root described by ``spec`` and chroot into it (we must be ns-root)."""
    libc = _libc()

    def mount(source, target, fstype, flags, data):
        encoded = [None if v is None else v.encode() for v in (source, target, fstype, data)]
        result = libc.mount(encoded[0], encoded[1], encoded[2], libc.ulong(flags), encoded[3])
        libc.check(result, "mount %s on %s" % (source or fstype, target))

    def bind(source, target, extra):
        mount(source, target, None, MS_BIND, None)
        mount(None, target, None, MS_BIND | MS_REMOUNT | extra | _locked_flags(source), None)

    def placeholder(target, is_dir):
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "a"):
                pass

    root = spec["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    mount("resd-root", root, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS)
    read_only = MS_RDONLY | MS_NOSUID | MS_NODEV
    for path in spec["dirs"]:
        placeholder(root + path, True)
        bind(path, root + path, read_only)
    for path in spec["files"]:
        placeholder(root + path, False)
        bind(path, root + path, read_only)
    for path in spec["masked"]:
        mount("resd-hidden", root + path, "tmpfs", read_only | MS_NOEXEC, HIDDEN_TMPFS)
    for path in spec["devices"]:
        placeholder(root + path, False)
        bind(path, root + path, MS_NOSUID | MS_NOEXEC)
    placeholder(root + "/proc", True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    placeholder(root + "/tmp", True)
    owner = spec["uid"] if spec["uid"] is not None else os.getuid()
    mount("resd-scratch", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          "size=%d,nr_inodes=%d,mode=0700,uid=%d,gid=%d" % (spec["scratch_bytes"], spec["inodes"], owner, owner))
    links = list(spec["symlinks"]) + [("/var/tmp", "/tmp"), ("/dev/shm", "/tmp")]
    for link, target in links:  # last: a link must not redirect a mount made above
        os.makedirs(os.path.dirname(root + link), exist_ok=True)
        if not os.path.lexists(root + link):
            os.symlink(target, root + link)
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    os.chdir(root)
    mount(root, "/", None, MS_MOVE, None)
    libc.check(libc.chroot(b"."), "chroot")
    os.chdir("/tmp")


def drop_privileges(uid, death_signal=SIGKILL):
    """Become ``uid`` (no groups) when given; always set no_new_privs and the parent-death signal."""
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_PDEATHSIG, death_signal)


def check_lifeline(fd):
    """Exit at once if the caller's end of the lifeline pipe is closed (the caller died)."""
    os.set_blocking(fd, False)
    try:
        gone = os.read(fd, 1) == b""
    except BlockingIOError:
        gone = False
    if gone:
        os._exit(4)


class _Stop(BaseException):
    pass


def _on_term(signum, frame):
    raise _Stop()


def _children(pid):
    """Our live children: the kernel's list (one read) when it has one, else a scan of /proc."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid), "rb") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        pass
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False  # no children left at all
        if pid == 0:
            return True


def remove_tree(path):
    """Delete ``path`` and everything in it without following symlinks (errors are ignored)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                remove_tree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def become_keeper(signal_module, close_in_keeper, scratch=None):
    """Fork; return in the worker. The keeper sweeps all descendants and exits like the worker.

    The keeper also deletes the host ``scratch`` directory, so it is gone even when the caller
    was SIGKILLed (the caller deletes it too on its normal path).
    """
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, SIGTERM)
    signal_module.signal(SIGTERM, _on_term)
    worker = os.fork()
    if worker == 0:
        signal_module.signal(SIGTERM, signal_module.SIG_DFL)
        return
    for fd in close_in_keeper:
        try:
            os.close(fd)
        except OSError:
            pass
    status = 9  # as if killed: the worker was stopped from outside
    try:
        _, raw = os.waitpid(worker, 0)
        status = os.waitstatus_to_exitcode(raw)
    except _Stop:
        pass
    signal_module.signal(SIGTERM, signal_module.SIG_IGN)
    me = os.getpid()
    while True:
        for pid in _children(me):
            try:
                os.kill(pid, SIGKILL)
            except OSError:
                pass
        if not _reap_all():
            break
    if scratch:
        remove_tree(scratch)
    os._exit(status if status >= 0 else 128 - status)
