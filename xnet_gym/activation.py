"""Activation traces: which experts each token activates in each layer.

A trace is an int array `experts` of shape (layers, tokens, top_k) with distinct ids per
token, optionally with router `weights` of the same shape. Sources: synthetic `zipf`
(Plackett-Luce: independent of everything but the popularity ranking), synthetic `clustered`
(co-activation through token clusters), `.npz` files and the ESFT text format.
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
import zipfile
from dataclasses import InitVar, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import TraceError, field_error

MAX_TOKENS = 10_000_000         # tokens of one activation profile


@dataclass(frozen=True, eq=False)
class ActivationTrace:
    experts: np.ndarray
    n_experts: int
    weights: np.ndarray | None = None
    source: str = ""
    check: InitVar[bool] = True
    # {layer: (sets, counts)} already known to whoever built the trace: spares recounting.
    known_sets: InitVar[dict | None] = None

    # Caches: distinct active sets and probabilities per layer, filled on first use.
    _sets: dict = field(init=False, repr=False, default_factory=dict)
    _probs: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self, check: bool, known_sets: dict | None):
        self._sets.update(known_sets or {})
        if not check:
            # Internally generated traces (the env's per-episode profiles) are valid by
            # construction; re-checking them would dominate the reset cost.
            return
        x = np.asarray(self.experts)
        if x.ndim != 3 or min(x.shape, default=0) < 1:
            raise field_error(TraceError, "trace.experts.shape", tuple(x.shape),
                              "must be (layers, tokens, top_k), each >= 1")
        if not np.issubdtype(x.dtype, np.integer):
            raise field_error(TraceError, "trace.experts.dtype", str(x.dtype), "must be an integer type")
        if x.shape[2] > self.n_experts:
            raise field_error(TraceError, "trace.top_k", x.shape[2],
                              f"must be <= the number of experts ({self.n_experts})")
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= self.n_experts:
            bad = lo if lo < 0 else hi
            raise field_error(TraceError, "trace.experts", bad,
                              f"expert ids must be in [0, {self.n_experts - 1}]")
        srt = np.sort(x, axis=2)
        dup = np.argwhere(srt[:, :, 1:] == srt[:, :, :-1])
        if len(dup):
            layer, t = int(dup[0, 0]), int(dup[0, 1])
            raise field_error(TraceError, f"trace.experts[{layer}, {t}]", x[layer, t].tolist(),
                              "a token's active experts must be distinct")
        object.__setattr__(self, "experts", x.astype(np.int32 if self.n_experts > 127 else np.int16,
                                                      copy=False))
        if self.weights is not None:
            w = np.asarray(self.weights)
            if w.shape != x.shape:
                raise field_error(TraceError, "trace.weights.shape", tuple(w.shape),
                                  f"must equal experts.shape {tuple(x.shape)}")
            if not np.issubdtype(w.dtype, np.floating) or not np.all(np.isfinite(w)):
                raise field_error(TraceError, "trace.weights", str(w.dtype), "must be finite floats")
            if w.size and w.min() < 0.0:
                raise field_error(TraceError, "trace.weights", float(w.min()),
                                  "gate weights are the router's (non-negative) scores: each must be >= 0")

    @property
    def n_layers(self) -> int:
        return self.experts.shape[0]

    @property
    def n_tokens(self) -> int:
        return self.experts.shape[1]

    @property
    def top_k(self) -> int:
        return self.experts.shape[2]

    def probabilities(self) -> np.ndarray:
        """(layers, experts) probability that a token activates each expert (count / tokens)."""
        return np.stack([self.layer_probabilities(layer) for layer in range(self.n_layers)])

    def layer_probabilities(self, layer: int) -> np.ndarray:
        p = self._probs.get(layer)
        if p is None:
            p = np.bincount(self.experts[layer].ravel(), minlength=self.n_experts) / self.n_tokens
            self._probs[layer] = p
        return p

    def active_sets(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct active sets of a layer, (n_sets, top_k) sorted ids, and their token counts."""
        cached = self._sets.get(layer)
        if cached is None:
            rows = np.sort(self.experts[layer], axis=1).astype(np.int64)
            cached = _unique_rows(rows, self.n_experts)
            self._sets[layer] = cached
        return cached

    def token_set_index(self, layer: int) -> np.ndarray:
        """(tokens,) the row of `active_sets(layer)` each token's active set is."""
        sets, _ = self.active_sets(layer)
        rows = np.sort(self.experts[layer], axis=1).astype(np.int64)
        # Both sides packed into the same integer key: distinct sets are sorted by it.
        if sets.shape[1] * math.log2(max(self.n_experts, 2)) < 62:
            key = self.n_experts ** np.arange(sets.shape[1] - 1, -1, -1, dtype=np.int64)
            set_keys, token_keys = sets @ key, rows @ key
        else:                                   # too many bits for one int64: rank the rows instead
            _, inverse = np.unique(np.concatenate([sets, rows]), axis=0, return_inverse=True)
            set_keys, token_keys = inverse.ravel()[: len(sets)], inverse.ravel()[len(sets):]
        # Known sets (synthetic profiles) need not come in key order.
        order = np.argsort(set_keys, kind="stable")
        return order[np.searchsorted(set_keys[order], token_keys)]

    def coactivation(self, layer: int) -> np.ndarray:
        """(E, E) matrix C[e, f] = P(f active | e active), zero diagonal."""
        return coactivation_from_sets(*self.active_sets(layer), self.n_experts)

    def window(self, start: int, tokens: int) -> ActivationTrace:
        """Tokens [start, start + tokens) of every layer."""
        sl = slice(start, start + tokens)
        w = None if self.weights is None else self.weights[:, sl]
        return ActivationTrace(self.experts[:, sl], self.n_experts, w, self.source, check=False)

    def select_layers(self, layers) -> ActivationTrace:
        idx = np.asarray(layers)
        w = None if self.weights is None else self.weights[idx]
        return ActivationTrace(self.experts[idx], self.n_experts, w, self.source, check=False)


