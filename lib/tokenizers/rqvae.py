"""RQ-VAE Semantic-ID tokenizer of TIGER (Rajput et al. 2023, "Recommender Systems with Generative Retrieval").

An MLP autoencoder whose latent z is quantised by `levels` residual codebooks: level l picks the
code nearest to what levels < l left unexplained, so an item's codes go from coarse to fine. The
quantiser is ours, a few lines; what keeps its codebooks alive is built in, as in lucidrains'
vector-quantize-pytorch: k-means initialisation from data (TIGER §3.1), reset of dead codes to
current residuals, and a choice of gradient estimator through the code choice: straight-through
(van den Oord et al. 2017, VQ-VAE) or the rotation trick (Fifty et al. 2024).

Optional diversity term (`diversity_weight` > 0), after the code-assignment-diversity goal of LETTER
(Wang et al. 2024, "Learnable Item Tokenization for Generative Recommendation"): see `usage_deficit`.

Input: content embeddings (N+1, D), row 0 = padding. Output: raw codes (N, levels) of items 1..N;
lib/tokenizers/codes.py makes them unique Semantic IDs. `RQVAEConfig` is the whole `rqvae` params
section, whose `method` also picks the network-free tokenizers (rqkmeans.py, simple.py, pq.py).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from lib.tokenizers.kmeans import kmeans, nearest, resolve_device

log = logging.getLogger(__name__)

EVAL_BATCH = 8192  # items per no-grad forward pass when encoding


@dataclass(frozen=True)
class RQVAEConfig:
    """The `rqvae` stage's params. rqkmeans reads levels, codebook_size, fit_items, seed, device and threads;
    random and lsh read levels, codebook_size and seed; pq and opq read levels, codebook_size, fit_items,
    seed, threads, pq_iters and pca_dim (opq also opq_iters); rqvae reads everything but pq_iters and opq_iters."""
    # tokenizer: RQ-VAE | residual k-means | ablations | (optimised) product quantisation (pq.py; RPG: opq)
    method: Literal["rqvae", "rqkmeans", "random", "lsh", "pq", "opq"] = "rqvae"
    latent_dim: int = 32  # width of the quantised latent z (TIGER: 32)
    hidden: tuple[int, ...] = (512, 256, 128)  # encoder MLP widths (ReLU); the decoder mirrors them
    levels: int = 3  # residual codebooks = semantic code levels (TIGER: 3)
    codebook_size: int = 256  # codes per level (TIGER: 256)
    beta: float = 0.25  # commitment weight (VQ-VAE, TIGER)
    estimator: Literal["ste", "rotation"] = "ste"  # gradient through the code choice: straight-through | rotation trick
    kmeans_init: bool = True  # initialise level l's codebook by k-means on the fit items' level-l residuals (TIGER)
    warmup_epochs: int = 10  # epochs of plain autoencoder before k-means init and quantisation (see `train`)
    dead_code_patience: int = 2  # re-seed a code no fit item used for this many epochs in a row; 0 = off
    lr: float = 1e-3  # AdamW
    weight_decay: float = 0.0  # AdamW (decoupled; also shrinks the codebooks when > 0)
    batch_size: int = 1024  # items per step
    epochs: int = 100  # passes over the fit items, warm-up included
    # train = items with a training interaction; all = every item, an error unless every item is known at the
    # training cut-off (leave-one-out): under a temporal split it would fit on items that did not exist yet
    fit_items: Literal["train", "all"] = "train"
    seed: int = 42  # torch init, shuffling, k-means and dead-code re-seeding
    device: str = "auto"  # auto = cuda if available else cpu; or any torch device string
    threads: int = 1  # CPU threads for torch; 0 = torch's default (identical codes need the same count)
    diversity_weight: float = 0.0  # weight of the code-usage diversity term (LETTER-style; `usage_deficit`); 0 = off
    pq_iters: int = 25  # pq/opq: k-means iterations of each sub-space's codebook (faiss's default)
    opq_iters: int = 50  # opq: alternations of PQ fit and rotation update (faiss's default)
    pca_dim: int = 0  # pq/opq: quantise the top pca_dim principal components, whitened (RPG's code: 128); 0 = off

    def validate(self) -> None:
        for name in ("latent_dim", "levels", "batch_size", "epochs", "pq_iters", "opq_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.pca_dim < 0 or (self.pca_dim and self.method not in ("pq", "opq")):
            raise ValueError(f"pca_dim: must be >= 0 and only set for method pq or opq, got {self.pca_dim} "
                             f"with method {self.method}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden: widths must be >= 1, got {list(self.hidden)}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size: must be >= 2, got {self.codebook_size}")
        if self.beta < 0:
            raise ValueError(f"beta: must be >= 0, got {self.beta}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs: must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        if self.dead_code_patience < 0:
            raise ValueError(f"dead_code_patience: must be >= 0 (0 = off), got {self.dead_code_patience}")
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay: must be >= 0, got {self.weight_decay}")
        if self.threads < 0:
            raise ValueError(f"threads: must be >= 0, got {self.threads}")
        if self.diversity_weight < 0:
            raise ValueError(f"diversity_weight: must be >= 0 (0 = off), got {self.diversity_weight}")
        if self.method == "lsh" and self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"codebook_size: method lsh needs a power of two (a code = log2(codebook_size) "
                             f"sign bits), got {self.codebook_size}")
        if self.method in ("pq", "opq") and self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"codebook_size: method {self.method} needs a power of two (faiss codes of "
                             f"log2(codebook_size) bits), got {self.codebook_size}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError as e:
                raise ValueError(f"device: {e}") from None


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers through `sizes`, ReLU between them and none after the last."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def rotate_onto(e: Tensor, q: Tensor) -> Tensor:
    """Rotation trick (Fifty et al. 2024): forward value q, gradient w.r.t. e through lambda * R.

    R rotates e's direction onto q's (R = I - 2 r r^T + 2 q^ e^T, r = (e^ + q^) / |e^ + q^|, the
    Householder-style form of the paper) and lambda = |q| / |e| rescales; both are constants
    (detached), so the encoder receives the decoder's gradient rotated and rescaled like e -> q.
    e, q: (B, d) -> (B, d).
    """
    e_norm = e.norm(dim=-1, keepdim=True).clamp_min(1e-12).detach()
    q_norm = q.norm(dim=-1, keepdim=True).detach()
    e_hat, q_hat = (e.detach() / e_norm), (q.detach() / q_norm.clamp_min(1e-12))
    r = F.normalize(e_hat + q_hat, dim=-1, eps=1e-12)
    rotated = (q_norm / e_norm) * (e - 2 * r * (r * e).sum(-1, keepdim=True)
                                   + 2 * q_hat * (e_hat * e).sum(-1, keepdim=True))
    return q.detach() + (rotated - rotated.detach())  # exact value q even where e ~ 0; gradient of `rotated`


class Quantized(NamedTuple):
    z_q: Tensor  # (B, d) quantised latent: value = sum of the chosen codes; gradient to z per the estimator
    codes: Tensor  # (B, levels) int64
    residuals: Tensor  # (B, levels, d) what level l quantised (detached); row l = z - sum of codes < l
    codebook_loss: Tensor  # sum over levels of |sg(residual) - code|^2, mean over items
    commit_loss: Tensor  # sum over levels of |residual - sg(code)|^2, mean over items
    diversity_loss: Tensor  # sum over levels of `usage_deficit`; 0 unless asked for


def usage_deficit(residual: Tensor, book: Tensor) -> Tensor:
    """Diversity term of one level: 1 - H(p) / log K, p = the batch's mean soft code assignment.

    LETTER (Wang et al. 2024, "Learnable Item Tokenization for Generative Recommendation") adds a
    diversity loss against code-assignment bias; as we recall it (not re-checked against the paper's
    equations), codes are grouped by constrained k-means and a contrastive term pulls an item's
    quantised vector towards another code of its code's group. This is not that loss but a simpler
    term with the same aim, the batch-entropy half of MAGVIT-v2's entropy penalty (Yu et al. 2024,
    "Language Model Beats Diffusion"): soft assignments p_ik = softmax_k(-|r_i - e_k|^2 / T),
    p = mean_i p_i, and the deficit of H(p) from its maximum log K (0 = every code equally used).
    T = the batch's mean squared distance to the nearest code (detached), so the term is free of the
    latent's scale. Gradients reach both the residuals (encoder) and the codebook.
    residual (B, d), book (K, d) -> scalar in [0, 1].
    """
    d2 = (residual * residual).sum(-1, keepdim=True) - 2 * residual @ book.T + (book * book).sum(-1)  # (B, K)
    temperature = d2.detach().min(-1).values.mean().clamp_min(1e-12)
    p = torch.softmax(-d2 / temperature, dim=-1).mean(0)  # (K,)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return 1 - entropy / math.log(len(book))


class ResidualQuantizer(nn.Module):
    """`levels` codebooks of `size` codes of width `dim`; quantise the residual, subtract, accumulate."""

    def __init__(self, levels: int, size: int, dim: int, estimator: str = "ste"):
        super().__init__()
        self.estimator = estimator
        self.codebooks = nn.Parameter(torch.empty(levels, size, dim).uniform_(-1 / size, 1 / size))  # (L, K, d)

    def nearest(self, x: Tensor, level: int) -> Tensor:
        """(B, d) -> (B,) index of the nearest code of `level` (squared Euclidean; ties -> lowest index)."""
        return nearest(x, self.codebooks[level])

    def decode(self, codes: Tensor) -> Tensor:
        """(B, levels) codes -> (B, d) sum of the chosen codes: the quantised latent."""
        return sum(self.codebooks[level][codes[:, level]] for level in range(codes.shape[1]))

    def forward(self, z: Tensor, diversity: bool = False) -> Quantized:
        """z (B, d) -> `Quantized`; diversity=True also computes the `usage_deficit` of every level."""
        residual, z_q = z, torch.zeros_like(z)
        codes, residuals, codebook_loss, commit_loss = [], [], z.new_zeros(()), z.new_zeros(())
        diversity_loss = z.new_zeros(())
        for level in range(self.codebooks.shape[0]):
            idx = self.nearest(residual.detach(), level)
            q = self.codebooks[level][idx]  # (B, d)
            codebook_loss = codebook_loss + (residual.detach() - q).pow(2).sum(-1).mean()
            commit_loss = commit_loss + (residual - q.detach()).pow(2).sum(-1).mean()
            if diversity:
                diversity_loss = diversity_loss + usage_deficit(residual, self.codebooks[level])
            codes.append(idx)
            residuals.append(residual.detach())
            z_q = z_q + q.detach()
            residual = residual - q.detach()
        # One estimator over the whole sum: per-level copies would multiply the encoder's gradient by `levels`.
        z_q = z + (z_q - z).detach() if self.estimator == "ste" else rotate_onto(z, z_q)
        return Quantized(z_q, torch.stack(codes, 1), torch.stack(residuals, 1), codebook_loss, commit_loss,
                         diversity_loss)


class RQVAE(nn.Module):
    """MLP encoder -> residual quantiser -> mirrored MLP decoder. (B, input_dim) -> (B, input_dim)."""

    def __init__(self, input_dim: int, cfg: RQVAEConfig):
        super().__init__()
        self.encoder = mlp([input_dim, *cfg.hidden, cfg.latent_dim])
        self.quantizer = ResidualQuantizer(cfg.levels, cfg.codebook_size, cfg.latent_dim, cfg.estimator)
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden), input_dim])

    def forward(self, x: Tensor, diversity: bool = False) -> tuple[Tensor, Quantized]:
        q = self.quantizer(self.encoder(x), diversity)
        return self.decoder(q.z_q), q


def checkpoint(model: RQVAE, cfg: RQVAEConfig, input_dim: int) -> dict:
    """What model.pt holds: the weights and the config that rebuilds the model."""
    return {"state_dict": model.state_dict(), "config": asdict(cfg), "input_dim": input_dim}


def from_checkpoint(ckpt: dict) -> RQVAE:
    """Inverse of `checkpoint` (e.g. `from_checkpoint(torch.load(path))`)."""
    cfg = RQVAEConfig(**{**ckpt["config"], "hidden": tuple(ckpt["config"]["hidden"])})
    model = RQVAE(ckpt["input_dim"], cfg)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


@torch.no_grad()
def init_codebooks(model: RQVAE, x: Tensor, generator: torch.Generator) -> None:
    """TIGER's k-means initialisation: level l's codebook = k-means of the level-l residuals of `x` (n, D)."""
    rq = model.quantizer
    residual = model.encoder(x)
    for level in range(rq.codebooks.shape[0]):
        rq.codebooks[level] = kmeans(residual, rq.codebooks.shape[1], generator)
        residual = residual - rq.codebooks[level][rq.nearest(residual, level)]


@torch.no_grad()
def quantize_all(model: RQVAE, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(codes (n, levels), residuals (n, levels, d), reconstruction (n, D)) of `x` (n, D), no grad."""
    was_training = model.training
    model.eval()
    codes, residuals, x_hat = [], [], []
    for start in range(0, len(x), EVAL_BATCH):
        out, q = model(x[start:start + EVAL_BATCH])
        codes.append(q.codes)
        residuals.append(q.residuals)
        x_hat.append(out)
    model.train(was_training)
    return torch.cat(codes), torch.cat(residuals), torch.cat(x_hat)


