"""A loopback stand-in for the Xet CAS (content-addressed storage) service the Hugging Face Hub
hands upload tokens for; hf_xet (huggingface_hub's upload path whenever it is installed) talks to it.

What ``hf_xet`` 1.8's upload uses is served, as xet-core's ``cas_client::RemoteClient`` calls it:

* ``GET /v1/chunks/{prefix}/{chunk_hash}`` (global dedup query): always 404, "not tracked by
  global deduplication", so every chunk is uploaded;
* ``POST /v1/xorb-grants/{prefix}/{hash}``: 404, the documented answer of a CAS without upload
  grants; the client then uploads the xorb directly (the grant flow's presigned-URL upload and
  ``/v1/xorb-commits`` are not modelled);
* ``POST /v1/xorbs/{prefix}/{hash}``: the serialized xorb (chunk headers + compressed chunk data;
  hf_xet sends no ``XETBLOB`` footer, one that is present must match the chunks and the path's
  hash). Every chunk is decompressed (compression schemes none, LZ4 frame and ByteGrouping4 +
  LZ4, decoded in pure Python) and must match its header's length; ``{"was_inserted": bool}``;
* ``POST /v2/shards`` (NDJSON progress frames ``validating`` / ``committing`` / ``result``, or a
  terminal ``error`` frame) and ``POST /v1/shards`` (``{"result": 0|1}``, exists / sync
  performed): the shard's file-info section is parsed, each file is rebuilt from the stored
  xorbs' chunk ranges, its sha256 (the shard's metadata extension) checked, and the bytes handed
  to ``blob_sink`` (the loopback Hub stores them in its content-addressed blob store, so a commit
  whose ``lfsFile`` carries that sha256 finds them and plain ``/resolve`` downloads serve them);
* ``POST /v1/telemetry``: accepted and dropped.

Every request must carry ``Authorization: Bearer <token>`` with a token issued by
:meth:`XetCasServer.issue_token` (the Hub's ``xet-{read,write}-token`` endpoints) that has not
expired; others get 401, a read token on an upload 403. Downloads through Xet
(``/v1/reconstructions``) are not served: the loopback Hub never sends ``X-Xet-Hash``, so clients
download over plain HTTP. Chunk hashes (keyed BLAKE3) are not recomputed (no BLAKE3 in the
standard library); the file's sha256 is, end to end.

The base URL handed out (:attr:`XetCasServer.endpoint`) carries a path prefix unique to the state
directory: hf_xet keeps a per-endpoint shard cache and dedups new uploads against it, so a
loopback port reused by a later server must not look like the same CAS.

Standard library only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackHandler, LoopbackServer, RecordedRequest

READ = "read"
WRITE = "write"

XORB_IDENT = b"XETBLOB"
XORB_IDENT_HASHES = b"XBLBHSH"
XORB_IDENT_BOUNDARIES = b"XBLBBND"
SHARD_HEADER_TAG = bytes(
    [72, 70, 82, 101, 112, 111, 77, 101, 116, 97, 68, 97, 116, 97, 0, 85, 105, 103, 69, 106, 123,
     129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)  # b"HFRepoMetaData\0" + magic bytes
_SHARD_HEADER_SIZE = 48  # tag, version u64, footer_size u64
_ENTRY = 48  # every file-info record (header, segment, verification, metadata ext) is 48 bytes
_FLAG_VERIFICATION = 1 << 31
_FLAG_METADATA_EXT = 1 << 30
_BOOKEND = b"\xff" * 32
MAX_CHUNK_SIZE = 128 * 1024

COMPRESSION_NONE = 0
COMPRESSION_LZ4 = 1
COMPRESSION_BG4_LZ4 = 2

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class XetFormatError(ValueError):
    """A xorb or shard that does not parse, or that does not match what it claims."""


# ---------------------------------------------------------------------- hashes


def hash_hex(raw: bytes) -> str:
    """xet-core's hex form of a 32-byte MerkleHash as stored on the wire (four little-endian u64
    words, each printed as 16 hex digits), the form URLs carry."""
    if len(raw) != 32:
        raise XetFormatError("a hash is 32 bytes")
    return "".join(f"{w:016x}" for w in struct.unpack("<4Q", raw))


def hash_raw(hex_: str) -> bytes:
    return struct.pack("<4Q", *(int(hex_[i : i + 16], 16) for i in range(0, 64, 16)))


# ---------------------------------------------------------------------- compression


def _lz4_length(nibble: int, src: bytes, i: int, what: str) -> tuple[int, int]:
    """An LZ4 length: the token's 4-bit value, extended by bytes while they are 255. (length, next index)."""
    if nibble != 15:
        return nibble, i
    while True:
        if i >= len(src):
            raise XetFormatError(f"LZ4: truncated {what}")
        b = src[i]
        i += 1
        nibble += b
        if b != 255:
            return nibble, i


