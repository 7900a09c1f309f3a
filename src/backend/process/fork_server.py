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
    # `python -m` imports runpy first; then awslambdaric and what it imports. Its own
    # modules read the environment at import (log format and level), and its C extension
    # `runtime_client` captures AWS_LAMBDA_RUNTIME_API when loaded: neither may come from
    # here, so runtime_client is kept out and awslambdaric's modules are forgotten; each
    # child imports them afresh, with its own variables.
    import runpy  # noqa: F401

    sys.modules["runtime_client"] = None
    try:
        import awslambdaric.__main__  # noqa: F401
    finally:
        del sys.modules["runtime_client"]
    for name in [n for n in sys.modules if n == "awslambdaric" or n.startswith("awslambdaric.")]:
        del sys.modules[name]
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


def _close_inherited():
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def _become(ctl, out, pgid, program, cwd, handler, env, added):
    """In the child: become what `program -m awslambdaric handler` is when it imports the
    handler. Returns normally to run awslambdaric; execs the plain command when a fork
    cannot be told apart from it."""
    os.setpgid(0, pgid)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    ctl.detach()  # its descriptor is closed below; the object must never close another
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
    sys.path_importer_cache.clear()
    for name in [n for n in sys.modules if n not in _KEEP]:
        del sys.modules[name]
    main = type(sys)("__main__")
    main.__dict__.clear()
    main.__dict__.update(_MAIN)
    sys.modules["__main__"] = main
    sys.argv[:] = ["-m", handler]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv[:] = argv


def _serve():
    ctl = socket.socket(fileno=3)
    ready = [b"ready"] + [k + b"=" + v for k, v in os.environb.items()]
    ctl.send(b"\0".join(ready))
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    children = {}  # pidfd -> pid
    while True:
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
                for pid in children.values():
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
            out = fds[0]
            pgid = int(fields[2])
            program, cwd, handler = (os.fsdecode(f) for f in fields[3:6])
            env = [f.split(b"=", 1) for f in fields[7:] if f]
            added = int(fields[6])
            env, added = env[: len(env) - added], env[len(env) - added :]
            try:
                pid = os.fork()
            except OSError as e:
                os.close(out)
                ctl.send(b"fail\0" + ident + b"\0" + str(e).encode())
                continue
            if pid == 0:
                try:
                    _become(ctl, out, pgid, program, cwd, handler, env, added)
                except BaseException:
                    # Whatever failed, the plain command still gives the environment its
                    # runtime (its stdio and group are set first, so they hold for it).
                    try:
                        os.execve(program, [program, "-m", "awslambdaric", handler], dict(env))
                    finally:
                        os._exit(127)
                return
            os.close(out)
            try:
                os.setpgid(pid, pgid or pid)  # also here, so it holds before we answer
            except OSError:
                pass
            children[os.pidfd_open(pid)] = pid
            ctl.send(b"pid\0" + ident + b"\0%d" % pid)


_serve()
del _serve, _become, _preload, _shadowed, _new_libraries, _close_inherited, _KEEP, _NAMES
del _PATH_TAIL, _LIBRARY_PATH, _MAIN, os, sys, select, socket
__import__("runpy")._run_module_as_main("awslambdaric")