def set_indicator(sets: np.ndarray, n_experts: int, dtype=np.float64) -> np.ndarray:
    """(..., m, E) 1 where expert e is in active set j, from sets (..., m, k)."""
    onehot = np.zeros((*sets.shape[:-1], n_experts), dtype=dtype)
    np.put_along_axis(onehot, sets, 1, axis=-1)
    return onehot


def coactivation_from_sets(sets: np.ndarray, counts: np.ndarray, n_experts: int,
                           indicator: np.ndarray | None = None) -> np.ndarray:
    """(..., E, E) P(f active | e active) from distinct active sets (..., m, k) and their token
    counts (..., m); leading axes are a batch of layers. `indicator`: `set_indicator(sets)`,
    if the caller has it already."""
    onehot = set_indicator(sets, n_experts) if indicator is None else indicator
    # Joint token counts are integers: float32 sums them exactly below 2^24 tokens (and twice
    # as fast as float64 on real traces' thousands of sets); the division is in float64.
    small = int(counts.sum(axis=-1).max(initial=0)) < 1 << 24
    dtype = np.float32 if small else np.float64
    onehot = onehot.astype(dtype, copy=False)
    joint = (np.swapaxes(onehot * counts[..., None].astype(dtype), -1, -2) @ onehot).astype(np.float64)
    diag = np.arange(n_experts)
    count = joint[..., diag, diag].copy()
    joint[..., diag, diag] = 0.0
    return joint / np.maximum(count, 1.0)[..., None]


