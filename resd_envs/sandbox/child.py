"""The code that runs inside the sandbox child (stdlib only, Python >= 3.8, no resd imports).

The parent starts ``python -s -S -B -u -c <jail.py + this file's text> IN_FD OUT_FD LIFE_FD``.
The child:

1. reads one request (``marshal`` format, written by the trusted parent) from ``IN_FD``: program
   text, function name, call arguments, limits, and nothing else (no expected answers); then
   closes it and stdin;
2. does its tier's set-up (``jail.py``: enter the minimal root and drop the uid, or fork the
   keeper), checks that the caller is still alive (``LIFE_FD``) and closes that fd;
3. sets soft = hard rlimits (CPU, address space, processes, open files, file size, core = 0);
4. writes ``hello`` (pid, uid, pid/net namespace ids) on ``OUT_FD`` before any model code runs;
5. runs the program's top level under a timer, then each call under a timer (``setitimer``),
   writing one JSON line per event on ``OUT_FD``: ``begin``, then ``ok`` (with the value converted
   to plain lists of int/float), ``error``, ``format``, ``timeout`` or ``memory``; finally ``end``.

Model code shares this interpreter, so it can tamper with anything here; that is why the parent
re-validates every message and never trusts the verdict of this process, only raw values.
Importing this module (as the parent and tests do) has no side effects.
"""

import _signal  # the C module: ``signal`` would import enum, which costs milliseconds per run
import marshal
import os
import sys

if __name__ != "__main__":  # imported by the parent or tests; under -c, jail.py's text precedes
    from resd_envs.sandbox.jail import become_keeper, check_lifeline, drop_privileges, enter_jail

PROGRAM_FILENAME = "<program>"
MAX_DEPTH = 32
INT_LIMIT = 2 ** 63
TEXT_CAP = 1500

# Bound at import, before model code runs, so that patching json/builtins later does not change
# how this module encodes messages.
_type = type
_issubclass = issubclass
_len = len
_str = str
_float = float
_int = int
_bool = bool
_list = list
_tuple = tuple
_float_repr = float.__repr__
_int_repr = int.__repr__
_float_of = float.__float__
_int_of = int.__int__
_list_iter = list.__iter__
_tuple_iter = tuple.__iter__
_ord = ord
_write = os.write
_setitimer = _signal.setitimer
_ITIMER_REAL = _signal.ITIMER_REAL


class FormatProblem(Exception):
    """A returned value that is not plain numbers; the message says where and what."""


class CallTimeout(BaseException):
    """Raised by the SIGALRM handler when a phase exceeds its time limit."""


def to_plain(value, path="value", depth=0):
    """Convert a returned value to nested lists of int/float without running model code.

    Accepts int and float (including subclasses, read through the base type's slot so overridden
    methods are ignored), and list/tuple (including subclasses) of those; rejects bool, None,
    strings, dicts and any other object with :class:`FormatProblem`.
    """
    kind = _type(value)
    if kind is _bool:
        raise FormatProblem("%s is a bool, expected a number" % path)
    if kind is _float or _issubclass(kind, _float):
        return _float_of(value)
    if kind is _int or _issubclass(kind, _int):
        number = _int_of(value)
        if number >= INT_LIMIT or number <= -INT_LIMIT:
            raise FormatProblem("%s is an integer too large to be a coordinate" % path)
        return number
    if depth >= MAX_DEPTH:
        raise FormatProblem("%s is nested deeper than %d levels" % (path, MAX_DEPTH))
    if kind is _list or _issubclass(kind, _list):
        items = _list_iter(value)
    elif kind is _tuple or _issubclass(kind, _tuple):
        items = _tuple_iter(value)
    else:
        raise FormatProblem(
            "%s is a %s, expected a number or a list of numbers" % (path, _type_name(kind))
        )
    out = []
    for index, item in enumerate(items):
        out.append(to_plain(item, "%s[%d]" % (path, index), depth + 1))
    return out


