"""A private PostgreSQL server for the store tests: initdb in a temp folder, a free port,
a socket folder of its own; stopped and removed after. Debian's postgresql binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from tests.helpers.ray_head import free_port


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


class PrivatePostgres:
    def __init__(self):
        self.bin = pg_bin()
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="cifar-sweeps-pg-")
        self.data = os.path.join(self.root, "data")
        self.user = None

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        # PostgreSQL refuses to run as root: run its tools as the postgres system user then.
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", self.user, "--", *cmd)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    def start(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "sweeps", "--auth=trust", "-E", "UTF8")
        self._run(
            f"{self.bin}/pg_ctl",
            "-D",
            self.data,
            "-l",
            os.path.join(self.root, "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200",
            "start",
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "sweeps", "sweeps")
                return self
            except subprocess.CalledProcessError:
                time.sleep(0.5)
        raise RuntimeError("PostgreSQL did not come up")

    def url(self, db: str = "sweeps") -> str:
        return f"postgresql+psycopg://sweeps@127.0.0.1:{self.port}/{db}"

    def new_database(self, name: str) -> str:
        self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "sweeps", name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
