"""Recommendation deployments: a ``Recommender`` per model version, and the ``Router``
that splits users between versions by a hash of the user id (an A/B test).

The ML team ships a version by editing a Serve config (``cluster/recommend.serve.yaml``)
and running ``serve deploy``: a changed ``user_config`` reaches ``reconfigure`` on the
running replicas, which load the new artifact beside the old one and swap the reference in
one step, so no request is dropped and none is answered by a half-loaded model. An artifact
that does not load is logged and reported by ``status()``; the old version keeps serving.
From Python, ``run()`` loads every artifact before Serve sees the change (``serve.run``
replaces replicas, and a replacement that fails leaves the deployment down).

Requests are batched (``@serve.batch``) and tenants with a model of their own get it by
``@serve.multiplexed``. Ray had a bug where a batched, multiplexed method sent every request
of a batch to the first request's model: here each request names its tenant, and a batch is
split by tenant before any model sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Histogram

log = logging.getLogger(__name__)

MAX_BATCH = 32
BATCH_WAIT_S = 0.005


def load_model(path: str) -> Any:
    """An artifact (``ml.artifact``); torch is imported in the replica only, with one
    thread: a replica is one CPU, and batching, not intra-op threads, makes it fast."""
    import torch

    from ml.artifact import load

    torch.set_num_threads(1)
    return load(path)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
class Recommender:
    """One model version. ``user_config``: ``{"model": {"path"}, "tenants": {tenant:
    {"path"}}, "max_batch_size", "batch_wait_timeout_s"}``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.path: str | None = None
        self.error: str | None = None
        self.tenants: dict[str, str] = {}
        self.batches: deque[int] = deque(maxlen=1000)  # sizes of recent batches

    async def reconfigure(self, config: dict[str, Any]) -> None:
        path = str(config["model"]["path"])
        if path != self.path:
            try:
                model = await asyncio.to_thread(load_model, path)
            except Exception as exc:
                if self.model is None:
                    raise  # nothing to keep serving: the deployment fails, saying why
                self.error = str(exc) if path in str(exc) else f"{path}: {exc}"
                log.error("model not swapped, %s:%s keeps serving: %s", self.model.name,
                          self.model.version, self.error)
            else:
                self.model, self.path, self.error = model, path, None
                log.info("serving model %s:%s from %s", model.name, model.version, path)
        self.tenants = {t: str(spec["path"]) for t, spec in config.get("tenants", {}).items()}
        self.recommend.set_max_batch_size(int(config.get("max_batch_size", MAX_BATCH)))
        self.recommend.set_batch_wait_timeout_s(
            float(config.get("batch_wait_timeout_s", BATCH_WAIT_S)))

    @serve.multiplexed(max_num_models_per_replica=4)
    async def tenant_model(self, tenant: str) -> Any:
        return await asyncio.to_thread(load_model, self.tenants[tenant])

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.recommend(request)

    async def many(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A batch the Router made: one call for many requests."""
        return await self._answer(requests)

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def recommend(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self._answer(requests)

    async def _answer(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``{tenant, history: [track], exclude: [track], limit}`` each -> ``{tracks:
        [{track, score}], model, fallback: false}``."""
        self.batches.append(len(requests))
        groups: dict[str | None, list[int]] = {}
        for n, request in enumerate(requests):
            tenant = request.get("tenant")
            groups.setdefault(tenant if tenant in self.tenants else None, []).append(n)
        answers: list[dict[str, Any]] = [{} for _ in requests]
        for tenant, indexes in groups.items():
            model = self.model if tenant is None else await self.tenant_model(tenant)
            wanted = [requests[n] for n in indexes]
            found = await asyncio.to_thread(
                model.recommend, [list(r.get("history", ())) for r in wanted],
                max(int(r.get("limit", 10)) for r in wanted),
                [set(r.get("exclude", ())) for r in wanted])
            for n, request, items in zip(indexes, wanted, found, strict=True):
                answers[n] = {"tracks": [{"track": t, "score": round(float(s), 6)}
                                         for t, s in items[:int(request.get("limit", 10))]],
                              "model": f"{model.name}:{model.version}", "fallback": False}
        return answers

    async def status(self) -> dict[str, Any]:
        """What serves, the last swap's error, and recent batch sizes."""
        return {"model": f"{self.model.name}:{self.model.version}", "path": self.path,
                "error": self.error, "tenants": sorted(self.tenants),
                "batches": list(self.batches)}


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1024)
class Router:
    """Splits users between model versions: ``user_config`` ``{"weights": {variant:
    weight}, "salt"}``; a user stays in one variant while the weights and salt stay."""

    def __init__(self, **variants: DeploymentHandle) -> None:
        self.handles = variants
        self.weights: list[tuple[str, int]] = [(next(iter(variants)), 1)]
        self.salt = "rthub"
        self.counts: dict[str, int] = dict.fromkeys(variants, 0)
        self.latency_ms: dict[str, deque[float]] = {v: deque(maxlen=2000) for v in variants}
        # exported by Ray's metrics agent (Prometheus), the same figures as ``stats()``
        self.requests = Counter("rthub_recommend_variant_requests",
                                "Recommendations answered, by A/B variant", ("variant",))
        self.latency = Histogram("rthub_recommend_variant_latency_ms",
                                 "Router to model and back, by A/B variant",
                                 boundaries=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
                                 tag_keys=("variant",))

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.route.set_max_batch_size(int(config.get("max_batch_size", MAX_BATCH)))
        self.route.set_batch_wait_timeout_s(
            float(config.get("batch_wait_timeout_s", BATCH_WAIT_S)))
        weights = config.get("weights") or {next(iter(self.handles)): 1}
        unknown = set(weights) - set(self.handles)
        if unknown or not all(isinstance(w, int) and w >= 0 for w in weights.values()) or (
                sum(weights.values()) == 0):
            raise ValueError(f"weights must be non-negative integers over the variants "
                             f"{sorted(self.handles)}, not all 0; got {weights}")
        self.weights = sorted(weights.items())
        self.salt = str(config.get("salt", "rthub"))

    def variant_of(self, user: str) -> str:
        """Stable per user: a hash of (salt, user) against the cumulative weights."""
        total = sum(w for _, w in self.weights)
        point = int.from_bytes(hashlib.sha256(f"{self.salt}\x1f{user}".encode()).digest()[:8],
                               "big") % total
        for variant, weight in self.weights:
            if point < weight:
                return variant
            point -= weight
        raise AssertionError("weights cover every point")

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.route(request)

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S,
                 max_concurrent_batches=8)  # the next batch leaves while one is answered
    async def route(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Requests arriving together go on to each variant as one call (``many``): the hop
        to the model costs one Ray call per batch, not per request."""
        groups: dict[str, list[int]] = {}
        for n, request in enumerate(requests):
            groups.setdefault(self.variant_of(str(request.get("user", ""))), []).append(n)
        answers: list[dict[str, Any]] = [{} for _ in requests]

        async def send(variant: str, indexes: list[int]) -> None:
            batch = [requests[n] for n in indexes]
            tenants = [str(r["tenant"]) for r in batch if r.get("tenant")]
            handle = self.handles[variant]
            if tenants:  # a replica holding the commonest tenant's model, if any has it
                handle = handle.options(multiplexed_model_id=max(set(tenants),
                                                                 key=tenants.count))
            start = time.perf_counter()
            found = await handle.many.remote(batch)
            elapsed_ms = (time.perf_counter() - start) * 1000
            self.counts[variant] += len(batch)
            self.latency_ms[variant].extend([elapsed_ms] * len(batch))
            self.requests.inc(len(batch), tags={"variant": variant})
            self.latency.observe(elapsed_ms, tags={"variant": variant})
            for n, answer in zip(indexes, found, strict=True):
                answers[n] = {**answer, "variant": variant}

        await asyncio.gather(*(send(v, idx) for v, idx in groups.items()))
        return answers

    async def stats(self) -> dict[str, Any]:
        """Per variant: requests answered and their p50 / p99 in milliseconds."""
        out = {}
        for variant, count in self.counts.items():
            times = sorted(self.latency_ms[variant])
            out[variant] = {"requests": count,
                            "p50_ms": times[len(times) // 2] if times else None,
                            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))]
                            if times else None}
        return out


def app(args: dict[str, Any]) -> Any:
    """The Serve application (``import_path: serve.deployments.recommender:app``):
    ``args`` ``{"variants": {name: artifact path, or a Recommender user_config},
    "weights": {name: weight}, "router": {max_batch_size, batch_wait_timeout_s}}``; each
    variant is a ``Recommender`` deployment named ``recommender_<name>``, whose
    ``user_config`` a Serve config may override."""
    variants = args.get("variants") or {}
    if not variants:
        raise ValueError("the recommend app needs at least one variant: {name: artifact path}")
    bound = {name: Recommender.options(
        name=f"recommender_{name}",
        user_config=spec if isinstance(spec, dict) else {"model": {"path": str(spec)}}).bind()
        for name, spec in variants.items()}
    weights = args.get("weights") or dict.fromkeys(variants, 1)
    return Router.options(user_config={"weights": weights, **(args.get("router") or {})}
                          ).bind(**bound)


def run(name: str, args: dict[str, Any]) -> None:
    """Deploy (or update) the app ``name``, each artifact loaded here first: a path that
    does not load raises ``ArtifactError`` naming it, and the running version keeps serving
    (Serve would replace the replicas and leave the deployment down)."""
    for spec in (args.get("variants") or {}).values():
        config = spec if isinstance(spec, dict) else {"model": {"path": spec}}
        for path in [config["model"]["path"],
                     *(t["path"] for t in config.get("tenants", {}).values())]:
            load_model(str(path))
    serve.run(app(args), name=name, route_prefix=None)


def models_root(settings: Any) -> Path:
    """Where artifacts live: ``RTHUB_MODELS_DIR``, else ``RTHUB_DATA_DIR/models``."""
    return Path(settings.models_dir) if settings.models_dir else Path(settings.data_dir) / "models"


def newest_artifact(root: Path) -> Path | None:
    """The most recently written ``<name>/<version>/`` holding a model (``config.json``)."""
    found = [p.parent for p in root.glob("*/*/config.json")] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def deploy(settings: Any) -> Path | None:
    """Serve the newest artifact as ``RTHUB_RECOMMEND_APP`` (``rthub up``); None when there
    is none (every answer is then the popularity fallback)."""
    artifact = newest_artifact(models_root(settings))
    if artifact is None:
        return None
    run(settings.recommend_app, {"variants": {"a": str(artifact)}})
    return artifact
