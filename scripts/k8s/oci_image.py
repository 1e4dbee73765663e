"""Write a one-layer OCI image archive that `ctr images import` accepts (no registry needed).

    python oci_image.py OUT.tar NAME:TAG ENTRYPOINT FILE=PATH_IN_IMAGE...

Used for the pod sandbox ("pause") image of the local cluster: registry.k8s.io cannot be reached.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path


def blob(tar: tarfile.TarFile, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def layer_bytes(files: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for inside, src in files.items():
            info = layer.gettarinfo(str(src), arcname=inside.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755
            info.mtime = 0
            with open(src, "rb") as fh:
                layer.addfile(info, fh)
    return buf.getvalue()


def write_image(out: Path, ref: str, entrypoint: list[str], files: dict[str, Path]) -> None:
    layer = layer_bytes(files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        layer_desc = blob(tar, layer)
        config_desc = blob(tar, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
        }
        manifest_desc = blob(tar, json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc,
            "annotations": {"io.containerd.image.name": ref,
                            "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]},
        }]}
        for name, data in (("index.json", json.dumps(index).encode()),
                           ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    out, ref, entry, *pairs = sys.argv[1:]
    write_image(Path(out), ref, [entry], {i: Path(s) for s, i in (p.split("=", 1) for p in pairs)})