def _unique_rows(rows: np.ndarray, n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows and their counts; rows of small ints are packed into one int64 key,
    which is an order of magnitude faster than numpy.unique(axis=0)."""
    k = rows.shape[1]
    if k * math.log2(max(n_values, 2)) < 62:
        keys = rows @ (n_values ** np.arange(k - 1, -1, -1, dtype=np.int64))
        _, first, counts = np.unique(keys, return_index=True, return_counts=True)
        return rows[first], counts
    return np.unique(rows, axis=0, return_counts=True)


def batched_active_sets(experts: np.ndarray, n_experts: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct active sets of many token windows at once: `experts` (n, T, k) -> sets
    (n, m, k) and counts (n, m), each row's sets in `ActivationTrace.active_sets` order
    (lexicographic), padded to the largest m with zero-count copies of the row's first set
    (as `stack_active_sets` pads). One sort over all n x T tokens, no loop over rows."""
    n, T, k = experts.shape
    rows = np.sort(experts, axis=2).astype(np.int64)
    if k * math.log2(max(n_experts, 2)) + math.log2(max(n, 2)) >= 62:
        raise field_error(TraceError, "top_k", k, f"with {n_experts} experts and {n} windows the set keys "
                          "overflow int64; draw fewer windows at once")
    base = n_experts ** k
    keys = rows @ (n_experts ** np.arange(k - 1, -1, -1, dtype=np.int64)) + np.arange(n)[:, None] * base
    unique, first, counts = np.unique(keys.ravel(), return_index=True, return_counts=True)
    row_of = unique // base
    starts = np.searchsorted(row_of, np.arange(n))
    per_row = np.diff(np.append(starts, len(unique)))
    m = int(per_row.max())
    position = np.arange(len(unique)) - starts[row_of]            # set j of its row
    flat = rows.reshape(n * T, k)
    sets = np.broadcast_to(flat[first[starts]][:, None, :], (n, m, k)).copy()    # padding: the first set
    out_counts = np.zeros((n, m), dtype=np.int64)
    sets[row_of, position] = flat[first]
    out_counts[row_of, position] = counts
    return sets, out_counts


def zipf_sets_enumerable(experts: int, top_k: int) -> bool:
    """Whether zipf profiles are drawn exactly as set counts (`zipf_layer_sets`) rather than
    by Gumbel top-k per token: up to 200,000 ordered top-k draws."""
    return math.perm(experts, top_k) <= 200_000


@lru_cache(maxsize=32)
def _plackett_luce_sets(E: int, alpha: float, top_k: int):
    """Exact distribution of the top-k *set* under Plackett-Luce sampling with Zipf(alpha)
    weights (index = popularity rank), or None when there are too many ordered draws."""
    if not zipf_sets_enumerable(E, top_k):
        return None
    w = np.arange(1, E + 1, dtype=float) ** -alpha
    seqs = np.array(list(itertools.permutations(range(E), top_k)), dtype=np.int64)
    taken = np.cumsum(w[seqs], axis=1) - w[seqs]
    prob = np.prod(w[seqs] / (w.sum() - taken), axis=1)
    rows = np.sort(seqs, axis=1)
    sets, inverse = np.unique(rows, axis=0, return_inverse=True)
    prob = np.bincount(inverse.ravel(), weights=prob)
    return sets, prob / prob.sum()


def zipf_layer_sets(experts: int, top_k: int, tokens: int, alpha: float, rng: np.random.Generator,
                    size: int | None = None):
    """One layer's zipf profile as (distinct sets, counts), drawn exactly from the
    Plackett-Luce set distribution with one multinomial: O(sets) instead of O(tokens x experts).
    With `size`, that many independent profiles at once, as (size, m, k) sets and (size, m)
    counts over every possible set (zero counts kept, so the arrays are rectangular).
    Returns None when the set space is too large to enumerate (the caller uses Gumbel top-k)."""
    table = _plackett_luce_sets(experts, float(alpha), top_k)
    if table is None:
        return None
    rank_sets, prob = table
    if size is None:
        perm = rng.permutation(experts)        # perm[r]: the expert with popularity rank r
        counts = rng.multinomial(tokens, prob)
        keep = counts > 0
        return np.sort(perm[rank_sets[keep]], axis=1), counts[keep]
    perm = rng.permuted(np.broadcast_to(np.arange(experts), (size, experts)), axis=1)
    counts = rng.multinomial(tokens, prob, size=size)
    return np.sort(perm[np.arange(size)[:, None, None], rank_sets[None]], axis=-1), counts


def _gumbel_top_k(logits: np.ndarray, top_k: int, tokens: int, rng: np.random.Generator) -> np.ndarray:
    """Plackett-Luce top-k without replacement: argmax-k of logits + Gumbel noise."""
    L, E = logits.shape[0], logits.shape[-1]
    noisy = rng.gumbel(size=(L, tokens, E)) + (logits if logits.ndim == 3 else logits[:, None, :])
    top = np.argpartition(-noisy, top_k - 1, axis=2)[:, :, :top_k]
    return top.astype(np.int16 if E <= 127 else np.int32)


def _zipf_logits(layers: int, experts: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    perm = np.argsort(rng.random((layers, experts)), axis=1)
    rank_logits = -alpha * np.log(np.arange(1, experts + 1))
    logits = np.empty((layers, experts))
    np.put_along_axis(logits, perm, np.broadcast_to(rank_logits, (layers, experts)), axis=1)
    return logits


def zipf_trace(layers: int, experts: int, top_k: int, tokens: int, alpha: float,
               rng: np.random.Generator, shuffle: bool = True) -> ActivationTrace:
    """Per layer: Zipf(alpha) popularity over a random expert permutation; each token's top-k
    is a Plackett-Luce draw (exactly, via the set distribution, or by Gumbel top-k when the
    set space is too large). `shuffle=False` leaves tokens grouped by set (same statistics)."""
    source = f"zipf(alpha={alpha})"
    per_layer = []
    for _ in range(layers):
        drawn = zipf_layer_sets(experts, top_k, tokens, alpha, rng)
        if drawn is None:
            logits = _zipf_logits(layers, experts, alpha, rng)
            return ActivationTrace(_gumbel_top_k(logits, top_k, tokens, rng), experts, source=source, check=False)
        per_layer.append(drawn)
    dtype = np.int16 if experts <= 127 else np.int32
    x = np.empty((layers, tokens, top_k), dtype=dtype)
    for layer, (sets, counts) in enumerate(per_layer):
        x[layer] = np.repeat(sets, counts, axis=0)
        if shuffle:
            x[layer] = x[layer][rng.permutation(tokens)]
    return ActivationTrace(x, experts, source=source, check=False, known_sets=dict(enumerate(per_layer)))


def clustered_trace(layers: int, experts: int, top_k: int, tokens: int, alpha: float,
                    clusters: int, coactivation_strength: float,
                    rng: np.random.Generator) -> ActivationTrace:
    """Zipf popularity plus token clusters; each cluster boosts a group of 2*top_k experts per
    layer by `coactivation_strength` (logit units). 0 gives independent (zipf) routing; larger
    values make the group's experts fire together, and the same cluster persists across layers."""
    logits = _zipf_logits(layers, experts, alpha, rng)
    group = min(experts, 2 * top_k)
    members = np.argsort(rng.random((clusters, layers, experts)), axis=2)[:, :, :group]
    boost = np.zeros((clusters, layers, experts))
    np.put_along_axis(boost, members, coactivation_strength, axis=2)
    cluster_of_token = rng.integers(clusters, size=tokens)
    token_logits = logits[:, None, :] + boost[cluster_of_token].transpose(1, 0, 2)
    top = _gumbel_top_k(token_logits, top_k, tokens, rng)
    return ActivationTrace(top, experts,
                           source=f"clustered(alpha={alpha}, clusters={clusters}, "
                                  f"strength={coactivation_strength})", check=False)


def load_trace_npz(path, n_experts: int) -> ActivationTrace:
    """Load `experts` (and optional `weights`) from an .npz without pickle."""
    path = Path(path)
    if not path.is_file():
        raise field_error(TraceError, "activation.path", str(path), "no such file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":            # every .npz is a zip archive
        raise field_error(TraceError, "activation.path", str(path),
                          "is not an .npz file (no zip signature); save traces with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "experts" not in data.files:
                raise field_error(TraceError, "trace file keys", sorted(data.files),
                                  "an .npz trace must hold an 'experts' array")
            experts = data["experts"]
            weights = data["weights"].astype(np.float64) if "weights" in data.files else None
    except TraceError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise field_error(TraceError, "activation.path", str(path),
                              "holds object arrays that need pickle; traces load without pickle") from None
        raise field_error(TraceError, "activation.path", str(path), f"not a readable .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise field_error(TraceError, "activation.path", str(path),
                          f"not a readable .npz, truncated or damaged ({exc})") from None
    return ActivationTrace(experts, n_experts, weights, source=str(path))


def save_trace_npz(trace: ActivationTrace, path) -> None:
    """Write atomically: a crash never leaves a half-written file at `path`."""
    path = Path(path)
    arrays = {"experts": trace.experts}
    if trace.weights is not None:
        arrays["weights"] = trace.weights.astype(np.float16)
    def write(tmp: str) -> None:
        np.savez_compressed(tmp, allow_pickle=False, **arrays)

    atomic_write(path, write)


_ESFT_FILE = re.compile(r"expert_weights_(\d+)\.txt(\.gz)?$")


def load_esft(folder, n_experts: int = 64, top_k: int = 6, layers=None) -> ActivationTrace:
    """Load a task folder of DeepSeek's ESFT `expert_weights_<L>.txt[.gz]` files.

    Each line is a sequence: 6*T tab-separated ids, a double tab, 6*T weights. Lines align
    across layer files, so tokens are concatenated in file order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise field_error(TraceError, "activation.path", str(folder), "no such folder")
    files = {}
    for f in folder.iterdir():
        m = _ESFT_FILE.match(f.name)
        if m:
            files[int(m.group(1))] = f
    if not files:
        raise field_error(TraceError, "activation.path", str(folder),
                          "holds no expert_weights_<L>.txt[.gz] files (ESFT format)")
    order = sorted(files) if layers is None else [sorted(files)[i] for i in layers]
    ids, wts = [], []
    for layer in order:
        f = files[layer]
        opener = gzip.open if f.suffix == ".gz" else open
        try:
            with opener(f, "rt", encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError as exc:
            raise field_error(TraceError, f.name, f"byte {exc.start}", "is not UTF-8 text; ESFT files are "
                              "tab-separated UTF-8 (see the format in docs)") from None
        except (OSError, EOFError) as exc:        # gzip.BadGzipFile is an OSError
            raise field_error(TraceError, f.name, type(exc).__name__,
                              f"cannot be read: a damaged or truncated {'gzip ' if f.suffix == '.gz' else ''}"
                              f"file ({exc})") from None
        id_parts, w_parts = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            blocks = line.split("\t\t")
            if len(blocks) != 2:
                raise field_error(TraceError, f"{f.name}:{lineno}", f"{len(blocks)} blocks",
                                  "a line must be ids, a double tab, then weights")
            n_ids = blocks[0].count("\t") + 1
            if n_ids % top_k:
                raise field_error(TraceError, f"{f.name}:{lineno}", f"{n_ids} ids",
                                  f"a line holds top_k = {top_k} ids per token: is the model's top-k right?")
            id_parts.append(blocks[0])
            w_parts.append(blocks[1])
        try:
            layer_ids = np.array("\t".join(id_parts).split("\t"), dtype=np.int64)
            layer_w = np.array("\t".join(w_parts).split("\t"), dtype=np.float64)
        except ValueError as exc:
            raise field_error(TraceError, f.name, str(exc), "ids must be integers and weights floats") from None
        if len(layer_ids) % top_k or len(layer_ids) != len(layer_w):
            raise field_error(TraceError, f.name, f"{len(layer_ids)} ids, {len(layer_w)} weights",
                              f"ids and weights must pair up in groups of top_k = {top_k}")
        grouped = np.sort(layer_ids.reshape(-1, top_k), axis=1)
        repeated = np.flatnonzero((grouped[:, 1:] == grouped[:, :-1]).any(axis=1))
        if len(repeated):
            raise field_error(TraceError, f.name, f"token {int(repeated[0])}: ids {grouped[repeated[0]].tolist()}",
                              f"a token's top_k = {top_k} experts are distinct; ids grouped by {top_k} repeat "
                              "one, so the file has another number of ids per token")
        ids.append(layer_ids.reshape(-1, top_k))
        wts.append(layer_w.reshape(-1, top_k))
    counts = {len(a) for a in ids}
    if len(counts) != 1:
        raise field_error(TraceError, "activation.path", str(folder),
                          f"layers have different token counts {sorted(counts)}; lines must align")
    return ActivationTrace(np.stack(ids), n_experts, np.stack(wts), source=str(folder))
