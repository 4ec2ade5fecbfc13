"""Recommendations as Ray Serve deployments, on the session's real Ray and Serve: batched
answers, a version swapped under load without a request lost, a bad artifact refused while
the old version serves, tenants' own models multiplexed inside one batch, the A/B split's
proportions, and the callers' deadline and popularity fallback."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import numpy as np
import pytest
from ray import serve as rayserve

from actors.recommend import Recommendations
from ml import artifact, synthetic
from ml.artifact import ArtifactError
from ml.data import sequences
from ml.sasrec import SASRecConfig
from ml.train import fit_sasrec
from serve.deployments.recommender import Recommender, app, run
from storage.postgres import open_pool
from tests.conftest import make_settings
from tests.serve.client import Client

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


def popularity_artifact(root, name: str, version: str, items: list[str], counts: list[float]):
    return artifact.save(root, name, version, kind="popularity",
                         weights={"counts": np.asarray(counts, dtype=np.float32)},
                         items=sorted(items), counts=np.asarray(
                             [counts[items.index(i)] for i in sorted(items)]),
                         hyperparameters={}, metrics={}, fingerprint="test")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """v1: popularity over t00..t19; v2: a small SASRec trained on synthetic sessions; acme:
    a tenant's own catalogue (items a00..a04)."""
    root = tmp_path_factory.mktemp("models")
    items = [f"t{n:02d}" for n in range(20)]
    v1 = popularity_artifact(root, "music", "v1", items, [float(20 - n) for n in range(20)])
    seqs = sequences(synthetic.generate(users=120, items=60, seed=3))
    v2 = fit_sasrec(seqs, root, "music", "v2",
                    SASRecConfig(dim=16, heads=1, blocks=1, max_len=20, epochs=2, eval_every=1))
    acme = popularity_artifact(root, "acme", "v1", [f"a{n:02d}" for n in range(5)],
                               [5.0, 4.0, 3.0, 2.0, 1.0])
    return {"v1": str(v1), "v2": str(v2), "acme": str(acme)}


def deploy(name: str, variants: dict[str, str], weights=None, tenants=None, wait_s=0.005,
           checked: bool = True):
    """Run the recommend app as ``name``, with the user_configs a Serve config would set
    (``checked``: through ``run``, which loads the artifacts first)."""
    configs = {v: {"model": {"path": path}, "tenants": tenants or {},
                   "batch_wait_timeout_s": wait_s} for v, path in variants.items()}
    args = {"variants": configs, "weights": weights}
    if checked:
        run(name, args)
    else:
        rayserve.run(app(args), name=name, route_prefix=None)
    return rayserve.get_deployment_handle("Router", app_name=name)


async def status(name: str, variant: str = "a") -> dict:
    return await rayserve.get_deployment_handle(f"recommender_{variant}",
                                                app_name=name).status.remote()


def ask(handle, user: str, history=(), tenant: str = "t", limit: int = 5, exclude=()):
    return handle.remote({"tenant": tenant, "user": user, "history": list(history),
                          "exclude": list(exclude), "limit": limit})


async def test_answers_are_batched_and_a_swap_under_load_loses_no_request(serve_port, models):
    name = f"rec-{uuid.uuid4().hex[:6]}"
    handle = deploy(name, {"a": models["v1"]}, wait_s=0.02)
    first = await asyncio.gather(*(ask(handle, f"u{n}", exclude=["t00"]) for n in range(64)))
    assert {a["model"] for a in first} == {"music:v1"}
    assert [t["track"] for t in first[0]["tracks"]] == ["t01", "t02", "t03", "t04", "t05"]
    assert max((await status(name))["batches"]) > 1

    answers: list[dict] = []
    stop, loaded, swapped = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            answers.extend(await asyncio.gather(*(ask(handle, f"u{n}", ["x"]) for n in
                                                  range(8))))
            loaded.set()
            if answers[-1]["model"] == "music:v2":
                swapped.set()

    running = asyncio.create_task(load())
    await loaded.wait()  # under load before the swap, during it, and after
    await asyncio.to_thread(deploy, name, {"a": models["v2"]})
    async with asyncio.timeout(30):
        await swapped.wait()
    stop.set()
    await running
    models_seen = [a["model"] for a in answers]
    assert set(models_seen) == {"music:v1", "music:v2"}
    swap = models_seen.index("music:v2")
    assert models_seen[swap:] == ["music:v2"] * (len(models_seen) - swap)  # one step, no mix
    assert all(a["tracks"] for a in answers)  # every request answered, by a whole model
    rayserve.delete(name)


