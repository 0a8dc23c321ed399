"""Processes, namespaces and cleanup for the benchmark harness.

Everything the harness creates is registered here and removed on exit, on Ctrl-C and on
SIGTERM: processes by PID (SIGTERM, then SIGKILL), network namespaces by their exact name,
and the few files other programs leave outside our work directory (WireGuard UAPI sockets),
by exact path. Nothing is looked up by pattern, and nothing is touched in the root namespace
except these files.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

_procs = []  # Proc, in start order
_namespaces = []  # names, in creation order
_files = []  # exact paths to remove at the end
_verbose = False


def set_verbose(on):
    global _verbose
    _verbose = on


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def debug(msg):
    if _verbose:
        log(msg)


class Fail(Exception):
    """A measurement or set-up step failed; the message says what and where the logs are."""


def run(cmd, timeout=30, check=True, input=None, env=None):
    """Runs a command to completion (bounded by `timeout`); returns CompletedProcess."""
    debug("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           input=input, env=env)
    except subprocess.TimeoutExpired:
        raise Fail(f"timed out after {timeout}s: {' '.join(cmd)}")
    if check and p.returncode != 0:
        raise Fail(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return p


def ns_cmd(ns, cmd):
    return ["ip", "netns", "exec", ns] + list(cmd) if ns else list(cmd)


def ns_run(ns, cmd, timeout=30, check=True, input=None):
    return run(ns_cmd(ns, cmd), timeout=timeout, check=check, input=input)


def proc_cpu_seconds(pid):
    """utime + stime of a live process (all its threads), in seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid):
    """(VmRSS, VmHWM) in KiB from /proc/PID/status."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except OSError:
        return None, None
    return out.get("VmRSS"), out.get("VmHWM")


def system_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts[:8]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


class Proc:
    """A long-running process inside a namespace, logging to a file; stopped by PID."""

    def __init__(self, name, ns, cmd, logfile, env=None, stdout_pipe=False, cwd=None):
        self.name = name
        self.logfile = logfile
        full = ns_cmd(ns, cmd)
        debug(f"start {name}: {' '.join(full)}")
        self._log = open(logfile, "ab")
        kw = dict(stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
                  env=dict(os.environ, **(env or {})))
        if stdout_pipe:
            kw.update(stdout=subprocess.PIPE, stderr=self._log)
        else:
            kw.update(stdout=self._log, stderr=subprocess.STDOUT)
        self.p = subprocess.Popen(full, **kw)
        self.pid = self.p.pid  # `ip netns exec` execs the command: same PID
        _procs.append(self)

    def running(self):
        return self.p.poll() is None

    def cpu(self):
        return proc_cpu_seconds(self.pid)

    def log_text(self, tail=None):
        try:
            with open(self.logfile, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        if tail:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def wait_log(self, needle, timeout):
        """Waits (bounded) until `needle` is in the log; False if the process died or time ran out."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.log_text():
                return True
            if not self.running():
                return False
            time.sleep(0.05)
        return needle in self.log_text()

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                try:
                    self.p.wait(3)
                except subprocess.TimeoutExpired:
                    pass
            except ProcessLookupError:
                pass
        if self in _procs:
            _procs.remove(self)
        try:
            self._log.close()
        except OSError:
            pass


def add_namespace(name):
    run(["ip", "netns", "add", name])
    _namespaces.append(name)
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def del_namespace(name):
    if name in _namespaces:
        _namespaces.remove(name)
    run(["ip", "netns", "del", name], check=False)


def register_file(path):
    _files.append(path)


def remove_file(path):
    """Removes one registered file now (if it exists)."""
    if path in _files:
        _files.remove(path)
        try:
            os.unlink(path)
        except OSError:
            pass


def cleanup():
    """Stops every process we started (newest first) and removes our namespaces and files."""
    for p in reversed(list(_procs)):
        p.stop(timeout=3)
    for ns in reversed(list(_namespaces)):
        del_namespace(ns)
    for path in list(_files):
        try:
            os.unlink(path)
        except OSError:
            pass
        _files.remove(path)


def install_signal_handlers():
    def handler(signum, _frame):
        # Turn SIGTERM into the same path as Ctrl-C: unwinding runs the finally blocks.
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def find_tool(name):
    """A program on PATH or in a cargo bin directory (root's, or the sudo user's)."""
    found = shutil.which(name)
    if found:
        return found
    homes = [os.path.expanduser("~")]
    if os.environ.get("SUDO_USER"):
        homes.append(os.path.expanduser("~" + os.environ["SUDO_USER"]))
    for home in homes:
        cand = os.path.join(home, ".cargo", "bin", name)
        if os.access(cand, os.X_OK):
            return cand
    return None


def first_line(cmd, timeout=10):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (p.stdout or p.stderr or "").strip()
    return text.splitlines()[0].strip() if text else None


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


class Unsupported(Fail):
    """The system cannot run with these binaries (e.g. a transport not built yet): skipped."""