def encode(plain):
    """JSON text of a :func:`to_plain` result; NaN/inf become ``{"$f": "nan"|"inf"|"-inf"}``."""
    kind = _type(plain)
    if kind is _float:
        if plain != plain:
            return '{"$f":"nan"}'
        if plain in (_float("inf"), _float("-inf")):
            return '{"$f":"inf"}' if plain > 0 else '{"$f":"-inf"}'
        return _float_repr(plain)
    if kind is _int:
        return _int_repr(plain)
    return "[" + ",".join([encode(item) for item in plain]) + "]"


def quote(text):
    """A JSON string literal of ``text`` using only printable ASCII (non-ASCII as \\u escapes)."""
    out = []
    for char in text:
        code = _ord(char)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code < 0x10000:
            out.append("\\u%04x" % code)
        else:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
    return '"' + "".join(out) + '"'


def _type_name(kind):
    try:
        return _type.__dict__["__name__"].__get__(kind)
    except BaseException:
        return "object"


def _cap(text):
    text = _str(text)
    return text if _len(text) <= TEXT_CAP else text[: TEXT_CAP - 3] + "..."


def _exception_text(exc):
    """``TypeName: message`` without trusting the exception's own methods to behave."""
    name = _type_name(_type(exc))
    try:
        detail = _str(exc)
    except BaseException:
        detail = "<the exception's message could not be printed>"
    return "%s: %s" % (name, detail) if detail else name


