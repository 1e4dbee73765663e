"""A real S3 server on loopback: SeaweedFS, built from its Go module by scripts/s3_server.sh."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
S3_ENV = "DMC_TEST_S3_ENDPOINT"  # exported by scripts/run_tests.sh
S3_KEY = "dmc-test"  # SeaweedFS accepts any credentials unless configured otherwise


@pytest.fixture(scope="session")
def s3_endpoint():
    """The S3 server `make test` started, else one started (and removed) here."""
    if os.environ.get(S3_ENV):
        yield os.environ[S3_ENV]
        return
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"dmc-s3-test-{os.getpid()}"
    env = {**os.environ, "DMC_S3_STATE_DIR": str(state)}
    script = ROOT / "scripts" / "s3_server.sh"
    proc = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "clean"], env=env, capture_output=True, timeout=60)


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A new, empty bucket (the server is shared by the whole session), removed afterwards: SeaweedFS
    gives every bucket volumes of its own, so leftover buckets would use up the server's volumes."""
    import s3fs  # the client the store itself uses

    name = f"dmc-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(key=S3_KEY, secret=S3_KEY, skip_instance_cache=True,
                           client_kwargs={"endpoint_url": s3_endpoint, "region_name": "us-east-1"})
    fs.mkdir(name)
    yield name
    try:
        fs.rm(name, recursive=True)
    except FileNotFoundError:
        pass
