"""Run the bench worker on a board over SSH (paramiko).

One connection per transport. The first probe or job creates a private remote
directory (``mktemp -d``) and copies the ``bench`` package into it; each job
gets a sub-directory with its files and ``job.json``, removed after the job;
:meth:`SshTransport.close` removes the whole directory.

Every remote command is an argument list joined with :func:`shlex.quote`; the
only shell code is fixed text in this module. The worker runs under the
device's ``timeout`` (coreutils or busybox) when it has one, so it dies on its
own even if the connection drops; on a timeout seen here it is also killed by pid.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import inspect
import json
import logging
import math
import os
import posixpath
import select
import shlex
import socket
import time
from typing import Any

from devices.errors import (
    AuthenticationError,
    HostKeyError,
    HostSpecError,
    HostUnreachableError,
    RemoteTimeoutError,
    TransportError,
)
from devices.profiles import DeviceProfile
from devices.transport import Transport, parse_host

__all__ = ["SshTransport"]

# Prints the private directory (mktemp replaces the XXXXXXXX template with random characters), the home
# directory, and "timeout" if `timeout -k` works there
# (as the last three lines: a chatty login shell may print before).
_SETUP = ('mktemp -d -t edgenas.XXXXXXXX && printf "%s\\n" "$HOME" && '
          '{ if timeout -k 1 5 true >/dev/null 2>&1; then echo timeout; else echo none; fi; }')
# Runs "$@" in directory $1 with $1 first on PYTHONPATH; prints its pid first so it can be killed.
_PID = "edgenas-pid:"
_WRAPPER = ('echo "' + _PID + '$$"; cd -- "$1" || exit 97; PYTHONPATH="$1${PYTHONPATH:+:$PYTHONPATH}"; '
            'export PYTHONPATH; shift; exec "$@"')
_KILL_AFTER_S = 5  # grace between the remote timeout's TERM and its KILL
_IO_TIMEOUT_S = 60.0  # no progress for this long on a copy or a short command: the link is dead


def _fingerprint(key: Any) -> str:
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def _ssh_config(alias: str) -> dict[str, Any]:
    """HostName, User, Port and IdentityFile of ``alias`` from ``~/.ssh/config`` (empty if none)."""
    path = os.path.expanduser("~/.ssh/config")
    if not os.path.isfile(path):
        return {}
    import paramiko

    try:
        found = paramiko.SSHConfig.from_path(path).lookup(alias)
    except (OSError, paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
        raise TransportError(f"cannot read {path}: {exc}") from None
    return {k: found[k] for k in ("hostname", "user", "port", "identityfile") if k in found}


class SshTransport(Transport):
    """The bench worker on ``user@host:port``, reached with key authentication.

    The host key must already be in ``known_hosts`` (it is never added
    silently); authentication uses ``key``, else ssh-agent and ``~/.ssh/id_*``.

    Args:
        host: host name or address (a ``~/.ssh/config`` alias is resolved).
        user: login (default: ``~/.ssh/config``'s, else the local user name).
        port: TCP port (default: ``~/.ssh/config``'s, else 22).
        python: the device's interpreter; ``~/`` is its home directory.
        key: private key file.
        known_hosts: file the host key is checked against (default ``~/.ssh/known_hosts``).
        connect_timeout: seconds for the TCP connection, the handshake and authentication.

    Raises:
        TransportError: paramiko is not installed (``pip install 'edgenas[ssh]'``).
        HostUnreachableError: refused, unresolvable, no answer, or not an SSH server.
        HostKeyError: the host key is not in known_hosts, or differs from it.
        AuthenticationError: the key is missing, encrypted or refused.
    """

    name = "ssh"

    def __init__(self, host: str, user: str | None = None, port: int | None = None, python: str = "python3",
                 key: str | None = None, known_hosts: str | None = None, connect_timeout: float = 10) -> None:
        try:
            import paramiko
        except ImportError:
            raise TransportError("the SSH transport needs paramiko: pip install 'edgenas[ssh]'") from None
        config = _ssh_config(host)
        self.host = config.get("hostname", host)
        self.user = user or config.get("user") or getpass.getuser()
        self.port = int(port or config.get("port") or 22)
        super().__init__(python, f"{self.user}@{_bracket(self.host)}:{self.port}")
        self.connect_timeout = float(connect_timeout)
        self._session: str | None = None
        self._home = ""
        self._has_timeout = False
        self._jobs = 0
        self._sftp = None
        if key is None:
            keys = [os.path.expanduser(k) for k in config.get("identityfile", [])]
            key_files = [k for k in keys if os.path.isfile(k)] or None
        else:
            key_files = [os.path.expanduser(key)]
            if not os.path.isfile(key_files[0]):
                raise AuthenticationError(f"key file {key} does not exist")
        self._client = self._connect(paramiko, key_files, known_hosts)

    @classmethod
    def from_profile(cls, profile: DeviceProfile, host: str | None = None, key: str | None = None,
                     known_hosts: str | None = None, python: str | None = None,
                     connect_timeout: float = 10) -> SshTransport:
        """Connect to ``profile``'s device; ``host`` (``[USER@]HOST[:PORT]``) overrides its ``[ssh]`` table.

        Raises:
            HostSpecError: malformed ``host``, or no host in either place.
        """
        user, name, port = parse_host(host) if host else (None, "", None)
        if not name:
            if not profile.ssh.host:
                raise HostSpecError(f"device {profile.name!r} has no SSH host: pass --host USER@HOST[:PORT] "
                                    f"or set [ssh] host in its profile ({profile.source or 'profile'})")
            user, name, port = parse_host(profile.ssh.host)
        user = user or profile.ssh.user or None
        # 22 is also SshSettings' default, so only another port overrides ~/.ssh/config.
        port = port or (profile.ssh.port if profile.ssh.port != 22 else None)
        return cls(name, user, port, python or profile.python or "python3", key, known_hosts, connect_timeout)

    # -- connection ---------------------------------------------------------------------------------------

    def _connect(self, paramiko: Any, key_files: list[str] | None, known_hosts: str | None) -> Any:
        # paramiko logs failed handshakes with tracebacks; our errors say it in one line.
        logger = logging.getLogger("paramiko")
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        where = f"{_bracket(self.host)}:{self.port}"
        known = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        if known_hosts and not os.path.isfile(known):
            raise HostKeyError(f"known_hosts file {known_hosts} does not exist")
        client = paramiko.SSHClient()
        try:
            if os.path.isfile(known):
                client.load_host_keys(known)
        except (OSError, paramiko.SSHException) as exc:
            raise HostKeyError(f"cannot read known_hosts file {known}: {exc}") from None
        client.set_missing_host_key_policy(_RejectUnknown(self.host, self.port, known))
        timeout = self.connect_timeout
        options: dict[str, Any] = {
            "username": self.user, "key_filename": key_files, "allow_agent": key_files is None,
            "look_for_keys": key_files is None, "timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout,
        }
        if "channel_timeout" in inspect.signature(client.connect).parameters:  # paramiko >= 3.2
            options["channel_timeout"] = timeout
        try:
            client.connect(self.host, self.port, **options)
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"the host key of {where} changed: it sent {_fingerprint(exc.key)}, {known} has "
                f"{_fingerprint(exc.expected_key)}; if the device was reinstalled, remove the old entry "
                f"(ssh-keygen -R {shlex.quote(_known_name(self.host, self.port))} -f {shlex.quote(known)}) and "
                f"add the new one, otherwise someone may be intercepting the connection") from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise AuthenticationError(f"the key {key_files[0] if key_files else ''} is encrypted: add it to "
                                      f"ssh-agent (ssh-add) and leave out --key") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            which = f"the key {', '.join(key_files)}" if key_files else "ssh-agent's and ~/.ssh's keys"
            raise AuthenticationError(f"{self.address} refused {which} ({exc}); check the user name and that "
                                      f"the public key is in the device's ~/.ssh/authorized_keys") from None
        except socket.gaierror as exc:
            client.close()
            raise HostUnreachableError(f"cannot resolve host {self.host!r}: {exc.strerror or exc}") from None
        except TimeoutError:
            client.close()
            raise HostUnreachableError(f"no answer from {where} within {timeout:g} s") from None
        except paramiko.SSHException as exc:
            client.close()
            raise HostUnreachableError(f"no SSH session with {where}: {_one_line(exc)}") from None
        except OSError as exc:  # includes NoValidConnectionsError (connection refused)
            client.close()
            reason = "connection refused" if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) \
                else (exc.strerror or _one_line(exc))
            raise HostUnreachableError(f"cannot connect to {where}: {reason}") from None
        client.get_transport().set_keepalive(30)
        return client

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is None:
            return
        try:
            if self._session:
                # Best effort: the directory is private and under the device's temp directory.
                with contextlib.suppress(TransportError):
                    self._exec_on(client, ["rm", "-rf", "--", self._session], min(_IO_TIMEOUT_S, 30))
        finally:
            self._session = None
            if self._sftp is not None:
                with contextlib.suppress(Exception):  # closing a dead channel may raise anything
                    self._sftp.close()
                self._sftp = None
            client.close()

    # -- remote commands ----------------------------------------------------------------------------------

    def _exec(self, argv: list[str], timeout: float, on_timeout_kill: bool = False,
              what: str = "") -> tuple[int, str, str]:
        if self._client is None:
            raise TransportError(f"the SSH transport to {self.address} is closed")
        return self._exec_on(self._client, argv, timeout, on_timeout_kill, what)

    def _exec_on(self, client: Any, argv: list[str], timeout: float, on_timeout_kill: bool = False,
                 what: str = "") -> tuple[int, str, str]:
        """Run ``argv`` (each word quoted) on the device: ``(exit status, stdout, stderr)``.

        With ``on_timeout_kill`` the command prints ``edgenas-pid:<pid>`` first (see
        ``_WRAPPER``); that pid is killed when ``timeout`` passes, and the line is not returned.
        """
        import paramiko

        command = shlex.join(argv)
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise HostUnreachableError(f"the connection to {self.address} was lost")
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        try:
            channel = transport.open_session(timeout=min(timeout, _IO_TIMEOUT_S))
            try:
                channel.exec_command(command)
                while True:
                    while channel.recv_ready():
                        out += channel.recv(65536)
                    while channel.recv_stderr_ready():
                        err += channel.recv_stderr(65536)
                    if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if channel.eof_received:
                        time.sleep(0.002)  # only the exit status is still to come
                    else:
                        select.select([channel], [], [], min(remaining, 0.5))
                timed_out = not channel.exit_status_ready()
                status = None if timed_out else channel.recv_exit_status()
            finally:
                channel.close()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise HostUnreachableError(f"the connection to {self.address} was lost: {_one_line(exc)}") from None
        text, errors = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        pid = None
        if on_timeout_kill and _PID in text:
            rest = text.partition(_PID)[2]  # drops what a chatty login shell printed first
            first, _, text = rest.partition("\n")
            pid = int(first) if first.strip().isdigit() else None
        if timed_out:
            if on_timeout_kill and pid is not None:
                self._kill(client, pid)
            raise RemoteTimeoutError(f"{what or argv[0]} on {self.address} did not finish within {timeout:g} s"
                                     + ("; it was killed" if pid is not None else ""))
        return status, text, errors

    def _kill(self, client: Any, pid: int) -> None:
        # Under `timeout`, TERM makes it signal the worker and KILL it after the grace;
        # KILL would orphan the worker. Without `timeout`, the pid is the worker itself.
        signal = "-TERM" if self._has_timeout else "-KILL"
        with contextlib.suppress(TransportError):  # the remote `timeout` (when there is one) still ends it
            self._exec_on(client, ["kill", signal, str(pid)], 10)

    # -- files -------------------------------------------------------------------------------------------

    def _ensure_session(self) -> str:
        """The private remote directory with the bench package in it (created on first use)."""
        if self._session:
            return self._session
        from bench.worker import package_files

        status, out, err = self._exec(["sh", "-c", _SETUP], _IO_TIMEOUT_S)
        lines = out.splitlines()[-3:]
        if status != 0 or len(lines) < 3 or not lines[0].startswith("/"):
            raise TransportError(f"cannot create a temporary directory on {self.address}: "
                                 f"{(err.strip().splitlines() or ['no output'])[-1]}")
        session, self._home, self._has_timeout = lines[0], lines[1], lines[2] == "timeout"
        try:
            sftp = self._open_sftp()
            made = {session}
            for local, relative in package_files():
                remote = posixpath.join(session, relative)
                self._makedirs(sftp, posixpath.dirname(remote), made)
                self._put(sftp, local, remote)
        except TransportError:
            with contextlib.suppress(TransportError):
                self._exec(["rm", "-rf", "--", session], _IO_TIMEOUT_S)
            raise
        self._session = session
        return session

    def _open_sftp(self) -> Any:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except Exception as exc:  # noqa: BLE001 - paramiko raises SSHException, EOFError or OSError
                raise self._io_error(f"no SFTP on {self.address} (is its sftp subsystem enabled?)", exc) from None
            self._sftp.get_channel().settimeout(_IO_TIMEOUT_S)
        return self._sftp

    def _makedirs(self, sftp: Any, directory: str, made: set[str]) -> None:
        """Create ``directory`` and its parents up to one already in ``made`` (which holds the root)."""
        if directory in made or directory in ("/", ""):
            return
        self._makedirs(sftp, posixpath.dirname(directory), made)
        try:
            sftp.mkdir(directory, 0o700)
        except OSError as exc:
            raise self._io_error(f"cannot create {directory} on {self.address}", exc) from None
        made.add(directory)

    def _io_error(self, message: str, exc: BaseException) -> TransportError:
        """A failed SFTP call: the connection is gone (unreachable), or the device said no (full disk, ...)."""
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active():
            return HostUnreachableError(f"the connection to {self.address} was lost: {_one_line(exc)}")
        return TransportError(f"{message}: {_one_line(exc)}")

    def _put(self, sftp: Any, local: str, remote: str) -> None:
        try:
            sftp.put(local, remote)
        except TimeoutError:
            raise HostUnreachableError(f"copying {local} to {self.address} stalled for {_IO_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise self._io_error(f"cannot copy {local} to {self.address}:{remote}", exc) from None

    # -- the worker --------------------------------------------------------------------------------------

    def _remote_python(self) -> str:
        if self.python.startswith("~/") and self._home:
            return posixpath.join(self._home, self.python[2:])
        return self.python

    def _worker(self, args: list[str], timeout: float) -> tuple[int, str, str]:
        session = self._ensure_session()
        # The remote `timeout` fires first; the local deadline only matters when it is missing or stuck.
        prefix = ["timeout", "-k", str(_KILL_AFTER_S), str(math.ceil(timeout))] if self._has_timeout else []
        argv = ["sh", "-c", _WRAPPER, "edgenas-worker", session, *prefix, self._remote_python(),
                "-m", "bench.worker", *args]
        started = time.monotonic()
        try:
            status, out, err = self._exec(argv, timeout + _KILL_AFTER_S + 2 if prefix else timeout,
                                          on_timeout_kill=True, what="the bench worker")
        except RemoteTimeoutError:
            raise RemoteTimeoutError(f"the bench worker on {self.address} did not finish within {timeout:g} s; "
                                     f"it was killed") from None
        if self._has_timeout and (status == 124 or (status == 128 + 9 and time.monotonic() - started >= timeout)):
            raise RemoteTimeoutError(f"the bench worker on {self.address} did not finish within {timeout:g} s; "
                                     f"it was killed")
        if status == 97:
            raise TransportError(f"cannot enter {session} on {self.address}: {err.strip()[-300:]}")
        return (-1 if status is None or status < 0 else status), out, err

    def _run_job(self, job: dict[str, Any], timeout: float) -> tuple[int, str, str]:
        from bench.worker import job_files, localize

        session = self._ensure_session()
        sftp = self._open_sftp()
        self._jobs += 1
        job_dir = posixpath.join(session, f"job{self._jobs}")
        try:
            made = {session}
            self._makedirs(sftp, job_dir, made)
            # One sub-directory per local directory: basenames never clash, and an
            # OpenVINO .xml keeps its .bin beside it.
            folders: dict[str, str] = {}
            names: dict[str, str] = {}
            for path in job_files(job):
                if path in names:
                    continue
                local = os.path.abspath(path)
                parent = os.path.dirname(local)
                if parent not in folders:
                    folders[parent] = posixpath.join(job_dir, f"in{len(folders)}")
                    self._makedirs(sftp, folders[parent], made)
                names[path] = posixpath.join(folders[parent], os.path.basename(local))
                self._put(sftp, local, names[path])
            job_path = posixpath.join(job_dir, "job.json")
            try:
                with sftp.open(job_path, "w") as fh:
                    fh.write(json.dumps(localize(job, names)))
            except OSError as exc:
                raise self._io_error(f"cannot write {job_path} on {self.address}", exc) from None
            return self._worker([job_path], timeout)
        finally:
            with contextlib.suppress(TransportError):  # else close() removes the whole session directory
                self._exec(["rm", "-rf", "--", job_dir], _IO_TIMEOUT_S)


class _RejectUnknown:
    """paramiko's RejectPolicy, raising our one-line error with the command that fixes it."""

    def __init__(self, host: str, port: int, known: str) -> None:
        self.host, self.port, self.known = host, port, known

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        scan = f"ssh-keyscan -p {self.port} {shlex.quote(self.host)}" if self.port != 22 \
            else f"ssh-keyscan {shlex.quote(self.host)}"
        raise HostKeyError(
            f"the host key of {_bracket(self.host)}:{self.port} ({_fingerprint(key)}) is not in {self.known}: "
            f"check it and add it with `{scan} >> {shlex.quote(self.known)}`, or connect once with ssh")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _known_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
