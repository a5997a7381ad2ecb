"""P4: retrieval_metrics on 10,000 queries x 1,000,000 index vectors, side by side with a plain faiss search.

Measures, in one process and on the same clustered random vectors (``--n-labels`` classes, so R is about
``n_index / n_labels`` per query):

1. ``finetuner.evaluation.retrieval_metrics`` (all metrics, MAP@R included): wall and CPU time (CPU time is
   the steadier number on a shared machine), and peak extra
   memory (RSS sampled every few ms in a thread, minus the RSS before the call; torch memory is
   invisible to tracemalloc).
2. ``faiss.IndexFlatIP.search(queries, k=10)`` on the normalised vectors: wall time and peak extra memory.
3. The kernel choice inside retrieval_metrics, on a sample of queries: torch matmul + topk(R + 1) versus
   ``faiss.IndexFlatIP.search(k=R + 1)``.
4. ``--part compact``: ``finetuner.search.Index`` kinds ``flat``, ``int8`` and ``binary`` (with and without
   float32 re-scoring) on the same index vectors: memory in RAM after save/load (``Index.nbytes``; the compact
   kinds memory-map their float32 vectors), files on disk, recall@10 against the exact index, search time.

Run: ``python benchmarks/bench_search.py`` (full size, minutes on 2 cores), or
``python benchmarks/bench_search.py --n-index 100000 --n-queries 1000`` for a quick check;
``--part compact`` runs only 4 (``--part metrics`` only 1-3); ``--part compact --real`` runs 4 on real embeddings
instead: the 3,000 embedded Fashion-MNIST images encoded by EfficientNet-Lite0 (packaged ImageNet weights, 1,280-d
features), the 1,000 test images as queries against the 2,000 training images.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import psutil
import torch

import finetuner
from finetuner.evaluation import retrieval_metrics
from finetuner.search import Index

GIB = 1 << 30


class PeakRSS:
    """Context manager: peak resident memory above the level at entry, sampled in a background thread."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self.process = interval_s, psutil.Process()
        self.peak_extra = 0

    def __enter__(self) -> PeakRSS:
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.peak_extra = self.peak - self.base


def clustered(n: int, centers: np.ndarray, rng: np.random.Generator, spread: float) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(centers), n)
    x = rng.standard_normal((n, centers.shape[1]), dtype=np.float32)
    x *= spread
    x += centers[labels]
    return x, labels


def kernel_comparison(queries: np.ndarray, index: np.ndarray, depth: int) -> tuple[float, float]:
    """Seconds for the top-``depth`` of ``queries``: torch matmul + topk in 64-query blocks, and faiss flat search."""
    xq, xb = torch.from_numpy(queries), torch.from_numpy(index)
    start = time.perf_counter()
    for block in xq.split(64):
        (block @ xb.T).topk(depth, dim=1, sorted=False)
    torch_s = time.perf_counter() - start
    flat = faiss.IndexFlatIP(index.shape[1])
    flat.add(index)
    start = time.perf_counter()
    flat.search(queries, depth)
    return torch_s, time.perf_counter() - start


COMPACT_KINDS = (
    ("flat", {}),
    ("int8", {"rerank": 0}),
    ("int8", {"rerank": 2}),
    ("binary", {"rerank": 0}),
    ("binary", {"rerank": 10}),
    ("binary", {"rerank": 30}),
)


