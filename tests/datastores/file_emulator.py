"""EMULATOR — a small protocol-level emulator of the Azure Files REST API, for tests only.

Azurite has no File service and no public Azure Files emulator exists, so the datastore tests
run the official azure-storage-file-share SDK over real HTTP against this server. It implements
only the subset the SDK uses for our datastore — create/get share, create/list/delete
directories, create file, Put Range, Get File (ranges), Get File Properties, Set File
Properties (size and last-write time, which rclone's azurefiles backend sets), Rename File, Delete
File — stores files as plain files under --root, and checks authentication the way the service
does: Shared Key signatures, and service SAS tokens (signature, start/expiry, permissions,
share scope). It is not Azure Files: no leases, SMB properties, snapshots or quotas.

    python tests/datastores/file_emulator.py --port 10004 --root DIR [--account A --key K]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import shutil
import sys
import time
import uuid
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SIGNED_HEADERS = ("content-encoding", "content-language", "content-length", "content-md5",
                  "content-type", "date", "if-modified-since", "if-match", "if-none-match",
                  "if-unmodified-since", "range")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _sign(key: str, text: str) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(key), text.encode("utf-8"),
                                     hashlib.sha256).digest()).decode()


def _when(text: str) -> float:
    return datetime.strptime(text.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=timezone.utc).timestamp()


def _iso7(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Emulator

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet unless asked
        if self.server.verbose:
            sys.stderr.write("emulator: " + fmt % args + "\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        self.query = {k.lower(): v for k, v in parse_qsl(raw_query, keep_blank_values=True)}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parts = unquote(raw_path).lstrip("/").split("/")
            if parts[0] != self.server.account:
                raise Refused(400, "InvalidUri", "the path must start with the account name")
            self.share = parts[1] if len(parts) > 1 else ""
            self.rel = "/".join(p for p in parts[2:] if p)
            self._authorize(method, raw_path)
            self._route(method, body)
        except Refused as exc:
            self._error(exc.status, exc.code, exc.message, method)
        except Exception as exc:  # noqa: BLE001 — a bug in the emulator: say so, do not hang the client
            self._error(500, "InternalError", f"emulator: {type(exc).__name__}: {exc}", method)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              method: str = "GET", length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-version", self.headers.get("x-ms-version", "2025-01-05"))
        self.send_header("Date", formatdate(usegmt=True))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, method: str) -> None:
        xml = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
               f"<Message>{escape(message)}\nRequestId:{uuid.uuid4()}\nTime:{_iso7(time.time())}"
               f"</Message></Error>").encode()
        self._send(status, xml, {"x-ms-error-code": code, "Content-Type": "application/xml"}, method)

    # -- authentication ----------------------------------------------------------------------
    def _authorize(self, method: str, raw_path: str) -> None:
        if "sig" in self.query:
            self._check_sas(method)
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("SharedKey "):
            raise Refused(403, "AuthenticationFailed", "no credential in the request")
        account, _, signature = auth[len("SharedKey "):].partition(":")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("content-length") == "0":
            headers.pop("content-length")
        text = method + "\n" + "".join(headers.get(h, "") + "\n" for h in SIGNED_HEADERS)
        text += "".join(f"{k}:{headers[k]}\n" for k in sorted(h for h in headers if h.startswith("x-ms-")))
        text += f"/{account}{raw_path}"
        text += "".join(f"\n{k}:{v}" for k, v in sorted(self.query.items()))
        if account != self.server.account or not hmac.compare_digest(_sign(self.server.key, text), signature):
            raise Refused(403, "AuthenticationFailed", "Server failed to authenticate the request. "
                          "The MAC signature found in the HTTP request is not the same as any computed signature.")

    def _check_sas(self, method: str) -> None:
        q = self.query
        resource = q.get("sr", "")
        if resource == "s":
            canonical = f"/file/{self.server.account}/{self.share}"
        elif resource == "f":
            canonical = f"/file/{self.server.account}/{self.share}/{self.rel}"
        else:
            raise Refused(403, "AuthenticationFailed", "only share (sr=s) and file (sr=f) SAS are emulated")
        fields = [q.get("sp", ""), q.get("st", ""), q.get("se", ""), canonical, q.get("si", ""),
                  q.get("sip", ""), q.get("spr", ""), q.get("sv", ""), q.get("rscc", ""),
                  q.get("rscd", ""), q.get("rsce", ""), q.get("rscl", ""), q.get("rsct", "")]
        if not hmac.compare_digest(_sign(self.server.key, "\n".join(fields)), q.get("sig", "")):
            raise Refused(403, "AuthenticationFailed", "Signature did not match.")
        now = time.time()
        if not q.get("se") or now > _when(q["se"]):
            raise Refused(403, "AuthenticationFailed", "Signed expiry time has to be after current time.")
        if q.get("st") and now < _when(q["st"]):
            raise Refused(403, "AuthenticationFailed", "Signed start time is in the future.")
        need = self._permission(method)
        if need and not any(c in q.get("sp", "") for c in need):
            raise Refused(403, "AuthorizationPermissionMismatch",
                          "This request is not authorized to perform this operation using this permission.")
        if method == "PUT" and q.get("comp") == "rename" and "d" not in q.get("sp", ""):
            raise Refused(403, "AuthorizationPermissionMismatch", "rename needs write and delete permission.")

    def _permission(self, method: str) -> str:
        """Letters of which one must be in sp for this request."""
        comp, restype = self.query.get("comp"), self.query.get("restype")
        if method in ("GET", "HEAD"):
            return "l" if comp == "list" else ("rl" if restype else "r")
        if method == "DELETE":
            return "d"
        if comp in ("range", "rename", "properties"):
            return "w"
        return "cw"

    # -- the File service --------------------------------------------------------------------
    def _route(self, method: str, body: bytes) -> None:
        restype, comp = self.query.get("restype"), self.query.get("comp")
        share_dir = os.path.join(self.server.root, self.share)
        if restype == "share":
            return self._share(method, share_dir)
        if not self.share or not os.path.isdir(share_dir):
            raise Refused(404, "ShareNotFound", "The specified share does not exist.")
        path = os.path.join(share_dir, *self.rel.split("/")) if self.rel else share_dir
        if restype == "directory":
            return self._directory(method, comp, path)
        if method == "PUT" and comp == "range":
            return self._put_range(path, body)
        if method == "PUT" and comp == "rename":
            return self._rename(path, share_dir)
        if method == "PUT" and comp == "properties":
            return self._set_properties(path)
        if method == "PUT" and comp is None and self.headers.get("x-ms-type", "").lower() == "file":
            return self._create_file(path)
        if method in ("GET", "HEAD") and comp is None:
            return self._get_file(method, path)
        if method == "DELETE" and comp is None:
            if not os.path.isfile(path):
                raise Refused(404, "ResourceNotFound", "The specified resource does not exist.")
            os.unlink(path)
            return self._send(202)
        raise Refused(400, "UnsupportedOperation", f"emulator: {method} comp={comp} is not emulated")

    def _props(self, path: str) -> dict[str, str]:
        st = os.stat(path)
        return {"ETag": f'"0x{st.st_mtime_ns:X}"', "Last-Modified": formatdate(st.st_mtime, usegmt=True),
                "x-ms-file-attributes": "Directory" if os.path.isdir(path) else "Archive",
                "x-ms-file-creation-time": _iso7(st.st_ctime), "x-ms-file-last-write-time": _iso7(st.st_mtime),
                "x-ms-file-change-time": _iso7(st.st_ctime), "x-ms-file-permission-key": "0",
                "x-ms-file-id": str(st.st_ino), "x-ms-file-parent-id": "0",
                "x-ms-request-server-encrypted": "false"}

    def _share(self, method: str, share_dir: str) -> None:
        if method == "PUT" and self.query.get("comp") is None:
            if os.path.isdir(share_dir):
                raise Refused(409, "ShareAlreadyExists", "The specified share already exists.")
            os.makedirs(share_dir)
            return self._send(201, headers=self._props(share_dir))
        if not os.path.isdir(share_dir):
            raise Refused(404, "ShareNotFound", "The specified share does not exist.")
        if method == "DELETE":
            shutil.rmtree(share_dir)
            return self._send(202)
        headers = self._props(share_dir)
        headers["x-ms-share-quota"] = "5120"
        return self._send(200, headers=headers, method=method)

    def _directory(self, method: str, comp: str | None, path: str) -> None:
        if method == "PUT" and comp is None:
            if not os.path.isdir(os.path.dirname(path)):
                raise Refused(404, "ParentNotFound", "The specified parent path does not exist.")
            if os.path.exists(path):
                raise Refused(409, "ResourceAlreadyExists", "The specified resource already exists.")
            os.mkdir(path)
            return self._send(201, headers=self._props(path))
        if not os.path.isdir(path):
            raise Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        if method == "GET" and comp == "list":
            return self._list(path)
        if method == "DELETE":
            if os.listdir(path):
                raise Refused(409, "DirectoryNotEmpty", "The specified directory is not empty.")
            os.rmdir(path)
            return self._send(202)
        return self._send(200, headers=self._props(path), method=method)

    def _list(self, path: str) -> None:
        prefix = self.query.get("prefix", "")
        entries = []
        with os.scandir(path) as it:
            for e in sorted(it, key=lambda e: e.name):
                if not e.name.startswith(prefix):
                    continue
                if e.is_dir():
                    entries.append(f"<Directory><Name>{escape(e.name)}</Name><Properties /></Directory>")
                else:
                    size = e.stat().st_size
                    entries.append(f"<File><Name>{escape(e.name)}</Name><Properties>"
                                   f"<Content-Length>{size}</Content-Length></Properties></File>")
        xml = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults '
               f'ServiceEndpoint="http://{self.headers.get("Host")}/{self.server.account}/" '
               f'ShareName="{escape(self.share)}" DirectoryPath="{escape(self.rel)}">'
               f"<Prefix>{escape(prefix)}</Prefix><Entries>{''.join(entries)}</Entries>"
               f"<NextMarker /></EnumerationResults>").encode()
        self._send(200, xml, {"Content-Type": "application/xml"})

    def _create_file(self, path: str) -> None:
        if not os.path.isdir(os.path.dirname(path)):
            raise Refused(404, "ParentNotFound", "The specified parent path does not exist.")
        if os.path.isdir(path):
            raise Refused(409, "ResourceAlreadyExists", "A directory with this name exists.")
        size = int(self.headers.get("x-ms-content-length", "0"))
        with open(path, "wb") as fh:
            fh.truncate(size)
        self._send(201, headers=self._props(path))

    def _range(self, size: int) -> tuple[int, int] | None:
        text = self.headers.get("x-ms-range") or self.headers.get("Range")
        if not text:
            return None
        start, _, end = text.split("=", 1)[1].partition("-")
        return int(start), min(int(end) if end else size - 1, size - 1)

    def _put_range(self, path: str, body: bytes) -> None:
        if not os.path.isfile(path):
            raise Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        size = os.path.getsize(path)
        rng = self._range(size)
        if rng is None:
            raise Refused(400, "MissingRequiredHeader", "x-ms-range is required")
        start, end = rng
        if end >= size or start > end:
            raise Refused(416, "InvalidRange", "The range specified is invalid for the current size.")
        with open(path, "r+b") as fh:
            fh.seek(start)
            if self.headers.get("x-ms-write", "update").lower() == "clear":
                fh.write(b"\0" * (end - start + 1))
            else:
                if len(body) != end - start + 1:
                    raise Refused(400, "InvalidHeaderValue", "the body length does not match the range")
                fh.write(body)
        headers = self._props(path)
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        self._send(201, headers=headers)

    def _rename(self, path: str, share_dir: str) -> None:
        source_url = self.headers.get("x-ms-file-rename-source", "")
        src_parts = unquote(urlsplit(source_url).path).lstrip("/").split("/")
        if len(src_parts) < 3 or src_parts[0] != self.server.account or src_parts[1] != self.share:
            raise Refused(400, "InvalidHeaderValue", "the rename source must be a file of the same share")
        source = os.path.join(share_dir, *src_parts[2:])
        if not os.path.isfile(source):
            raise Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        if not os.path.isdir(os.path.dirname(path)):
            raise Refused(404, "ParentNotFound", "The specified parent path does not exist.")
        replace = self.headers.get("x-ms-file-rename-replace-if-exists", "false").lower() == "true"
        if os.path.exists(path) and not replace:
            raise Refused(409, "ResourceAlreadyExists", "The specified resource already exists.")
        os.replace(source, path)
        self._send(200, headers=self._props(path))

    def _set_properties(self, path: str) -> None:
        """Set File Properties: the size (x-ms-content-length) and last-write time; the rest is
        accepted and not kept (rclone's azurefiles backend sets them after each upload)."""
        if not os.path.isfile(path):
            raise Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        if self.headers.get("x-ms-content-length") is not None:
            with open(path, "r+b") as fh:
                fh.truncate(int(self.headers["x-ms-content-length"]))
        written = self.headers.get("x-ms-file-last-write-time", "")
        if written and written.lower() not in ("now", "preserve"):
            when = _when(written)
            os.utime(path, (when, when))
        self._send(200, headers=self._props(path))

    def _get_file(self, method: str, path: str) -> None:
        if not os.path.isfile(path):
            raise Refused(404, "ResourceNotFound", "The specified resource does not exist.")
        size = os.path.getsize(path)
        headers = self._props(path)
        headers.update({"x-ms-type": "File", "Content-Type": "application/octet-stream",
                        "Accept-Ranges": "bytes"})
        rng = self._range(size) if method == "GET" else None
        if rng is None:
            with open(path, "rb") as fh:
                data = fh.read() if method == "GET" else b""
            return self._send(200, data, headers, method, length=size)
        start, end = rng
        if start >= size:
            raise Refused(416, "InvalidRange", "The range specified is invalid for the current size.")
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start + 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(206, data, headers, method)


class Emulator(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, root: str, account: str = ACCOUNT, key: str = KEY,
                 host: str = "127.0.0.1", verbose: bool = False):
        super().__init__((host, port), Handler)
        self.root, self.account, self.key, self.verbose = root, account, key, verbose


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Azure Files REST emulator (tests only)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--account", default=ACCOUNT)
    parser.add_argument("--key", default=KEY)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    server = Emulator(args.port, args.root, args.account, args.key, verbose=args.verbose)
    print(f"file emulator listening on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
