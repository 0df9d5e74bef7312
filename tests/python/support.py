"""Shared pieces of the Python binding tests: the build tree, a real
nats-server and the local model backend, each started by the test and
stopped at its end."""

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("top_builddir") or os.environ.get("AIPLAT_BUILD_DIR") or SRC


def build_path(*parts):
    return os.path.join(BUILD, *parts)


def child_env(**extra):
    """The environment for a child process: without the sanitizer runtime
    check-python.sh preloads into Python (nats-server is a Go program; the
    C examples of an ASan build carry the runtime themselves)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


class NatsServer:
    """nats-server on a free loopback port with JetStream in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="aiplat-py-nats-")
        exe = os.environ.get("NATS_SERVER") or shutil.which("nats-server")
        if not exe or exe == "no":
            raise RuntimeError("nats-server not found (apt-get install nats-server)")
        with open(os.path.join(self.dir, "log"), "wb") as errlog:
            self.proc = subprocess.Popen(
                [exe, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", self.dir,
                 "--ports_file_dir", self.dir],
                stdout=subprocess.DEVNULL, stderr=errlog, env=child_env())
        try:
            ports = wait_for(lambda: glob.glob(os.path.join(self.dir, "*.ports")), 10,
                             "the nats-server ports file")
            with open(ports[0]) as f:
                self.url = json.load(f)["nats"][0]
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class ModelBackend:
    """tools/model-backend/aiplat-model-backend on a free port, no STT."""

    PATH = build_path("tools", "model-backend", "aiplat-model-backend")

    @classmethod
    def available(cls):
        return os.access(cls.PATH, os.X_OK)

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="aiplat-py-backend-")
        port_file = os.path.join(self.dir, "port")
        with open(os.path.join(self.dir, "log"), "wb") as errlog:
            self.proc = subprocess.Popen(
                [self.PATH, "--port", "0", "--port-file", port_file, "--no-stt"],
                stdout=subprocess.DEVNULL, stderr=errlog, env=child_env())
        try:
            wait_for(lambda: os.path.exists(port_file), 20, "the model backend port file")
            with open(port_file) as f:
                self.url = "http://127.0.0.1:%d" % int(f.read().strip())
            wait_for(self._ready, 30, "the model backend to load")
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
