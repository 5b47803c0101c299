"""A real mosquitto for the telemetry tests: 127.0.0.1, free ports, a password file, an ACL, optional TLS.

Users: ``pi-1`` and ``pi-2`` (devices: each may publish only under ``ferlite/<its own name>/``),
``fleet`` (may read ``ferlite/#``). Persistence is on, so a broker stopped with SIGTERM and
started again keeps the consumer's session, as a production broker would. ``scripts/setup_mosquitto.sh``
installs mosquitto; without it the tests skip, except under CI=true, where they fail.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

USERS = {"pi-1": "pi-1-secret", "pi-2": "pi-2-secret", "fleet": "fleet-secret"}
ACL = """\
# the consumer reads everything under the prefix
user fleet
topic read ferlite/#

# a device writes only under its own id (%u: the username it logged in with)
pattern write ferlite/%u/#
"""
SETUP_HINT = "scripts/setup_mosquitto.sh installs it (apt-get install -y mosquitto mosquitto-clients)"


def find_tool(name: str) -> str | None:
    """mosquitto lives in /usr/sbin, which a non-root PATH often lacks."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def require_tools() -> tuple[str, str]:
    mosquitto, passwd = find_tool("mosquitto"), find_tool("mosquitto_passwd")
    if mosquitto and passwd:
        return mosquitto, passwd
    msg = f"mosquitto is not installed: {SETUP_HINT}"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def require_paho() -> None:
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        msg = "paho-mqtt is not installed: pip install -r device/requirements-mqtt.txt"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost it signed (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {k: folder / n for k, n in (("ca", "ca.crt"), ("ca_key", "ca.key"), ("cert", "server.crt"),
                                          ("key", "server.key"), ("csr", "server.csr"), ("ext", "san.ext"))}
    files["ext"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ferlite test CA",
        "-keyout", str(files["ca_key"]), "-out", str(files["ca"]))
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(files["key"]), "-out", str(files["csr"]))
    ssl("x509", "-req", "-in", str(files["csr"]), "-CA", str(files["ca"]), "-CAkey", str(files["ca_key"]),
        "-CAcreateserial", "-days", "2", "-extfile", str(files["ext"]), "-out", str(files["cert"]))
    return files


class Mosquitto:
    def __init__(self, folder: Path, tls: dict[str, Path] | None = None):
        self.exe, passwd = require_tools()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.passwd = folder / "passwd"
        self.passwd.write_text("")
        self.passwd.chmod(0o600)
        for user, password in USERS.items():
            subprocess.run([passwd, "-b", str(self.passwd), user, password], check=True, capture_output=True, timeout=30)
        (folder / "acl").write_text(ACL)
        lines = [f"listener {self.port} 127.0.0.1"]
        if tls:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls['ca']}", f"certfile {tls['cert']}",
                      f"keyfile {tls['key']}"]
        lines += ["allow_anonymous false", f"password_file {self.passwd}", f"acl_file {folder / 'acl'}",
                  "persistence true", f"persistence_location {folder}/", "max_queued_messages 100000",
                  f"log_dest file {folder / 'mosquitto.log'}"]
        if os.geteuid() == 0:  # as root mosquitto would switch to user 'mosquitto', who cannot read tmp_path
            lines.append(f"user {getpass.getuser()}")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def url(self, tls: bool = False) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}/ferlite" if tls else f"mqtt://127.0.0.1:{self.port}/ferlite"

    def credentials(self, user: str, password: str | None = None) -> Path:
        """A credentials file for ``user`` (with its real password unless one is given)."""
        path = self.folder / f"{user}.cred"
        path.write_text(f"username={user}\npassword={password or USERS[user]}\n")
        path.chmod(0o600)
        return path

    def start(self) -> "Mosquitto":
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read()} {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start listening on {self.port}: {self.log()}")

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: mosquitto saves its sessions, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def broker(tmp_path):
    """A running mosquitto (password file + ACL), stopped after the test."""
    require_paho()
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> dict[str, Path]:
    require_tools()
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_broker(tmp_path, tls_files):
    """The same broker with a second, TLS listener (certificate for 127.0.0.1 from a throwaway CA)."""
    require_paho()
    b = Mosquitto(tmp_path / "broker", tls=tls_files).start()
    yield b
    b.stop()