def compact_comparison(index: np.ndarray, queries: np.ndarray, k: int = 10) -> None:
    """Memory, disk size, recall@k against the exact index and search time of each Index kind, after save/load."""
    exact = faiss.IndexFlatIP(index.shape[1])
    exact.add(index / np.linalg.norm(index, axis=1, keepdims=True))
    truth = exact.search(queries / np.linalg.norm(queries, axis=1, keepdims=True), k)[1]
    del exact
    print(f"| kind | params | RAM after load | files on disk | recall@{k} vs exact | search {len(queries)} queries |")
    print("|---|---|---|---|---|---|")
    for kind, params in COMPACT_KINDS:
        built = Index(metric="cosine", kind=kind, **params)
        built.add(index)
        with tempfile.TemporaryDirectory() as folder:
            built.save(folder)
            del built
            loaded = Index.load(folder)
            disk = sum(p.stat().st_size for p in Path(folder).iterdir() if p.suffix in (".faiss", ".npy"))
            start = time.perf_counter()
            found = loaded.search(queries, k)[1]
            search_s = time.perf_counter() - start
            recall = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth)])
            print(
                f"| {kind} | {params or ''} | {loaded.nbytes / 2**20:.1f} MiB | {disk / 2**20:.1f} MiB | "
                f"{recall:.4f} | {search_s:.2f} s |"
            )
            del loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-index", type=int, default=1_000_000)
    parser.add_argument("--n-queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--n-labels", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=2.0, help="noise around each class centre (centres ~ N(0, 1))")
    parser.add_argument("--kernel-sample", type=int, default=256, help="queries for the kernel comparison (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=("all", "metrics", "compact"), default="all")
    parser.add_argument("--compact-queries", type=int, default=1000, help="queries for the compact-index part")
    parser.add_argument("--real", action="store_true", help="compact part on Fashion-MNIST EfficientNet features")
    args = parser.parse_args()
    if args.real:
        from finetuner.data import load_fashion_mnist

        model = finetuner.build_model("efficientnet_lite0")
        index, queries = (model.encode(load_fashion_mnist(split).items) for split in ("train", "test"))
        print(f"# compact Index kinds on EfficientNet-Lite0 features: {index.shape} index, {queries.shape} queries")
        compact_comparison(index, queries)
        return

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(args.seed)
    centers = rng.standard_normal((args.n_labels, args.dim), dtype=np.float32)
    index, index_labels = clustered(args.n_index, centers, rng, args.spread)
    queries, query_labels = clustered(args.n_queries, centers, rng, args.spread)
    index_n = index / np.linalg.norm(index, axis=1, keepdims=True)
    queries_n = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    inputs_gib = (index.nbytes + queries.nbytes) / GIB

    print(f"# P4 {datetime.date.today()}  {platform.processor() or platform.machine()}  {threads} threads")
    versions = {"finetuner": finetuner.__version__, "torch": torch.__version__, "faiss": faiss.__version__}
    print("  ".join(f"{name} {version}" for name, version in {**versions, "numpy": np.__version__}.items()))
    print(f"queries {args.n_queries} x index {args.n_index} x dim {args.dim}, {args.n_labels} labels")
    print(f"inputs: {inputs_gib:.2f} GiB (+ the same again as normalised copies for faiss)")
    if args.part in ("all", "compact"):
        compact_comparison(index, queries[: args.compact_queries])
    if args.part == "compact":
        return

    with PeakRSS() as ours_mem:
        start, start_cpu = time.perf_counter(), time.process_time()
        metrics = retrieval_metrics(queries, query_labels, index, index_labels, k=(1, 5, 10), distance="cosine")
        ours_s, ours_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(
        f"retrieval_metrics: {ours_s:.1f} s wall, {ours_cpu:.1f} s CPU, "
        f"peak extra RSS {ours_mem.peak_extra / GIB:.3f} GiB (bound: 2 GiB)"
    )
    print("  " + "  ".join(f"{key}={value:.4f}" for key, value in metrics.items()))

    flat = faiss.IndexFlatIP(args.dim)
    flat.add(index_n)
    with PeakRSS() as faiss_mem:
        start, start_cpu = time.perf_counter(), time.process_time()
        flat.search(queries_n, 10)
        faiss_s, faiss_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(
        f"faiss IndexFlatIP.search(k=10): {faiss_s:.1f} s wall, {faiss_cpu:.1f} s CPU, "
        f"peak extra RSS {faiss_mem.peak_extra / GIB:.3f} GiB"
    )
    print(f"ratio retrieval_metrics / faiss search: {ours_s / faiss_s:.2f}x wall, {ours_cpu / faiss_cpu:.2f}x CPU")
    del flat

    if args.kernel_sample:
        depth = int(np.bincount(index_labels).max()) + 1
        torch_s, faiss_k_s = kernel_comparison(queries_n[: args.kernel_sample], index_n, depth)
        print(
            f"kernel on {args.kernel_sample} queries, top-{depth}: torch matmul+topk {torch_s:.1f} s, "
            f"faiss IndexFlatIP.search {faiss_k_s:.1f} s"
        )


if __name__ == "__main__":
    main()
