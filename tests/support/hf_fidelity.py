"""Fidelity check of the Hub stand-in (tests/support/hf_hub.rs) against the official client.

Run by `tests/hf_fidelity.rs` (ignored by default) with HF_ENDPOINT pointing at a running
stand-in, HF_TOKEN a write token, FIDELITY_READ_TOKEN a read-only token of the same user,
HF_HUB_DISABLE_XET=1 and HF_HOME in a temporary folder. It drives the stand-in only through
`huggingface_hub`'s public API (create_repo, upload_file, upload_folder, hf_hub_download,
list_repo_tree, get_paths_info, model_info, whoami, create_commit, delete_file) and checks
what comes back, including the errors the client raises for the stand-in's answers.
Prints the client version it ran with, then "FIDELITY OK".
"""

import hashlib
import os
import sys
import tempfile

import huggingface_hub
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "tester/fidelity"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(n: int, seed: int) -> bytes:
    # Binary (contains NUL bytes): stored through LFS by the Hub's rules.
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += x.to_bytes(8, "little")
    out[0] = 0
    return bytes(out[:n])


def expect(exc_type, fn, what, status=None):
    try:
        fn()
    except exc_type as e:  # noqa: PERF203
        code = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None and code != status:
            raise AssertionError(f"{what}: expected HTTP {status}, got {code}: {e}") from e
        print(f"  {what}: {type(e).__name__} ({code})")
        return
    raise AssertionError(f"{what}: no {exc_type.__name__} raised")


def main() -> int:
    assert os.environ.get("HF_HUB_DISABLE_XET") == "1", "run with HF_HUB_DISABLE_XET=1"
    print(f"huggingface_hub {huggingface_hub.__version__}")
    api = HfApi()
    work = tempfile.mkdtemp(prefix="hf-fidelity-")

    me = api.whoami()
    assert me["name"] == "tester", me
    print("  whoami:", me["name"], me["auth"]["accessToken"]["role"])

    url = api.create_repo(REPO, private=True)
    assert str(url).endswith(REPO), url
    api.create_repo(REPO, private=True, exist_ok=True)  # 409 is accepted with exist_ok
    info = api.model_info(REPO)
    assert info.private is True and info.sha, info
    first_sha = info.sha

    files = {
        "notes/readme.txt": b"plain text goes inline in the commit\n",
        "weights/small.bin": blob(3 * 1024 * 1024 + 7, 1),
        "weights/big.safetensors": blob(12 * 1024 * 1024 + 3, 2),
    }
    for path, data in files.items():
        local = os.path.join(work, path.replace("/", "_"))
        with open(local, "wb") as f:
            f.write(data)
        api.upload_file(path_or_fileobj=local, path_in_repo=path, repo_id=REPO, commit_message=f"add {path}")
    print("  upload_file: 3 commits (inline, LFS basic, LFS multipart)")

    ckpt = os.path.join(work, "checkpoint-100")
    os.makedirs(ckpt)
    folder = {
        "model.safetensors": blob(7 * 1024 * 1024, 3),
        "optimizer.pt": blob(2 * 1024 * 1024, 4),
        "scheduler.pt": blob(1100, 5),
        "rng_state.pth": blob(14500, 6),
        "trainer_state.json": b'{"global_step": 100, "log_history": []}',
    }
    for name, data in folder.items():
        with open(os.path.join(ckpt, name), "wb") as f:
            f.write(data)
        files[f"out/checkpoint-100/{name}"] = data
    before = api.model_info(REPO).sha
    api.upload_folder(folder_path=ckpt, path_in_repo="out/checkpoint-100", repo_id=REPO, commit_message="checkpoint-100")
    after = api.model_info(REPO).sha
    assert after != before
    print("  upload_folder: one commit for 5 files")

    # The same file again: the preupload oid tells the client nothing changed; no commit.
    local = os.path.join(work, "weights_small.bin")
    api.upload_file(path_or_fileobj=local, path_in_repo="weights/small.bin", repo_id=REPO)
    assert api.model_info(REPO).sha == after, "an unchanged file made a commit"

    # The tree (paged by the stand-in) lists every file with its LFS oid.
    listed = {e.path: e for e in api.list_repo_tree(REPO, recursive=True) if hasattr(e, "size")}
    for path, data in files.items():
        e = listed[path]
        assert e.size == len(data), (path, e.size, len(data))
        if path.endswith(".txt") or path.endswith(".json"):
            assert e.lfs is None, path
        else:
            assert e.lfs is not None and e.lfs.sha256 == sha256(data), (path, e.lfs)
    top = [e.path for e in api.list_repo_tree(REPO)]
    assert "weights" in top and "out" in top and ".gitattributes" in top, top
    print(f"  list_repo_tree: {len(listed)} files, LFS oids match")

    infos = {e.path: e for e in api.get_paths_info(REPO, ["weights/big.safetensors", "out/checkpoint-100", "missing"])}
    assert set(infos) == {"weights/big.safetensors", "out/checkpoint-100"}, infos
    assert infos["weights/big.safetensors"].lfs.sha256 == sha256(files["weights/big.safetensors"])
    print("  get_paths_info: file and folder, missing left out")

    cache = os.path.join(work, "cache")
    for path, data in files.items():
        got = hf_hub_download(REPO, path, cache_dir=cache)
        with open(got, "rb") as f:
            assert f.read() == data, path
    print(f"  hf_hub_download: {len(files)} files byte-identical")

    expect(RepositoryNotFoundError, lambda: api.model_info("tester/missing"), "missing repo")
    expect(
        RevisionNotFoundError,
        lambda: hf_hub_download(REPO, "weights/small.bin", revision="nope", cache_dir=cache),
        "missing revision",
    )
    expect(EntryNotFoundError, lambda: hf_hub_download(REPO, "nope.bin", cache_dir=cache), "missing file")
    expect(HfHubHTTPError, lambda: HfApi(token="hf_not_a_valid_token").whoami(), "invalid token", 401)
    reader = HfApi(token=os.environ["FIDELITY_READ_TOKEN"])
    expect(
        HfHubHTTPError,
        lambda: reader.upload_file(path_or_fileobj=b"x" * 10, path_in_repo="ro.txt", repo_id=REPO),
        "read-only token",
        403,
    )
    expect(
        HfHubHTTPError,
        lambda: api.create_commit(
            REPO,
            operations=[CommitOperationAdd("stale.txt", b"stale parent\n")],
            commit_message="stale",
            parent_commit=first_sha,
        ),
        "stale parent commit",
        412,
    )

    api.delete_file("notes/readme.txt", repo_id=REPO)
    left = {e.path for e in api.list_repo_tree(REPO, recursive=True)}
    assert "notes/readme.txt" not in left
    print("  delete_file: gone from the tree")
    print("FIDELITY OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