def lz4_block_decompress(src: bytes | memoryview, out: bytearray) -> None:
    """Append the decoded LZ4 block ``src`` to ``out`` (which may already hold the previous blocks
    of a frame whose blocks are linked: matches may reach back into them)."""
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit, i = _lz4_length(token >> 4, src, i, "literal length")
        if i + lit > n:
            raise XetFormatError("LZ4: literals run past the block")
        out += src[i : i + lit]
        i += lit
        if i >= n:
            break  # the last sequence carries literals only
        if i + 2 > n:
            raise XetFormatError("LZ4: truncated match offset")
        off = src[i] | (src[i + 1] << 8)
        i += 2
        ml, i = _lz4_length(token & 15, src, i, "match length")
        ml += 4
        if off == 0 or off > len(out):
            raise XetFormatError("LZ4: match offset outside the decoded data")
        start = len(out) - off
        if off >= ml:
            out += out[start : start + ml]
        else:  # overlapping copy: the last `off` bytes repeat
            pattern = bytes(out[start:])
            reps, rem = divmod(ml, off)
            out += pattern * reps + pattern[:rem]


def lz4_frame_decompress(data: bytes | memoryview) -> bytes:
    """Decode LZ4 frame format (what lz4_flex's FrameEncoder writes); checksums are skipped."""
    data = memoryview(data)
    out = bytearray()
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise XetFormatError("LZ4: truncated frame magic")
        (magic,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4 + size
            continue
        if magic != 0x184D2204:
            raise XetFormatError(f"LZ4: bad frame magic {magic:#x}")
        flg = data[pos]
        if flg >> 6 != 1:
            raise XetFormatError("LZ4: unsupported frame version")
        block_checksum = (flg >> 4) & 1
        content_size = (flg >> 3) & 1
        content_checksum = (flg >> 2) & 1
        dict_id = flg & 1
        pos += 2 + (8 if content_size else 0) + (4 if dict_id else 0) + 1  # FLG, BD, [size], [dict], HC
        frame = bytearray()
        while True:
            if pos + 4 > len(data):
                raise XetFormatError("LZ4: truncated block size")
            (bsize,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if bsize == 0:
                break
            size = bsize & 0x7FFFFFFF
            if pos + size > len(data):
                raise XetFormatError("LZ4: truncated block")
            block = data[pos : pos + size]
            pos += size + (4 if block_checksum else 0)
            if bsize & 0x80000000:
                frame += block
            else:
                lz4_block_decompress(block, frame)
        pos += 4 if content_checksum else 0
        out += frame
    return bytes(out)


def bg4_regroup(g: bytes) -> bytes:
    """Undo ByteGrouping4: ``g`` holds bytes 0,4,8.. then 1,5,9.. then 2,6,.. then 3,7,.."""
    n = len(g)
    split, rem = divmod(n, 4)
    sizes = [split + (1 if rem > k else 0) for k in range(4)]
    out = bytearray(n)
    pos = 0
    for k, size in enumerate(sizes):
        out[k::4] = g[pos : pos + size]
        pos += size
    return bytes(out)


def decompress_chunk(scheme: int, payload: bytes | memoryview) -> bytes:
    if scheme == COMPRESSION_NONE:
        return bytes(payload)
    if scheme == COMPRESSION_LZ4:
        return lz4_frame_decompress(payload)
    if scheme == COMPRESSION_BG4_LZ4:
        return bg4_regroup(lz4_frame_decompress(payload))
    raise XetFormatError(f"unknown chunk compression scheme {scheme}")


# ---------------------------------------------------------------------- xorbs


@dataclass
class XorbInfo:
    xorb_hash: str
    chunk_lengths: list[int]  # uncompressed
    schemes: list[int]  # compression scheme per chunk


def parse_xorb(body: bytes, *, expect_hash: str | None = None) -> tuple[XorbInfo, list[bytes]]:
    """Parse a serialized xorb: chunks (8-byte header: version, 3-byte LE compressed length, scheme,
    3-byte LE uncompressed length; then the compressed bytes), optionally followed by the
    ``XETBLOB`` footer and its u32 length (hf_xet uploads xorbs without it). Returns what the
    footer says (if present) and the decompressed chunks."""
    view = memoryview(body)
    footer_at = len(body)
    if len(body) >= 4:
        (info_len,) = struct.unpack_from("<I", body, len(body) - 4)
        at = len(body) - 4 - info_len
        if info_len >= 8 and at >= 0 and bytes(view[at : at + 7]) == XORB_IDENT:
            footer_at = at
    chunks: list[bytes] = []
    schemes: list[int] = []
    boundaries: list[int] = []
    pos = 0
    while pos < footer_at:
        if pos + 8 > footer_at:
            raise XetFormatError("truncated chunk header")
        version, c0, c1, c2, scheme, u0, u1, u2 = view[pos : pos + 8]
        if version != 0:
            raise XetFormatError(f"chunk header version {version} at offset {pos}")
        clen = c0 | (c1 << 8) | (c2 << 16)
        ulen = u0 | (u1 << 8) | (u2 << 16)
        if ulen > MAX_CHUNK_SIZE or clen > 2 * MAX_CHUNK_SIZE:
            raise XetFormatError("chunk larger than the maximum chunk size")
        pos += 8
        if pos + clen > footer_at:
            raise XetFormatError("chunk data runs past the end of the xorb")
        data = decompress_chunk(scheme, view[pos : pos + clen])
        if len(data) != ulen:
            raise XetFormatError(f"chunk decompressed to {len(data)} bytes, header says {ulen}")
        pos += clen
        chunks.append(data)
        schemes.append(scheme)
        boundaries.append(pos)
    if not chunks:
        raise XetFormatError("empty xorb")
    xorb_hash = expect_hash or ""
    if footer_at < len(body):
        xorb_hash = _check_xorb_footer(body, footer_at, chunks, boundaries)
        if expect_hash is not None and xorb_hash != expect_hash:
            raise XetFormatError(f"xorb footer names {xorb_hash}, uploaded as {expect_hash}")
    return XorbInfo(xorb_hash, [len(c) for c in chunks], schemes), chunks


def _check_xorb_footer(body: bytes, f: int, chunks: list[bytes], boundaries: list[int]) -> str:
    """Footer V1: ident, version, xorb hash; "XBLBHSH", version, n, n chunk hashes; "XBLBBND",
    version, n, n chunk boundaries, n unpacked offsets; n, two section offsets, a 16-byte buffer.
    Checks it describes ``chunks``; returns the xorb hash it names."""
    f += 7
    if body[f] != 1:
        raise XetFormatError(f"xorb footer version {body[f]} (only 1 is read)")
    xorb_hash = hash_hex(body[f + 1 : f + 33])
    f += 33
    if body[f : f + 7] != XORB_IDENT_HASHES:
        raise XetFormatError("xorb hash section not found")
    (n,) = struct.unpack_from("<I", body, f + 8)
    f += 12 + 32 * n
    if body[f : f + 7] != XORB_IDENT_BOUNDARIES:
        raise XetFormatError("xorb boundary section not found")
    (n2,) = struct.unpack_from("<I", body, f + 8)
    f += 12
    declared = list(struct.unpack_from(f"<{n2}I", body, f))
    unpacked = list(struct.unpack_from(f"<{n2}I", body, f + 4 * n2))
    if n != len(chunks) or n2 != len(chunks) or declared != boundaries:
        raise XetFormatError("xorb footer does not describe the chunks it follows")
    if unpacked != list(itertools.accumulate(len(c) for c in chunks)):
        raise XetFormatError("xorb footer's unpacked offsets do not match the chunks")
    return xorb_hash


# ---------------------------------------------------------------------- shards


@dataclass
class FileSegment:
    xorb_hash: str
    unpacked_bytes: int
    chunk_start: int
    chunk_end: int  # exclusive


@dataclass
class ShardFile:
    file_hash: str
    segments: list[FileSegment]
    sha256: str | None  # from the metadata extension

    @property
    def size(self) -> int:
        return sum(s.unpacked_bytes for s in self.segments)


def parse_shard_files(body: bytes) -> list[ShardFile]:
    """The file-info section of a shard: per file a header (file hash, flags, entry count), its
    segments (xorb hash, flags, unpacked bytes, chunk range), optional verification entries and an
    optional metadata extension (sha256); a bookend (all-0xFF hash) ends the section."""
    if len(body) < _SHARD_HEADER_SIZE or body[:32] != SHARD_HEADER_TAG:
        raise XetFormatError("not a shard (wrong header tag)")
    version, _footer_size = struct.unpack_from("<QQ", body, 32)
    if version != 2:
        raise XetFormatError(f"shard header version {version}")
    pos = _SHARD_HEADER_SIZE
    files: list[ShardFile] = []
    while True:
        if pos + _ENTRY > len(body):
            raise XetFormatError("shard file-info section has no bookend")
        file_hash_raw = body[pos : pos + 32]
        flags, num = struct.unpack_from("<II", body, pos + 32)
        pos += _ENTRY
        if file_hash_raw == _BOOKEND:
            break
        segments = []
        for _ in range(num):
            if pos + _ENTRY > len(body):
                raise XetFormatError("truncated shard file segment")
            xflags, nbytes, start, end = struct.unpack_from("<IIII", body, pos + 32)
            segments.append(FileSegment(hash_hex(body[pos : pos + 32]), nbytes, start, end))
            pos += _ENTRY
        if flags & _FLAG_VERIFICATION:
            pos += _ENTRY * num
        sha256 = None
        if flags & _FLAG_METADATA_EXT:
            if pos + _ENTRY > len(body):
                raise XetFormatError("truncated shard metadata extension")
            # Stored like every MerkleHash (four LE u64 words); its hex form is the usual sha256 hex.
            sha256 = hash_hex(body[pos : pos + 32])
            pos += _ENTRY
        files.append(ShardFile(hash_hex(file_hash_raw), segments, sha256))
    return files


# ---------------------------------------------------------------------- server


@dataclass(frozen=True)
class CasToken:
    scope: str  # READ or WRITE
    repo: str
    expires: int


class XetCasServer(LoopbackServer):
    """Threaded loopback CAS. State (xorbs, shards) lives under ``root_dir``; rebuilt files go to
    ``blob_sink(data) -> Any`` (default: ``root_dir/files/{sha256}``)."""

    def __init__(
        self,
        root_dir: str | os.PathLike,
        *,
        blob_sink: Callable[[bytes], Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl_s: int = 3600,
    ) -> None:
        self.root = Path(root_dir)
        for sub in ("xorbs", "shards"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        id_file = self.root / "cas-id"
        if not id_file.exists():
            id_file.write_text(secrets.token_hex(6))
        self.cas_id = id_file.read_text().strip()
        self.prefix = f"/cas-{self.cas_id}"
        self.blob_sink = blob_sink or self._default_sink
        self.token_ttl_s = token_ttl_s
        self._bind(host, port)
        self._lock = threading.RLock()
        self._tokens: dict[str, CasToken] = {}
        self._requests: list[RecordedRequest] = []
        self._failure: dict | None = None
        self.files_stored: dict[str, int] = {}  # sha256 -> size of files rebuilt from shards

    @property
    def endpoint(self) -> str:
        """The ``casUrl`` the Hub hands out (base URL plus this state directory's prefix)."""
        return self.url + self.prefix

    def _default_sink(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / "files" / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _atomic_write(path, data)
        return sha

    # ------------------------------------------------------------------ tokens
    def issue_token(self, scope: str, repo: str = "") -> tuple[str, int]:
        """A new access token (``scope`` "read" or "write") and its expiry (unix seconds)."""
        if scope not in (READ, WRITE):
            raise ValueError(f"scope must be 'read' or 'write', got {scope!r}")
        token = "xet_" + secrets.token_urlsafe(24)
        exp = int(time.time()) + self.token_ttl_s
        with self._lock:
            self._tokens[token] = CasToken(scope, repo, exp)
        return token, exp

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _token_scope(self, header: str | None) -> str | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        with self._lock:
            tok = self._tokens.get(header[7:].strip())
        if tok is None or tok.expires <= time.time():
            return None
        return tok.scope

    # ------------------------------------------------------------------ counters / failures
    def count(self, method: str, path_prefix: str, status: int | None = None) -> int:
        """How many ``method`` requests to paths starting with ``path_prefix`` (e.g. "/v1/xorbs/")."""
        return sum(
            1 for r in self.requests
            if r.method == method and r.path.startswith(path_prefix) and (status is None or r.status == status)
        )

    # ------------------------------------------------------------------ storage
    def has_xorb(self, xorb_hash: str) -> bool:
        return (self.root / "xorbs" / xorb_hash).exists()

    @property
    def xorbs(self) -> list[str]:
        return sorted(p.name for p in (self.root / "xorbs").iterdir() if _HASH_RE.match(p.name))

    def _store_xorb(self, xorb_hash: str, body: bytes) -> bool:
        path = self.root / "xorbs" / xorb_hash
        if path.exists():
            return False
        _atomic_write(path, body)
        return True

    def _xorb_chunks(self, xorb_hash: str) -> list[bytes]:
        path = self.root / "xorbs" / xorb_hash
        if not path.exists():
            raise XetFormatError(f"shard references xorb {xorb_hash}, which was never uploaded")
        return parse_xorb(path.read_bytes(), expect_hash=xorb_hash)[1]

    def rebuild_files(self, shard: bytes) -> list[ShardFile]:
        """Rebuild every file a shard describes from the stored xorbs, check its sha256 and hand it to
        ``blob_sink``. Raises :class:`XetFormatError` if any file cannot be rebuilt or does not match."""
        files = parse_shard_files(shard)
        cache: dict[str, list[bytes]] = {}
        rebuilt: list[tuple[ShardFile, bytes]] = []
        for f in files:
            parts: list[bytes] = []
            for seg in f.segments:
                if seg.xorb_hash not in cache:
                    cache[seg.xorb_hash] = self._xorb_chunks(seg.xorb_hash)
                chunks = cache[seg.xorb_hash]
                if not 0 <= seg.chunk_start < seg.chunk_end <= len(chunks):
                    raise XetFormatError(
                        f"segment chunks [{seg.chunk_start}, {seg.chunk_end}) outside xorb {seg.xorb_hash} "
                        f"({len(chunks)} chunks)")
                data = b"".join(chunks[seg.chunk_start : seg.chunk_end])
                if len(data) != seg.unpacked_bytes:
                    raise XetFormatError(
                        f"segment of xorb {seg.xorb_hash} holds {len(data)} bytes, shard says {seg.unpacked_bytes}")
                parts.append(data)
            data = b"".join(parts)
            if f.sha256 is None:
                raise XetFormatError(f"file {f.file_hash} carries no sha256 metadata extension")
            actual = hashlib.sha256(data).hexdigest()
            if actual != f.sha256:
                raise XetFormatError(f"file {f.file_hash} rebuilds to sha256 {actual}, shard says {f.sha256}")
            rebuilt.append((f, data))
        for f, data in rebuilt:
            self.blob_sink(data)
            with self._lock:
                self.files_stored[f.sha256] = len(data)  # type: ignore[index]
        return files

    def _store_shard(self, shard: bytes) -> bool:
        path = self.root / "shards" / hashlib.sha256(shard).hexdigest()
        if path.exists():
            return False
        _atomic_write(path, shard)
        return True


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _CasError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


_CHUNKS_RE = re.compile(r"^/v1/chunks/([^/]+)/([0-9a-f]{64})$")
_XORB_RE = re.compile(r"^/v1/(xorbs|xorb-grants)/([^/]+)/([0-9a-f]{64})$")


class _Handler(LoopbackHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackXetCAS/1.0"

    @property
    def cas(self) -> XetCasServer:
        return self.server.owner  # type: ignore[attr-defined]

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", secrets.token_hex(8))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def _dispatch(self, method: str) -> None:
        self._status = 500
        path = urlsplit(self.path).path
        if path.startswith(self.cas.prefix + "/"):
            path = path[len(self.cas.prefix):]
        try:
            body = self._read_body()
            failure = self.cas._take_failure(path)
            if failure is not None:
                raise _CasError(failure["status"], "Simulated CAS failure")
            self._route(method, path, body)
        except _CasError as err:
            self._json(err.status, {"error": err.message})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: visible, never a hang
            self._json(500, {"error": f"Internal error in loopback CAS: {type(exc).__name__}: {exc}"})
        finally:
            self.cas._record(method, path, self._status)

    def _route(self, method: str, path: str, body: bytes) -> None:
        cas = self.cas
        scope = cas._token_scope(self.headers.get("Authorization"))
        if scope is None:
            raise _CasError(401, "missing, unknown or expired CAS access token")

        if path == "/v1/telemetry" and method == "POST":
            return self._json(200, {})  # the client's transfer telemetry: accepted and dropped

        m = _CHUNKS_RE.match(path)
        if m and method == "GET":
            raise _CasError(404, "chunk not tracked by global deduplication")

        m = _XORB_RE.match(path)
        if m and method == "POST":
            self._require_write(scope)
            kind, _prefix, xorb_hash = m.groups()
            if kind == "xorb-grants":
                # A CAS without upload grants answers 404; the client uploads to /v1/xorbs instead.
                raise _CasError(404, "xorb upload grants are not offered by the loopback CAS")
            try:
                parse_xorb(body, expect_hash=xorb_hash)
            except (XetFormatError, struct.error, IndexError) as exc:
                raise _CasError(400, f"invalid xorb: {exc}") from None
            with cas._lock:
                inserted = cas._store_xorb(xorb_hash, body)
            return self._json(200, {"was_inserted": inserted})

        if path in ("/v1/shards", "/v2/shards") and method == "POST":
            self._require_write(scope)
            v2 = path == "/v2/shards"
            try:
                files = cas.rebuild_files(body)
            except (XetFormatError, struct.error, IndexError) as exc:
                if v2:  # the stream has started: errors travel as a terminal frame
                    frames = [{"type": "validating", "verified": 0, "total": 1},
                              {"type": "error", "message": f"invalid shard: {exc}", "retryable": False}]
                    return self._ndjson(frames)
                raise _CasError(400, f"invalid shard: {exc}") from None
            with cas._lock:
                inserted = cas._store_shard(body)
            if v2:
                n = max(1, len(files))
                return self._ndjson([
                    {"type": "validating", "verified": 0, "total": n},
                    {"type": "validating", "verified": n, "total": n},
                    {"type": "committing", "stage": "uploading"},
                    {"type": "committing", "stage": "syncing"},
                    {"type": "result"},
                ])
            return self._json(200, {"result": 1 if inserted else 0})

        raise _CasError(404, f"Not found: {method} {path}")

    def _ndjson(self, frames: list[dict]) -> None:
        self._send(200, b"".join(json.dumps(f).encode() + b"\n" for f in frames), "application/x-ndjson")

    @staticmethod
    def _require_write(scope: str) -> None:
        if scope != WRITE:
            raise _CasError(403, "this CAS token is read-only")


XetCasServer.handler = _Handler

