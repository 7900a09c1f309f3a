# lambda-testkit's Python fork server (see fork_server.rs, which runs it as
# `<python> -c <this file>` with the control socket, AF_UNIX SOCK_SEQPACKET, on fd 3).
#
# It imports what `python -m awslambdaric` imports, then forks one child per execution
# environment. A child makes itself what a fresh `python -m awslambdaric <handler>` would be
# at the same point (process group, stdio, working directory, variables, sys.path, module
# cache, argv) and runs awslambdaric's __main__ exactly as `-m` does. When the environment
# asks for something a fork cannot give (variables read at interpreter start, a module of
# the function's that would shadow a preloaded one, libraries the dynamic loader would find
# through the new LD_LIBRARY_PATH), the child execs the plain command instead.
#
# Protocol (one message per datagram, fields NUL-separated):
#   server -> us   b"ready\0K=V\0..."          once, with the environment it started with
#   us -> server   b"spawn\0<id>\0<pgid>\0<program>\0<cwd>\0<handler>\0<n>\0K=V\0..." + 1 fd
#                  (the output pipe: the child's stdout and stderr); pgid 0: a new group;
#                  the last <n> variables are what the interpreter added to its own
#                  environment as it started (PEP 538's LC_CTYPE): a fork gets them, an
#                  exec'd interpreter adds them itself
#   server -> us   b"pid\0<id>\0<pid>" or b"fail\0<id>\0<why>"
#   server -> us   b"exit\0<pid>\0<wait status>"   when a child ends (after its pid)
# End of file on the socket (the emulator dropped it, or its process died): the server kills
# every child's process group and exits.
_MAIN = dict(globals())  # a fresh __main__'s dunders, before this script adds anything

import os
import sys


def _preload():
    # `python -m` imports runpy first; then awslambdaric and what it imports. Some of its
    # modules read the environment at import (bootstrap: the log format and level), and its
    # C extension `runtime_client` captures AWS_LAMBDA_RUNTIME_API when it is loaded:
    # runtime_client is kept out, and an awslambdaric module stays imported only when
    # neither it nor an awslambdaric module it names mentions the environment or
    # runtime_client; each child imports the others afresh, with its own variables.
    # Keeping the pure ones (the package, its exceptions and log utilities) saves ~1 ms
    # per cold start (`cargo bench --bench python_cold`).
    import runpy  # noqa: F401

    sys.modules["runtime_client"] = None
    try:
        import awslambdaric.__main__  # noqa: F401
    finally:
        del sys.modules["runtime_client"]
    ours = [n for n in sys.modules if n == "awslambdaric" or n.startswith("awslambdaric.")]
    sources = {}
    for name in ours:
        try:
            with open(sys.modules[name].__file__, encoding="utf-8") as source:
                sources[name] = source.read()
        except (OSError, TypeError, AttributeError, ValueError):
            sources[name] = None
    impure = {
        n
        for n, text in sources.items()
        if text is None or any(word in text for word in ("environ", "getenv", "runtime_client"))
    }
    changed = True
    while changed:
        changed = False
        for name in ours:
            text = sources[name]
            if name not in impure and any(
                other.rpartition(".")[2] in text for other in impure if other != "awslambdaric"
            ):
                impure.add(name)
                changed = True
    if "awslambdaric" in impure:
        impure.update(ours)
    for name in impure:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and getattr(sys.modules[parent], child, None) is not None:
            delattr(sys.modules[parent], child)
    return set(sys.modules)


_KEEP = _preload()
# Top-level names a module of the function could shadow (found earlier on its sys.path).
_NAMES = {n.partition(".")[0] for n in _KEEP} | {"sitecustomize", "usercustomize"}
_PATH_TAIL = sys.path[1:]  # after sys.path[0] and PYTHONPATH (the server has none)
_LIBRARY_PATH = set(os.environ.get("LD_LIBRARY_PATH", "").split(":"))

import select  # noqa: E402
import socket  # noqa: E402


def _shadowed(entries):
    """Whether a directory early on the new sys.path holds something named like a module
    that is already imported (a plain spawn would import the function's instead), or a
    sitecustomize (a plain spawn imports it at start)."""
    for entry in entries:
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            if name.partition(".")[0] in _NAMES:
                return True
    return False


def _new_libraries(library_path):
    """Whether the new LD_LIBRARY_PATH adds a directory with shared libraries: the dynamic
    loader reads the variable once, at exec, so only a plain spawn would find them."""
    for entry in library_path.split(":"):
        if entry in _LIBRARY_PATH:
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        if any(".so" in name for name in names):
            return True
    return False


def _close_inherited(keep=-1):
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _prepare():
    """In a child, what does not depend on its environment: the module cache of a fresh
    `python -m awslambdaric` before awslambdaric is imported, and a fresh __main__."""
    for name in [n for n in sys.modules if n not in _KEEP]:
        del sys.modules[name]
    sys.path_importer_cache.clear()
    main = type(sys)("__main__")
    main.__dict__.clear()
    main.__dict__.update(_MAIN)
    sys.modules["__main__"] = main


def _parse(message, fds):
    fields = message.split(b"\0")
    program, cwd, handler = (os.fsdecode(f) for f in fields[3:6])
    env = [f.split(b"=", 1) for f in fields[7:] if f]
    added = int(fields[6])
    env, added = env[: len(env) - added], env[len(env) - added :]
    return fds[0], int(fields[2]), program, cwd, handler, env, added