@torch.no_grad()
def reset_dead_codes(model: RQVAE, idle: Tensor, codes: Tensor, residuals: Tensor, patience: int,
                     generator: torch.Generator, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Re-seed codes unused for `patience` epochs in a row at randomly chosen current residuals.

    idle: (levels, K) epochs each code has gone unused, updated in place from this epoch's `codes`
    (n, levels) of the fit items; residuals: (n, levels, d). Adam's moments of a re-seeded code are
    zeroed, so it starts afresh. Returns how many codes were re-seeded.
    """
    books = model.quantizer.codebooks
    levels, size = idle.shape
    used = torch.zeros_like(idle, dtype=torch.bool)
    for level in range(levels):
        used[level, codes[:, level]] = True
    idle.add_(1).masked_fill_(used, 0)
    dead = idle >= patience
    for level in range(levels):
        rows = dead[level].nonzero().squeeze(1)
        if len(rows):
            pick = torch.randint(len(residuals), (len(rows),), generator=generator).to(residuals.device)
            books[level, rows] = residuals[pick, level]
    if optimizer is not None and dead.any():
        for moment in optimizer.state.get(books, {}).values():
            if torch.is_tensor(moment) and moment.shape == books.shape:
                moment[dead] = 0
    idle.masked_fill_(dead, 0)
    return int(dead.sum())


def _epoch(model: RQVAE, x: Tensor, cfg: RQVAEConfig, optimizer: torch.optim.Optimizer,
           generator: torch.Generator, quantize: bool) -> list[float]:
    """One shuffled pass over `x` (n, D); returns the item-mean [recon, codebook, commit, diversity] losses.

    quantize=False (warm-up) trains encoder and decoder as a plain autoencoder, z -> decoder.
    """
    model.train()
    sums = torch.zeros(4, device=x.device)
    for idx in torch.randperm(len(x), generator=generator).split(cfg.batch_size):
        xb = x[idx.to(x.device)]
        if quantize:
            x_hat, q = model(xb, diversity=cfg.diversity_weight > 0)
            parts = [(x_hat - xb).pow(2).sum(-1).mean(), q.codebook_loss, q.commit_loss, q.diversity_loss]
        else:
            parts = [(model.decoder(model.encoder(xb)) - xb).pow(2).sum(-1).mean(), *xb.new_zeros(3)]
        loss = parts[0] + parts[1] + cfg.beta * parts[2]
        if cfg.diversity_weight > 0:  # only then: the default graph, and so its codes, stay as they were
            loss = loss + cfg.diversity_weight * parts[3]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += len(idx) * torch.stack(parts).detach()
    return (sums / len(x)).tolist()


def train(x_fit: np.ndarray, cfg: RQVAEConfig, on_epoch: Callable[[int, dict], None] | None = None,
          progress: bool = True) -> tuple[RQVAE, dict]:
    """Train an RQ-VAE on `x_fit` (n, D) float embeddings; return the model (eval mode, CPU) and facts.

    Loss per item (sums over dimensions, means over items): |x - x_hat|^2 + sum over levels of
    (|sg(r_l) - e_l|^2 + beta |r_l - sg(e_l)|^2) (TIGER Eq. 1-2), plus diversity_weight times the sum over
    levels of the batch's `usage_deficit` when diversity_weight > 0. The first `warmup_epochs` train the
    autoencoder alone; then the codebooks are initialised (k-means) and quantisation starts. Why a
    warm-up: the freshly initialised MLP maps all Beauty items to within ~0.01 of one point (latent
    norm ~0.3), so k-means there is noise and the first Adam steps, which shift that point by about
    as much, sent every item to one or two codes (measured); after 10 warm-up epochs all codes stay used.
    `on_epoch(epoch, logs)` receives the epoch's mean loss, reconstruction MSE per dimension and latent
    quantisation error (sum over levels), the diversity term if on, and, once quantising, the per-level code
    usage and collision rate of the fit items and the number of re-seeded codes.
    """
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # CPU: shuffles, k-means and re-seeding, same on any device
    x = torch.as_tensor(np.asarray(x_fit, dtype=np.float32), device=device)
    n, dim = x.shape
    model = RQVAE(dim, cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    idle = torch.zeros(cfg.levels, cfg.codebook_size, dtype=torch.long, device=device)
    resets_total, logs = 0, {}
    log.info("RQ-VAE: %d fit items of dim %d on %s, %d epochs (%d warm-up) of %d steps", n, dim, device,
             cfg.epochs, cfg.warmup_epochs, -(-n // cfg.batch_size))
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc="rqvae", disable=not progress, mininterval=2.0)
    for epoch in bar:
        quantize = epoch > cfg.warmup_epochs
        if quantize and epoch == cfg.warmup_epochs + 1 and cfg.kmeans_init:
            init_codebooks(model, x, gen)
        recon, codebook, commit, diversity = _epoch(model, x, cfg, optimizer, gen, quantize)
        # codebook and commitment losses have one value (they differ in what the gradient reaches): log it once
        logs = {"loss": recon + codebook + cfg.beta * commit + cfg.diversity_weight * diversity,
                "recon_mse": recon / dim, "quant_error": commit}
        if quantize:
            if cfg.diversity_weight > 0:
                logs["usage_deficit"] = diversity
            codes, residuals, _ = quantize_all(model, x)
            for level in range(cfg.levels):
                logs[f"usage_level_{level}"] = len(torch.unique(codes[:, level])) / cfg.codebook_size
            logs["fit_collision_rate"] = _collision_rate(codes)
            if cfg.dead_code_patience:
                logs["dead_codes_reset"] = reset_dead_codes(model, idle, codes, residuals, cfg.dead_code_patience,
                                                            gen, optimizer)
                resets_total += logs["dead_codes_reset"]
            bar.set_postfix(loss=f"{logs['loss']:.4f}", usage0=f"{logs['usage_level_0']:.2f}", refresh=False)
        if on_epoch is not None:
            on_epoch(epoch, logs)
    seconds = time.perf_counter() - start
    facts = {"fit_item_count": n, "epochs": cfg.epochs, "train_seconds": round(seconds, 2),
             "final_loss": round(logs["loss"], 6), "dead_codes_reset": resets_total, "device": str(device)}
    log.info("RQ-VAE trained in %.1fs: %s", seconds, {k: round(v, 5) for k, v in logs.items()})
    return model.cpu().eval(), facts


def _collision_rate(codes: Tensor) -> float:
    """Fraction of rows of (n, levels) `codes` shared with another row."""
    _, counts = torch.unique(codes, dim=0, return_counts=True)
    return float(counts[counts > 1].sum()) / len(codes)


def encode(model: RQVAE, embeddings: np.ndarray) -> tuple[np.ndarray, dict]:
    """Raw codes (N, levels) int64 of items 1..N of `embeddings` (N+1, D), and reconstruction facts.

    recon_mse: mean squared error per dimension over all N items (cold ones included);
    recon_rel: the same relative to the embeddings' variance (1 = no better than the mean vector);
    recon_cosine: mean cosine similarity of an item's embedding and its reconstruction.
    """
    x = torch.as_tensor(np.asarray(embeddings[1:], dtype=np.float32))
    codes, _, x_hat = quantize_all(model.cpu(), x)
    mse = float((x_hat - x).pow(2).mean())
    var = float(x.var(0, unbiased=False).mean())
    cosine = float(F.cosine_similarity(x_hat, x, dim=-1).mean())
    return codes.numpy().astype(np.int64), {"recon_mse": round(mse, 8), "recon_rel": round(mse / max(var, 1e-12), 6),
                                            "recon_cosine": round(cosine, 6)}


def fit_and_encode(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
                   on_epoch: Callable[[int, dict], None] | None = None,
                   progress: bool = True) -> tuple[RQVAE, np.ndarray, dict]:
    """Fit on rows `fit_ids` of `embeddings` (N+1, D), encode every item 1..N (cold ones too).

    Returns (model, raw codes (N, levels) int64, facts for the metrics file).
    """
    model, facts = train(embeddings[fit_ids], cfg, on_epoch, progress)
    codes, recon = encode(model, embeddings)
    return model, codes, {**facts, **recon}


def tokenize(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
             on_epoch: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, dict, dict]:
    """The stage's entry point, shared by every method: (raw codes (N, levels), facts, model.pt contents)."""
    model, codes, facts = fit_and_encode(embeddings, fit_ids, cfg, on_epoch)
    return codes, facts, checkpoint(model, cfg, embeddings.shape[1])