async def test_a_bad_artifact_is_a_clear_error_and_the_old_version_keeps_serving(
        serve_port, models, tmp_path):
    name = f"rec-{uuid.uuid4().hex[:6]}"
    with pytest.raises(RuntimeError, match=f"Deploying application {name} failed"):
        await asyncio.to_thread(deploy, name, {"a": str(tmp_path / "nope")}, checked=False)
    shown = rayserve.status().applications[name].deployments["recommender_a"].message
    assert f"ArtifactError: {tmp_path / 'nope'}: no such artifact directory" in shown
    rayserve.delete(name)  # (what `serve status` shows the ML team)

    handle = deploy(name, {"a": models["v1"]})
    (tmp_path / "broken").mkdir()
    with pytest.raises(ArtifactError, match=r"missing weights\.pt"):
        await asyncio.to_thread(deploy, name, {"a": str(tmp_path / "broken")})
    answers = await asyncio.gather(*(ask(handle, f"u{n}") for n in range(20)))
    assert {a["model"] for a in answers} == {"music:v1"}  # the old version kept serving
    rayserve.delete(name)


async def test_a_config_swap_to_a_bad_artifact_keeps_the_loaded_model(models, tmp_path):
    """``serve deploy`` with only a user_config changed reconfigures the running replica in
    place: the replica class itself, outside Serve."""
    replica = Recommender.func_or_class()
    await replica.reconfigure({"model": {"path": models["v1"]}})
    (tmp_path / "broken").mkdir()
    await replica.reconfigure({"model": {"path": str(tmp_path / "broken")}})
    found = await replica.status()
    assert (found["model"], found["error"]) == ("music:v1",
                                               f"{tmp_path / 'broken'}: missing weights.pt")
    await replica.reconfigure({"model": {"path": models["v2"]}})
    assert ((await replica.status())["model"], replica.error) == ("music:v2", None)


async def test_tenants_with_a_model_of_their_own_get_it_inside_one_batch(serve_port, models):
    name = f"rec-{uuid.uuid4().hex[:6]}"
    handle = deploy(name, {"a": models["v1"]}, tenants={"acme": {"path": models["acme"]}},
                    wait_s=0.05)
    mixed = await asyncio.gather(*(ask(handle, f"u{n}", tenant="acme" if n % 2 else "t")
                                   for n in range(40)))
    for n, answer in enumerate(mixed):
        if n % 2:
            assert (answer["model"], answer["tracks"][0]["track"]) == ("acme:v1", "a00")
        else:
            assert (answer["model"], answer["tracks"][0]["track"]) == ("music:v1", "t00")
    assert max((await status(name))["batches"]) > 1  # the two tenants shared batches
    rayserve.delete(name)


async def test_the_ab_split_follows_the_weights_and_keeps_each_user_in_one_variant(
        serve_port, models):
    name = f"rec-{uuid.uuid4().hex[:6]}"
    handle = deploy(name, {"a": models["v1"], "b": models["v2"]}, weights={"a": 70, "b": 30})
    answers = await asyncio.gather(*(ask(handle, f"user-{n}", ["x"]) for n in range(1000)))
    share_b = sum(a["variant"] == "b" for a in answers) / len(answers)
    assert 0.26 <= share_b <= 0.34
    assert {a["model"] for a in answers if a["variant"] == "b"} == {"music:v2"}
    again = await asyncio.gather(*(ask(handle, f"user-{n}", ["x"]) for n in range(100)))
    assert [a["variant"] for a in again] == [a["variant"] for a in answers[:100]]
    stats = await rayserve.get_deployment_handle("Router", app_name=name).stats.remote()
    assert stats["a"]["requests"] + stats["b"]["requests"] == 1100
    rayserve.delete(name)


@rayserve.deployment(ray_actor_options={"num_cpus": 0})
class Stalled:
    """A Router that never answers in time (a model overloaded, a GPU gone)."""

    async def __call__(self, request: dict) -> dict:
        await asyncio.sleep(30)
        return {}


