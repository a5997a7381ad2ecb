"""Search: a faiss-backed vector index with ids and JSON payloads.

Example:
    >>> import numpy as np
    >>> from finetuner.search import Index
    >>> index = Index(metric="cosine")
    >>> index.add(np.random.rand(10, 4).astype(np.float32), payloads=[f"img_{i}.jpg" for i in range(10)])
    >>> scores, ids = index.search(np.random.rand(2, 4).astype(np.float32), k=3)
"""

from finetuner.search.index import Index

__all__ = ["Index"]
