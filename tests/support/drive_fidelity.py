#!/usr/bin/env python3
"""Fidelity check of the Drive + OAuth stand-in (tests/support/drive.rs) against Google's own
Python client: google-api-python-client with service-account credentials from google-auth,
the Drive v3 discovery document bundled with the client, a resumable MediaFileUpload.

Run by `cargo test --test drive -- --ignored fidelity`, which starts the stand-in, arms its
faults (a cut connection mid-chunk, a cut before 256 KiB so a status query answers 308
without Range, a 503 on a chunk, a 429 on a lookup) and runs:

    python3 tests/support/drive_fidelity.py ENDPOINT KEY_FILE FOLDER_ID MY_DRIVE_FOLDER_ID OUT_DIR

Needs: pip install google-api-python-client google-auth
Prints one line per check and the client versions; exits non-zero on the first failure.
"""

import hashlib
import io
import json
import os
import sys

from importlib.metadata import version

import httplib2
from google.oauth2 import service_account
import googleapiclient as googleapiclient_pkg
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError, ResumableUploadError
from googleapiclient.http import MediaFileUpload, MediaIoBaseDownload

KIB = 1024


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


def main():
    endpoint, key_file, folder, my_drive, out = sys.argv[1:6]
    print(
        "versions: google-api-python-client %s, google-auth %s, httplib2 %s, python %s"
        % (version("google-api-python-client"), version("google-auth"), version("httplib2"), sys.version.split()[0]),
        flush=True,
    )
    creds = service_account.Credentials.from_service_account_file(
        key_file, scopes=["https://www.googleapis.com/auth/drive"]
    )
    # The Drive v3 discovery document bundled with the client (no internet). The client takes
    # `api_endpoint` for API calls, but builds media URLs from the document's rootUrl and keeps
    # its https scheme, so the document's rootUrl points at the (plain http) stand-in too.
    doc_path = os.path.join(os.path.dirname(googleapiclient_pkg.__file__), "discovery_cache", "documents", "drive.v3.json")
    with open(doc_path) as fh:
        doc = json.load(fh)
    doc["rootUrl"] = endpoint + "/"
    doc["baseUrl"] = endpoint + "/drive/v3/"
    drive = build_from_document(
        doc,
        credentials=creds,
        client_options={"api_endpoint": endpoint + "/drive/v3/"},
    )

    # The folder, with supportsAllDrives (a Shared Drive item), and fields honoured.
    f = drive.files().get(fileId=folder, supportsAllDrives=True, fields="id,name,driveId").execute()
    check(f.get("name") == "rsm_project" and "driveId" in f and "mimeType" not in f, f"files.get with fields: {f}")
    try:
        drive.files().get(fileId=folder).execute()
        check(False, "a Shared Drive item without supportsAllDrives must be 404")
    except HttpError as e:
        check(e.resp.status == 404, f"without supportsAllDrives: {e.resp.status} {e.reason}")

    # A resumable upload with faults on (armed by the Rust test): chunks of 1 MiB.
    path = os.path.join(out, "upload.bin")
    data = bytes((i * 7919 + (i >> 13)) & 0xFF for i in range(5 * 1024 * KIB + 12345))
    with open(path, "wb") as fh:
        fh.write(data)
    media = MediaFileUpload(path, mimetype="application/octet-stream", chunksize=1024 * KIB, resumable=True)
    req = drive.files().create(
        body={"name": "upload.bin", "parents": [folder], "appProperties": {"opsconsole_sha256": "x"}},
        media_body=media,
        supportsAllDrives=True,
        fields="id,name,size,md5Checksum,appProperties",
    )
    resp = None
    errors = 0
    while resp is None:
        try:
            _, resp = req.next_chunk(num_retries=3)
        except (ConnectionError, OSError, httplib2.HttpLib2Error) as e:
            # A cut connection: next_chunk asks the session where it stands and goes on.
            errors += 1
            check(errors < 10, f"upload keeps failing: {e!r}")
    md5 = hashlib.md5(data).hexdigest()
    check(resp.get("md5Checksum") == md5, f"resumable upload md5Checksum {resp.get('md5Checksum')} == {md5}")
    check(resp.get("size") == str(len(data)), f"size {resp.get('size')}")
    check(set(resp) == {"id", "name", "size", "md5Checksum", "appProperties"}, f"final resource limited to fields: {sorted(resp)}")
    check(errors >= 1, f"the client met {errors} broken connection(s) and resumed")
    file_id = resp["id"]

    # A new revision through PATCH on the upload endpoint.
    data2 = data[::-1][: 300 * KIB]
    path2 = os.path.join(out, "upload2.bin")
    with open(path2, "wb") as fh:
        fh.write(data2)
    media2 = MediaFileUpload(path2, chunksize=256 * KIB, resumable=True)
    r2 = drive.files().update(fileId=file_id, media_body=media2, supportsAllDrives=True, fields="id,md5Checksum,size")
    resp2 = None
    while resp2 is None:
        _, resp2 = r2.next_chunk(num_retries=3)
    check(resp2["id"] == file_id and resp2["md5Checksum"] == hashlib.md5(data2).hexdigest(), "update makes a new revision")

    # A few more files, then a paged listing (2 a page) through a 429 with Retry-After.
    for i in range(3):
        p = os.path.join(out, f"small{i}.txt")
        with open(p, "w") as fh:
            fh.write(f"small {i}\n")
        m = MediaFileUpload(p, mimetype="text/plain", resumable=True)
        drive.files().create(
            body={"name": f"it's \\ small {i}.txt", "parents": [folder]}, media_body=m, supportsAllDrives=True, fields="id"
        ).execute()
    names = []
    lreq = drive.files().list(
        q=f"'{folder}' in parents and trashed = false and mimeType != 'application/vnd.google-apps.folder'",
        supportsAllDrives=True,
        includeItemsFromAllDrives=True,
        pageSize=2,
        fields="nextPageToken,files(id,name,size)",
    )
    pages = 0
    while lreq is not None:
        page = lreq.execute(num_retries=3)
        pages += 1
        names += [f["name"] for f in page.get("files", [])]
        lreq = drive.files().list_next(lreq, page)
    check(pages >= 2 and len(names) == 4, f"paged listing: {pages} pages, {names}")
    one = drive.files().list(
        q="name = 'it\\'s \\\\ small 1.txt' and '%s' in parents and trashed = false" % folder,
        supportsAllDrives=True,
        includeItemsFromAllDrives=True,
        fields="files(id,name)",
    ).execute()
    check([f["name"] for f in one["files"]] == ["it's \\ small 1.txt"], f"escaped name lookup: {one}")

    # A ranged download in 256 KiB pieces.
    buf = io.BytesIO()
    dl = MediaIoBaseDownload(buf, drive.files().get_media(fileId=file_id, supportsAllDrives=True), chunksize=256 * KIB)
    done = False
    while not done:
        _, done = dl.next_chunk(num_retries=3)
    check(buf.getvalue() == data2, f"download in ranges: {len(buf.getvalue())} bytes")

    # A service account storing into a My Drive folder: 403 storageQuotaExceeded.
    m = MediaFileUpload(path2, resumable=True)
    try:
        q = drive.files().create(body={"name": "x.bin", "parents": [my_drive]}, media_body=m, supportsAllDrives=True)
        q.next_chunk()
        check(False, "My Drive upload must fail")
    except (HttpError, ResumableUploadError) as e:
        body = json.loads(e.content.decode())
        reason = body["error"]["errors"][0]["reason"]
        check(e.resp.status == 403 and reason == "storageQuotaExceeded", f"My Drive: {e.resp.status} {reason}")
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