def describe_exception(exc, source_lines):
    """Trimmed traceback text: only frames of the program, innermost first, with line numbers.

    Example: ``line 12, in predict_position: ZeroDivisionError: division by zero`` followed by the
    offending source line and, for nested calls, the chain of program frames that led there.
    """
    if isinstance(exc, SyntaxError):
        where = "line %s: " % exc.lineno if exc.lineno else ""
        text = "%s%s: %s" % (where, _type_name(_type(exc)), exc.msg)
        if exc.lineno and 0 < exc.lineno <= _len(source_lines):
            text += "\n    %s" % source_lines[exc.lineno - 1].strip()
        return _cap(text)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == PROGRAM_FILENAME:
            frames.append((tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    text = _exception_text(exc)
    if not frames:
        return _cap(text)
    lineno, name = frames[-1]
    lines = ["line %d, in %s: %s" % (lineno, name, text)]
    if 0 < lineno <= _len(source_lines):
        lines.append("    " + source_lines[lineno - 1].strip())
    if _len(frames) > 1:
        chain = " -> ".join("%s (line %d)" % (n, ln) for ln, n in frames)
        lines.append("  call chain: " + chain)
    return _cap("\n".join(lines))


def _send(fd, text):
    data = (text + "\n").encode("ascii")
    while data:
        written = _write(fd, data)
        data = data[written:]


def _on_alarm(signum, frame):
    raise CallTimeout()


def _set_limits(limits):
    import resource

    table = (
        (resource.RLIMIT_CPU, limits["cpu"]),
        (resource.RLIMIT_AS, limits["as"]),
        (resource.RLIMIT_NPROC, limits["nproc"]),
        (resource.RLIMIT_NOFILE, limits["nofile"]),
        (resource.RLIMIT_FSIZE, limits["fsize"]),
        (resource.RLIMIT_CORE, 0),
    )
    for which, value in table:
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def _ns_id(kind):
    try:
        link = os.readlink("/proc/self/ns/" + kind)
        return int(link.split("[", 1)[1].rstrip("]"))
    except (OSError, ValueError, IndexError):
        return 0


def _run_phase(fd, index, limit, action, source_lines):
    """Run one phase under a timer; report it; return (status, result)."""
    _send(fd, '{"k":"begin","i":%d}' % index)
    try:
        _setitimer(_ITIMER_REAL, limit)
        try:
            result = action()
        finally:
            _setitimer(_ITIMER_REAL, 0)
    except CallTimeout:
        _send(fd, '{"k":"timeout","i":%d}' % index)
        return "timeout", None
    except MemoryError:
        _send(fd, '{"k":"memory","i":%d}' % index)
        return "memory", None
    except BaseException as exc:  # model code may raise anything, SystemExit included
        text = "the program raised an exception that could not be described"
        try:
            _setitimer(_ITIMER_REAL, 0.25)  # exception methods are model code too
            try:
                if isinstance(exc, SystemExit):
                    text = "the program called exit()/sys.exit() (%s)" % _exception_text(exc)
                else:
                    text = describe_exception(exc, source_lines)
            finally:
                _setitimer(_ITIMER_REAL, 0)
        except BaseException:
            pass
        _send(fd, '{"k":"error","i":%d,"msg":%s}' % (index, quote(_cap(text))))
        return "error", None
    return "ok", result


def run_request(request, fd):
    """Evaluate the program and its calls described by ``request``, reporting on ``fd``."""
    source = request["source"]
    source_lines = source.splitlines()
    namespace = {"__name__": "program", "__builtins__": __builtins__}

    def load():
        code = compile(source, PROGRAM_FILENAME, "exec", dont_inherit=True)
        exec(code, namespace)

    status, _ = _run_phase(fd, -1, request["import_timeout"], load, source_lines)
    if status != "ok":
        return
    function = namespace.get(request["function"])
    if not callable(function):
        msg = "the program defines no function named %r" % request["function"]
        if function is not None:
            msg = "%r is defined but is not a function" % request["function"]
        _send(fd, '{"k":"error","i":-1,"msg":%s}' % quote(msg))
        return
    _send(fd, '{"k":"ok","i":-1}')
    budget = request["result_budget"]
    timeouts = 0
    for index, args in enumerate(request["calls"]):
        status, value = _run_phase(
            fd, index, request["call_timeout"], lambda a=args: function(*a), source_lines
        )
        if status == "memory":
            return
        if status == "timeout":
            timeouts += 1
            if timeouts >= request["max_timeouts"]:
                return
            continue
        if status != "ok":
            continue
        try:
            text = encode(to_plain(value))
            if _len(text) > budget:
                raise FormatProblem(
                    "value is too large (%d bytes of JSON; %d bytes left for all values)"
                    % (_len(text), budget)
                )
        except FormatProblem as exc:
            _send(fd, '{"k":"format","i":%d,"msg":%s}' % (index, quote(_cap(exc))))
            continue
        except BaseException:
            _send(fd, '{"k":"format","i":%d,"msg":"the value could not be read as numbers"}' % index)
            continue
        budget -= _len(text)
        _send(fd, '{"k":"ok","i":%d,"v":%s}' % (index, text))


def _prepare(request, in_fd, out_fd, life_fd):
    """The tier's set-up (see jail.py); runs before any model code, as a trusted step."""
    setup = request.get("setup") or {}
    if setup.get("jail") is not None:
        enter_jail(setup["jail"])
        drop_privileges(setup["jail"]["uid"])
    elif setup.get("keeper"):
        become_keeper(_signal, (in_fd, out_fd, life_fd), setup.get("scratch"))
        drop_privileges(setup.get("uid"))
    check_lifeline(life_fd)
    os.close(life_fd)


def main(in_fd, out_fd, life_fd):
    """Child entry point: read the request, set up, set limits, say hello, run, say end, exit."""
    chunks = []
    while True:
        chunk = os.read(in_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(in_fd)
    try:
        os.close(0)
    except OSError:
        pass
    sys.stdin = None
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    try:
        request = marshal.loads(b"".join(chunks))
        _prepare(request, in_fd, out_fd, life_fd)
        _set_limits(request["limits"])
    except Exception as exc:  # our own set-up failed: report it as a sandbox problem
        _send(out_fd, '{"k":"fatal","msg":%s}' % quote(_cap("child set-up failed: %r" % (exc,))))
        os._exit(3)
    _signal.signal(_signal.SIGALRM, _on_alarm)
    _send(
        out_fd,
        '{"k":"hello","pid":%d,"uid":%d,"pidns":%d,"netns":%d,"hashseed":%d}'
        % (os.getpid(), os.getuid(), _ns_id("pid"), _ns_id("net"), int(sys.flags.hash_randomization)),
    )
    try:
        run_request(request, out_fd)
        _send(out_fd, '{"k":"end"}')
    except BaseException:
        pass
    try:
        _setitimer(_ITIMER_REAL, 0.2)
        for stream in (sys.__stdout__, sys.__stderr__):
            stream.flush()
        _setitimer(_ITIMER_REAL, 0)
    except BaseException:
        pass
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
