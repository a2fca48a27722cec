#!/usr/bin/env python3
"""Uploads a file to a tus 1.0 endpoint with tuspy, as a Python app or backend would.

Used by tests/serve_tus.rs against `livemux serve`.

    python3 upload.py --endpoint http://127.0.0.1:8080/files/ --file rec.mp4 [--mode whole]
    python3 upload.py --endpoint URL --file rec.mp4 --mode chunked --chunk-size 65536
    python3 upload.py --endpoint URL --chunks tests/fixtures/browser/X.chunks --mode pieces

Modes:
  whole    Upload-Length at creation, the whole file in one PATCH (tuspy's default).
  chunked  Upload-Length at creation, PATCHes of --chunk-size bytes.
  pieces   Upload-Defer-Length: 1, one PATCH per piece (the files of a `.chunks` directory in
           name order, or --chunk-size slices of --file), the last one carrying Upload-Length,
           as a live recording uploads. tuspy 1.1 has no deferred length of its own: a small
           Uploader subclass adds the two headers; the PATCHes are still tuspy's.

Options: --token T (Authorization: Bearer T), --checksum (Upload-Checksum: sha1 on every
PATCH, tuspy's upload_checksum), --retries N (tuspy retries a failed PATCH after a HEAD),
--piece-delay-ms N (pause before each piece after the first), --metadata key=value.

On success prints one JSON line on stdout: {"url": ..., "bytes": N, "pieces": N}; on failure
a message on stderr and exit status 1.
"""

import argparse
import io
import json
import os
import sys
import time

from tusclient import client as tus_client
from tusclient.uploader import Uploader


class DeferredLengthUploader(Uploader):
    """A tuspy Uploader whose length is told only with the last PATCH (creation-defer-length)."""

    def __init__(self, *args, **kwargs):
        self.final_patch = False
        super().__init__(*args, **kwargs)
        # Kept here: get_file_size() seeks the shared stream, which must not happen while a
        # PATCH is being put together (its headers are asked for after the seek to its offset).
        self.total = self.get_file_size()

    def get_url_creation_headers(self):
        headers = super().get_url_creation_headers()
        headers.pop("upload-length", None)
        headers["Upload-Defer-Length"] = "1"
        return headers

    def get_headers(self):
        headers = super().get_headers()
        if self.final_patch:
            headers["Upload-Length"] = str(self.total)
        return headers


def read_pieces(args):
    if args.chunks:
        names = sorted(os.listdir(args.chunks))
        pieces = []
        for name in names:
            with open(os.path.join(args.chunks, name), "rb") as f:
                pieces.append(f.read())
        return pieces
    with open(args.file, "rb") as f:
        data = f.read()
    if args.mode != "pieces":
        return [data]
    size = args.chunk_size
    return [data[at : at + size] for at in range(0, len(data), size)] or [b""]


def main():
    p = argparse.ArgumentParser(description="tuspy upload to a tus endpoint")
    p.add_argument("--endpoint", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file")
    src.add_argument("--chunks")
    p.add_argument("--mode", choices=["whole", "chunked", "pieces"], default="whole")
    p.add_argument("--chunk-size", type=int, default=65536)
    p.add_argument("--token")
    p.add_argument("--checksum", action="store_true")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--piece-delay-ms", type=int, default=0)
    p.add_argument("--metadata", action="append", default=[])
    args = p.parse_args()
    if args.chunk_size <= 0:
        p.error("--chunk-size must be above 0")

    metadata = {}
    for kv in args.metadata:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            p.error("--metadata wants key=value")
        metadata[key] = value

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    client = tus_client.TusClient(args.endpoint, headers=headers)
    pieces = read_pieces(args)
    data = b"".join(pieces)
    stream = io.BytesIO(data)
    common = dict(
        file_stream=stream,
        metadata=metadata,
        retries=args.retries,
        retry_delay=1,
        upload_checksum=args.checksum,
    )

    if args.mode == "whole":
        uploader = client.uploader(**common)
        uploader.upload()
    elif args.mode == "chunked":
        uploader = client.uploader(chunk_size=args.chunk_size, **common)
        uploader.upload()
    else:
        uploader = DeferredLengthUploader(client=client, **common)
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
        end = 0
        for i, piece in enumerate(pieces):
            if i > 0 and args.piece_delay_ms > 0:
                time.sleep(args.piece_delay_ms / 1000)
            end += len(piece)
            uploader.final_patch = i == len(pieces) - 1
            # At least one PATCH per piece (the last one even when empty: it carries the
            # length); more if the server took fewer bytes than sent.
            while True:
                before = uploader.offset
                uploader.chunk_size = end - before
                uploader.upload_chunk()
                if uploader.offset >= end:
                    break
                if uploader.offset <= before:
                    raise RuntimeError(f"server offset stuck at {uploader.offset}")
        if uploader.offset != len(data):
            raise RuntimeError(f"server offset {uploader.offset}, expected {len(data)}")

    print(json.dumps({"url": uploader.url, "bytes": len(data), "pieces": len(pieces)}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is reported the same way
        body = getattr(e, "response_content", None)
        print(f"upload.py: {type(e).__name__}: {e} {body!r}", file=sys.stderr)
        sys.exit(1)
