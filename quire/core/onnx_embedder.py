"""A sentence-transformers model run by ONNX Runtime: the same vectors, about twice as fast.

The model is exported to ONNX once from its own local weights (torch's exporter, about 5 s with
the imports) into a cache folder, checked against the torch model's output on a few probe texts,
and from then on every process loads only the ONNX file: no torch import, a few hundred MB less
per worker. all-MiniLM-L6-v2 on 2 cores: one short query in about 3 ms instead of 9, passages
about 1.8 times as fast as sentence-transformers, cosine to its vectors above 0.99999.

Only models ONNX can express exactly as sentence-transformers runs them are taken: a transformer,
mean pooling, optionally a normalisation. `supports()` says whether a model folder is one of them;
other models stay on sentence-transformers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quire.core.embeddings import Embedder

logger = logging.getLogger(__name__)

# Part of the cache key: bump it when the export below changes, so old files are not reused.
EXPORT_FORMAT = 2  # 2: attention and layer norms fused
PROBES = [
    "hello",
    "Quire turns uploaded documents into versioned, structured records that agents can cite.",
    "Mitochondrial DNA mutations accumulate with age in human skeletal muscle fibres. " * 12,
]
MIN_PROBE_COSINE = 0.9999
BATCH_SIZE = 32
# ONNX Runtime's CPU arena keeps the largest size every call ever needed, for each call made at
# once: a worker embedding a long document on eight threads grew by 2.1 GB and never gave it
# back. A call bigger than a few queries shrinks the arena back to its first block when it ends
# (bench/ingest.py --mixed: the worker +688 MiB after the run before, see the note of issue 19).
SHRINK_ABOVE_TOKENS = 1024
PADDING_ALLOWANCE = 1.25
ST_MODULES = "sentence_transformers.models."


class ExportFailed(RuntimeError):
    """The model could not be exported to ONNX, or the export does not match the torch model."""


def supports(folder: Path) -> bool:
    """Whether `folder` is a sentence-transformers model this embedder reproduces exactly."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].removeprefix(ST_MODULES) for m in modules]
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError):
        return False
    modes = [key for key, on in pooling.items() if key.startswith("pooling_mode") and on]
    return (
        kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        and modes == ["pooling_mode_mean_tokens"]
        and (folder / "tokenizer.json").is_file()
    )


