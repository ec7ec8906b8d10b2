"""A PostgreSQL cluster of the drill's own, to stop and start at will.

The machine's PostgreSQL is shared (other test runs use it), so the restart drill never
touches it: ``initdb`` makes a cluster in the drill's temporary directory, ``pg_ctl``
runs it on a free loopback port (its socket in that directory too), and it is stopped
and deleted afterwards. PostgreSQL refuses to run as root, so when the drill runs as root
the cluster's directory belongs to the ``postgres`` user and the commands run as that user
(``runuser``). ``HANDRAIL_PG_BIN`` names the directory holding ``initdb`` and ``pg_ctl``
(default: the newest ``/usr/lib/postgresql/*/bin``, else whatever ``PATH`` finds).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
from pathlib import Path

import asyncpg
from tests.server._live import LOOPBACK, free_port

USER = "postgres"


def _bin(name: str) -> str:
    configured = os.environ.get("HANDRAIL_PG_BIN")
    if configured:
        return str(Path(configured) / name)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    for found in versions:
        if (found / name).exists():
            return str(found / name)
    found_on_path = shutil.which(name)
    if found_on_path is None:
        raise FileNotFoundError(f"no {name}: install PostgreSQL or set HANDRAIL_PG_BIN")
    return found_on_path


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` in ``root`` (which it creates), on a free port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@{LOOPBACK}:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://{USER}@{LOOPBACK}:{self.port}/{name}"

    async def _run(self, *args: str, check: bool = True) -> str:
        command = [*args]
        if self.as_postgres:
            command = ["runuser", "-u", USER, "--", *command]
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if check and proc.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {text}\n{log}")
        return text

    async def init(self) -> None:
        self.root.mkdir(parents=True)
        if self.as_postgres:
            user = pwd.getpwnam(USER)
            parent = self.root.parent  # a temporary directory: only its owner may enter
            parent.chmod(parent.stat().st_mode | 0o711)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        await self._run(
            _bin("initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK}"
        await self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        await self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.database_url(name)

    async def close(self) -> None:
        """Stop the cluster if it runs (immediately) and delete it."""
        if (self.data / "postmaster.pid").exists():
            await self._run(
                _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False
            )
        shutil.rmtree(self.root, ignore_errors=True)
