"""Locating, fetching and validating the raw Amazon 2014 files.

The files are `reviews_<Category>_5.json.gz` (5-core reviews) and `meta_<Category>.json.gz`
(item metadata) of McAuley's 2014 Amazon product data. They are looked for in the raw
directory; if absent they are copied from a local source directory when one is given,
otherwise downloaded from the official URLs. Offline, the error says where to put them.
"""
from __future__ import annotations

import gzip
import logging
import shutil
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from lib.io import atomic_path

log = logging.getLogger(__name__)

BASE_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"


class RawDataError(RuntimeError):
    """A raw file that is missing, empty, truncated or not gzip."""


def raw_names(category: str) -> dict[str, str]:
    """File names of the two raw files of `category` (e.g. 'Beauty')."""
    return {"reviews": f"reviews_{category}_5.json.gz", "meta": f"meta_{category}.json.gz"}


def check_gzip(path: Path) -> None:
    """Raise RawDataError naming `path` unless it is a complete, non-empty gzip file."""
    if not path.is_file():
        raise RawDataError(f"missing raw file: {path}")
    if path.stat().st_size == 0:
        raise RawDataError(f"raw file is empty: {path}")
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            raise RawDataError(f"raw file is not gzip: {path}")
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except EOFError:
        raise RawDataError(f"raw file is truncated (incomplete gzip stream): {path}") from None
    except (OSError, zlib.error) as e:  # zlib.error: corrupt deflate data, not an OSError
        raise RawDataError(f"raw file is corrupt gzip ({e}): {path}") from None


def _download(url: str, dest: Path, timeout: float) -> None:
    """Stream `url` to `dest` with a progress bar; `dest` appears only when complete."""
    log.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest) as tmp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
        try:
            check_gzip(tmp)
        except RawDataError as e:
            raise RawDataError(
                f"downloaded file from {url} is not a valid gzip ({e}); nothing was written to {dest}") from None


def ensure_raw(raw_dir: Path, category: str, source_dir: str = "", timeout: float = 30.0) -> dict[str, Path]:
    """Make sure both raw files of `category` are in `raw_dir`; return their paths.

    Files already present are used as they are (never re-downloaded). Missing ones are
    copied from `source_dir` if given, else downloaded from the official URLs.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, name in raw_names(category).items():
        dest = raw_dir / name
        if not dest.exists():
            if source_dir:
                src = Path(source_dir) / name
                if not src.is_file():
                    raise RawDataError(f"missing raw file: {src} (parse.source_dir={source_dir!r})")
                log.info("copying %s -> %s", src, dest)
                with atomic_path(dest) as tmp:
                    shutil.copyfile(src, tmp)
            else:
                url = f"{BASE_URL}/{name}"
                try:
                    _download(url, dest, timeout)
                except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                    raise RawDataError(
                        f"could not download {url} ({e}). Offline? Put {name} into {raw_dir}/ "
                        f"by hand, or set parse.source_dir to a directory holding it "
                        f"(e.g. `dvc exp run -S parse.source_dir=../shared/data`)."
                    ) from None
        check_gzip(dest)
        paths[kind] = dest
    return paths