class OnnxEmbedder(Embedder):
    """Mean-pooled, unit-length vectors of a sentence-transformers model, computed by ONNX Runtime.

    `name` is the model's name, as for the torch embedder: the vectors are the same, so the
    embedding cache and the vector index stay valid when a deployment switches between them.
    """

    def __init__(
        self, name: str, folder: Path, *, cache_dir: Path, dim: int, fallback: Embedder, threads: int = 0
    ) -> None:
        self.name = name
        self.dim = dim
        self.folder = folder
        self.cache_dir = cache_dir
        self.fallback = fallback
        self.threads = threads  # per call; 0: ONNX Runtime's default, one per core
        self._use_fallback = False
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: list[str] = []
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        self._load()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        session, tokenizer = self._load()
        if self._use_fallback:
            return self.fallback.embed(texts)
        encodings = tokenizer.encode_batch(list(texts))
        vectors: list[list[float]] = [[] for _ in texts]
        for batch in _batches([len(e.ids) for e in encodings]):
            hidden, mask = self._run(session, [encodings[i].ids for i in batch])
            for index, vector in zip(batch, _mean_pooled(hidden, mask[..., None]).tolist(), strict=True):
                vectors[index] = vector
        return vectors

    def embed_with_parts(self, text: str, parts: Sequence[str]) -> list[list[float]]:
        """The whole text through the model once; each part is the mean of its own tokens'
        states (with the text's [CLS] and [SEP], as pooling counts them), which the rest of the
        text has informed. A part not found in the text is embedded on its own."""
        session, tokenizer = self._load()
        if self._use_fallback or not parts:
            return self.embed([text, *parts])
        import numpy as np

        encoding = tokenizer.encode(text)
        hidden, _ = self._run(session, [encoding.ids])
        # One pooling mask per vector: the whole text, then each part's tokens.
        masks = np.zeros((1 + len(parts), len(encoding.ids), 1), dtype=np.float32)
        masks[0] = 1.0
        special = [0, len(encoding.ids) - 1]
        alone: list[int] = []
        cursor = 0
        for index, part in enumerate(parts, start=1):
            start = text.find(part, cursor)
            start = start if start >= 0 else text.find(part)
            end = start + len(part)
            tokens = [
                i
                for i, (a, b) in enumerate(encoding.offsets)
                if i not in special and start >= 0 and a >= start and b <= end and b > a
            ]
            if not tokens:
                alone.append(index)
                masks[index, special] = 1.0  # a placeholder, replaced below
                continue
            cursor = end
            masks[index, [*special, *tokens]] = 1.0
        vectors: list[list[float]] = _mean_pooled(
            np.broadcast_to(hidden, masks.shape[:2] + hidden.shape[2:]), masks
        ).tolist()
        if alone:
            for index, vector in zip(alone, self.embed([parts[i - 1] for i in alone]), strict=True):
                vectors[index] = vector
        return vectors

    def _run(self, session: Any, rows: list[list[int]]) -> tuple[Any, Any]:
        """The model's last hidden states for rows of token ids padded to the longest, and the
        attention mask (1 for a token, 0 for padding)."""
        import numpy as np

        ids = np.zeros((len(rows), max(len(row) for row in rows)), dtype=np.int64)
        mask = np.zeros_like(ids)
        for number, row in enumerate(rows):
            ids[number, : len(row)] = row
            mask[number, : len(row)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        options = None
        if ids.size > SHRINK_ABOVE_TOKENS:
            import onnxruntime

            options = onnxruntime.RunOptions()
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return session.run(None, {name: feeds[name] for name in self._inputs}, options)[0], mask

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None and not self._use_fallback:
                hidden = json.loads((self.folder / "config.json").read_text()).get("hidden_size")
                if hidden != self.dim:
                    raise ValueError(
                        f"embedding model {self.name} makes {hidden}-dimensional vectors; "
                        f"Quire's vector columns hold {self.dim}"
                    )
                try:
                    import onnxruntime
                    from tokenizers import Tokenizer

                    path = self._exported()
                except (ExportFailed, ImportError, RuntimeError, OSError) as error:
                    # Same vectors either way, only slower: keep serving rather than fail.
                    logger.warning("embedding with sentence-transformers: %s", error)
                    self._use_fallback = True
                    self.fallback.warm_up()
                    return None, None
                options = onnxruntime.SessionOptions()
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Idle threads sleep instead of spinning: a worker shares its cores with the
                # parsing child and the database, and most calls are a single query.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.intra_op_num_threads = self.threads
                self._session = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                self._inputs = [i.name for i in self._session.get_inputs()]
                tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=self._max_length())
                self._tokenizer = tokenizer
                logger.info("embedding model %s loaded from %s", self.name, path)
            return self._session, self._tokenizer

    def _max_length(self) -> int:
        config = json.loads((self.folder / "sentence_bert_config.json").read_text())
        return int(config.get("max_seq_length") or 512)

    def _exported(self) -> Path:
        """The ONNX file of this model, exported on first use by any process on this machine."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{_slug(self.name)}-{_fingerprint(self.folder)}.onnx"
        if path.is_file():
            return path
        # One process exports; the others wait on the lock and then find the file.
        with open(self.cache_dir / ".export.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                logger.info("exporting embedding model %s to ONNX (once per machine)", self.name)
                _export(self.folder, path, self._max_length())
        return path


def _batches(lengths: list[int]) -> list[list[int]]:
    """Indexes of texts grouped for the model: similar token counts together, since a batch is
    padded to its longest text. A batch ends at BATCH_SIZE texts or when padding would add more
    than a quarter to the tokens it computes (a request and its short parts, say)."""
    batches: list[list[int]] = []
    batch: list[int] = []
    tokens = 0
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        padded = lengths[index] * (len(batch) + 1)  # ascending: this text is the longest yet
        if batch and (len(batch) == BATCH_SIZE or padded > PADDING_ALLOWANCE * (tokens + lengths[index])):
            batches.append(batch)
            batch, tokens = [], 0
        batch.append(index)
        tokens += lengths[index]
    if batch:
        batches.append(batch)
    return batches


def _fingerprint(folder: Path) -> str:
    """Names the export after what it was made from: the weights, the config, the format."""
    digest = hashlib.sha256(f"quire-onnx-{EXPORT_FORMAT}".encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        file = folder / name
        if file.is_file():
            with open(file, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)


def _export(folder: Path, path: Path, max_length: int) -> None:
    """Exports the transformer with torch, checks it against torch on the probes, then publishes."""
    import inspect
    import warnings

    import numpy as np
    import onnxruntime
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state
            return hidden

    probes = tokenizer(PROBES, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    inputs = tuple(probes[name] for name in names)
    wrapper = LastHiddenState().eval()
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".onnx.part", delete=False) as part:
        partial = Path(part.name)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes it treats as constants
            expected = wrapper(*inputs).numpy()
            torch.onnx.export(
                wrapper,
                inputs,
                str(partial),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        _fuse(partial, model.config)
        session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        actual = session.run(None, {name: probes[name].numpy() for name in names})[0]
        mask = probes["attention_mask"].numpy()[..., None]
        cosine = _mean_pooled(actual, mask) * _mean_pooled(expected, mask)
        worst = float(cosine.sum(axis=1).min())
        if not np.isfinite(worst) or worst < MIN_PROBE_COSINE:
            raise ExportFailed(f"the ONNX export of {folder} differs from torch (cosine {worst:.5f})")
        partial.chmod(0o644)  # the temporary file was private; the export is not
        os.replace(partial, path)
    except Exception:
        partial.unlink(missing_ok=True)
        raise


def _fuse(path: Path, config: Any) -> None:
    """Rewrites a BERT-like export with ONNX Runtime's fused operators (attention, skip layer
    norm, embedding layer norm) in place: the same model in fewer, larger kernels, a few
    to 25 % faster on short texts. A model whose graph the optimizer does not recognise is
    left as exported; the probe check after this judges whichever file is kept."""
    if getattr(config, "model_type", None) != "bert":  # the fusions ONNX Runtime has patterns for
        return
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(path),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=0,
        )
        if not optimized.get_fused_operator_statistics().get("Attention"):
            return
        optimized.save_model_to_file(str(path))
    except Exception as error:  # an optimizer that cannot fuse is no reason not to embed
        logger.warning("embedding model kept unfused: %s", error)


def _mean_pooled(hidden: Any, mask: Any) -> Any:
    """Unit-length means of `hidden` (rows, tokens, dims) over the tokens `mask` (rows, tokens, 1)
    marks: sentence-transformers' mean pooling and normalisation."""
    pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    return pooled / ((pooled**2).sum(axis=1, keepdims=True) ** 0.5)