def _become(out, pgid, program, cwd, handler, env, added):
    """In the child: become what `program -m awslambdaric handler` is when it imports the
    handler. Returns normally to run awslambdaric; execs the plain command when a fork
    cannot be told apart from it."""
    os.setpgid(0, pgid)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    _close_inherited()
    os.chdir(cwd)
    argv = [program, "-m", "awslambdaric", handler]
    text = {os.fsdecode(k): os.fsdecode(v) for k, v in env}
    pythonpath = [os.path.abspath(p) for p in text.get("PYTHONPATH", "").split(":")]
    if _shadowed([cwd] + pythonpath) or _new_libraries(text.get("LD_LIBRARY_PATH", "")):
        os.execve(program, argv, dict(env))
    environ = os.environb
    environ.clear()
    environ.update(env + added)
    posix = sys.modules[os.name]
    posix.environ.clear()
    posix.environ.update(env + added)
    # sys.path as the interpreter and site build it: sys.path[0] (the working directory
    # for -m), PYTHONPATH, the rest; duplicates after sys.path[0] removed.
    seen = set()
    path = []
    for entry in pythonpath + _PATH_TAIL:
        key = os.path.normcase(entry)
        if key not in seen:
            seen.add(key)
            path.append(entry)
    sys.path[:] = [cwd] + path
    sys.argv[:] = ["-m", handler]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv[:] = argv


def _spare(ctl):
    """Forks the next child ahead of its request, so that a request costs no fork: the
    fork and the child's first copy-on-write faults (~2.5 ms per cold start here, `cargo
    bench --bench python_cold`) happen while nothing waits. Returns ("spare", pid, socket)
    in the server; in the spare, once its request arrives, ("request", message, fds)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid:
        theirs.close()
        return "spare", pid, ours
    # Their descriptors are closed below: the objects must never close another later.
    ctl.detach()
    ours.detach()
    _close_inherited(keep=theirs.fileno())
    _prepare()
    try:
        message, fds, _, _ = socket.recv_fds(theirs, 1 << 18, 1)
    except OSError:
        message, fds = b"", []
    if not message or len(fds) != 1:
        os._exit(0)  # the server is gone, or it gave up on us
    os.close(theirs.detach())
    return "request", message, fds


def _serve():
    """The server's loop; returns only in a child, with its request."""
    ctl = socket.socket(fileno=3)
    ready = [b"ready"] + [k + b"=" + v for k, v in os.environb.items()]
    ctl.send(b"\0".join(ready))
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    children = {}  # pidfd -> pid
    spare = None
    while True:
        if spare is None:
            spare = _spare(ctl)
            if spare[0] == "request":
                return spare[1:]
        for fd, _ in poller.poll():
            if fd != ctl.fileno():
                pid = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                ctl.send(b"exit\0%d\0%d" % (pid, status))
                continue
            try:
                message, fds, _, _ = socket.recv_fds(ctl, 1 << 18, 1)
            except OSError:
                message, fds = b"", []
            if not message:
                victims = list(children.values()) + ([spare[1]] if spare else [])
                for pid in victims:
                    for kill in (os.killpg, os.kill):
                        try:
                            kill(pid, 9)
                        except OSError:
                            pass
                os._exit(0)
            fields = message.split(b"\0")
            ident = fields[1]
            if fields[0] != b"spawn" or len(fds) != 1:
                for extra in fds:
                    os.close(extra)
                ctl.send(b"fail\0" + ident + b"\0malformed request")
                continue
            pid = None
            if spare is not None:
                _, spare_pid, spare_socket = spare
                spare = None
                try:
                    socket.send_fds(spare_socket, [message], fds)
                    pid = spare_pid
                except OSError:
                    try:
                        os.kill(spare_pid, 9)
                        os.waitpid(spare_pid, 0)
                    except OSError:
                        pass
                spare_socket.close()
            if pid is None:
                try:
                    pid = os.fork()
                except OSError as e:
                    os.close(fds[0])
                    ctl.send(b"fail\0" + ident + b"\0" + str(e).encode())
                    continue
                if pid == 0:
                    ctl.detach()
                    _prepare()
                    return message, fds
            os.close(fds[0])
            try:
                os.setpgid(pid, int(fields[2]) or pid)  # also here, so it holds before we answer
            except OSError:
                pass
            pidfd = os.pidfd_open(pid)
            children[pidfd] = pid
            poller.register(pidfd, select.POLLIN)
            ctl.send(b"pid\0" + ident + b"\0%d" % pid)


_request = _parse(*_serve())
try:
    _become(*_request)
except BaseException:
    # Whatever failed, the plain command still gives the environment its runtime (its
    # stdio and group are set first, so they hold for it).
    try:
        _, _, _program, _, _handler, _env, _ = _request
        os.execve(_program, [_program, "-m", "awslambdaric", _handler], dict(_env))
    finally:
        os._exit(127)
del _serve, _spare, _become, _prepare, _parse, _preload, _shadowed, _new_libraries
del _close_inherited, _request, _KEEP, _NAMES, _PATH_TAIL, _LIBRARY_PATH, _MAIN
del os, sys, select, socket
__import__("runpy")._run_module_as_main("awslambdaric")