async def test_past_the_deadline_or_with_no_app_the_answer_is_popularity_marked_so(
        serve_port, pg_url, models):
    pool = await open_pool(pg_url, 2)
    await pool.execute(
        "INSERT INTO listening_events (tenant, user_id, track, event, context, at) "
        "SELECT 'pop', 'u' || n, 'hit' || (n % 3), 'play', 'party:p', now() "
        "FROM generate_series(1, 12) n UNION ALL SELECT 'pop', 'u', 'hit0', 'added', "
        "'playlist:x', now()")

    async def db():
        return pool

    name = f"stalled-{uuid.uuid4().hex[:6]}"
    rayserve.run(Stalled.options(name="Router").bind(), name=name, route_prefix=None)
    settings = make_settings(pg_url, RTHUB_RECOMMEND_APP=name, RTHUB_RECOMMEND_DEADLINE_MS="200")
    recs = Recommendations(settings, db)
    started = asyncio.get_running_loop().time()
    late = await recs.ask("pop", "u1", ["x"], ["hit1"], 5)
    # the deadline (and a popularity query), not the 30 s stall: loose for a loaded machine
    assert asyncio.get_running_loop().time() - started < 15
    assert late == {"tracks": [{"track": "hit0", "score": 0.0}, {"track": "hit2", "score": 0.0}],
                    "model": "popularity", "fallback": True, "reason": "deadline"}
    rayserve.delete(name)
    missing = Recommendations(make_settings(pg_url, RTHUB_RECOMMEND_APP="never-deployed"), db)
    answer = await missing.ask("pop", "u1", [], [], 2)
    assert (answer["fallback"], answer["reason"], len(answer["tracks"])) == (True,
                                                                            "unavailable", 2)
    assert (recs.outcomes["deadline"], missing.outcomes["unavailable"]) == (1, 1)
    await pool.close()


async def test_the_hubs_callers_use_the_model_then_fall_back_marked_and_counted(
        deploy, models):
    # a deadline no loaded machine misses (and under the test's own waits, 15 s for an ack):
    # this test wants the model's answers (the deadline's fallback has its own test)
    _, hub = await deploy(RTHUB_RECOMMEND_APP=f"rec-{uuid.uuid4().hex[:6]}",
                          RTHUB_RECOMMEND_DEADLINE_MS="10000")
    await asyncio.to_thread(run, hub.settings.recommend_app, {"variants": {"a": models["v1"]}})
    ana = await Client.connect(hub.url, hub.token("ana"))
    await ana.ask("playlist.create", {"playlist_id": "mix", "name": "Mix"})
    for n, track in enumerate(("t03", "t05")):
        await ana.ask("playlist.op", {"playlist": "mix", "base_version": n, "client_id": "a",
                                      "client_seq": n + 1, "op": {"insert": {
                                          "index": n, "track": {"id": track}, "item_id": track}}})
    suggested = await ana.ask("playlist.suggest", {"playlist": "mix", "limit": 3})
    assert suggested == {"tracks": [{"track": t, "score": pytest.approx(s, abs=1e-3)}
                                    for t, s in (("t00", 20), ("t01", 19), ("t02", 18))],
                         "model": "music:v1", "fallback": False}  # t03, t05 already in it

    await ana.ask("party.create", {"party_id": "fri", "name": "Friday"})
    await ana.ask("party.queue", {"party": "fri", "op": "add", "track": "t07"})
    await ana.ask("party.control", {"party": "fri", "action": "play"})  # the queue runs low
    pushed = (await ana.expect("party.recommendations", topic="party:fri",
                               within=30))["content"]
    assert (pushed["model"], pushed["fallback"], pushed["tracks"][:2]) == ("music:v1", False,
                                                                          ["t00", "t01"])
    async with httpx.AsyncClient(timeout=60) as http:  # longer than the deadline
        asked = await http.post(f"{hub.http}/v1/recommendations", json={"limit": 2},
                                headers={"authorization": f"Bearer {hub.token('ana')}"})
    assert asked.json()["model"] == "music:v1"  # from ana's own listening (t03, t05, t07)

    await asyncio.to_thread(rayserve.delete, hub.settings.recommend_app)  # the model is gone
    async with httpx.AsyncClient(timeout=60) as http:  # a deleted app may cost the deadline
        fallback = await http.post(f"{hub.http}/v1/recommendations",
                                   json={"history": ["t03"], "limit": 5},
                                   headers={"authorization": f"Bearer {hub.token('ana')}"})
        metrics = (await http.get(f"{hub.operator}/metrics")).text
    answer = fallback.json()
    assert (answer["model"], answer["fallback"]) == ("popularity", True)
    assert sorted(t["track"] for t in answer["tracks"]) == ["t03", "t05", "t07"]  # played here
    assert 'rthub_recommendations_total{outcome="model"} 2.0' in metrics
    assert re.search(r'rthub_recommendations_total\{outcome="(error|deadline)"\} 1\.0', metrics)
    await ana.close()
