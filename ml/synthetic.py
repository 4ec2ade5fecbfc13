"""Synthetic listening with the structure real listening has, for tests and benchmarks when no
export is at hand (nothing may be downloaded here).

The catalogue is split into taste clusters (genres). Popularity inside a cluster is Zipf (a
long tail). Each cluster's tracks form albums of 6-14 tracks, and each cluster has editorial
playlists of 12-20 of its best-known tracks, which overlap (as genre playlists do): a track
is on several, and what follows it depends on which playlist is playing. Each user lives mostly
in one cluster, half of them in a second one too, and has a handful of favourites. A user's
listening is sessions, each of one kind (``mix`` weighs them):

- ``album``: an album in order, from its first track (or, less often, from any track);
- ``playlist``: a playlist in order, from its start or from any track;
- ``shuffle``: tracks of the cluster drawn by popularity (no order to learn);
- ``repeat``: the user's heavy rotation, their favourites in any order.

Between a session's tracks the user sometimes queues one of their favourites (then the
session goes on where it was), and sometimes a stray popular track of any cluster slips in
(autoplay, a friend's share; mostly skipped when outside the session's cluster); any track
may be skipped. So there is order to learn, and not only from the last track: albums,
playlists whose next track the last one alone does not tell, sessions resumed after a
queued favourite. There is also a long tail for popularity, personal taste, and skips for
the positive-signal filter to remove. Everything is drawn from one ``random.Random(seed)``.

The defaults (half the sessions are playlists, overlapping playlists, ~75 tracks a cluster)
were tuned so the ordered structure is dense enough for a small transformer to learn at
test scale. With sparser patterns (many rarely played albums, playlists that barely
overlap) item-kNN, which learns a transition from a single co-occurrence, keeps up with it.
"""

from __future__ import annotations

import random
from bisect import bisect
from itertools import accumulate

from ml.data import Interaction, write_csv

__all__ = ["MIX", "generate", "write_csv"]

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0
MIX = {"album": 0.25, "playlist": 0.50, "shuffle": 0.10, "repeat": 0.15}


class _Zipf:
    """Draws an index in ``range(n)`` with weight 1 / (rank + 1) ** exponent."""

    def __init__(self, n: int, exponent: float) -> None:
        self.cumulative = list(accumulate(1.0 / (r + 1) ** exponent for r in range(n)))

    def draw(self, rng: random.Random) -> int:
        point = rng.random() * self.cumulative[-1]
        return min(bisect(self.cumulative, point), len(self.cumulative) - 1)


class _Catalogue:
    def __init__(self, rng: random.Random, items: int, clusters: int, playlists: int,
                 exponent: float) -> None:
        ids = [f"t{n:05d}" for n in range(items)]
        rng.shuffle(ids)
        self.tracks = [ids[c::clusters] for c in range(clusters)]  # by popularity rank
        self.cluster_of = {t: c for c, tracks in enumerate(self.tracks) for t in tracks}
        self.zipf = [_Zipf(len(t), exponent) for t in self.tracks]
        self.albums: list[list[list[str]]] = []
        self.album_of: dict[str, tuple[int, int]] = {}  # track -> (album number, position)
        self.playlists: list[list[list[str]]] = []
        self.playlist_pick = _Zipf(playlists, 0.5)
        for c, tracks in enumerate(self.tracks):
            order = tracks[:]
            rng.shuffle(order)  # albums mix popular and obscure tracks
            albums: list[list[str]] = []
            while order:
                size = rng.randint(6, 14)
                albums.append(order[:size])
                order = order[size:]
            for a, album in enumerate(albums):
                for p, track in enumerate(album):
                    self.album_of[track] = (a, p)
            self.albums.append(albums)
            self.playlists.append([self._playlist(rng, c) for _ in range(playlists)])

    def _playlist(self, rng: random.Random, cluster: int) -> list[str]:
        """12-20 tracks from the best-known third of a cluster, in any order: a track is on
        several playlists, followed by a different track on each."""
        known = self.tracks[cluster][:max(20, len(self.tracks[cluster]) // 3)]
        return rng.sample(known, min(rng.randint(12, 20), len(known)))

    def popular(self, rng: random.Random, cluster: int) -> str:
        return self.tracks[cluster][self.zipf[cluster].draw(rng)]


def _session(rng: random.Random, cat: _Catalogue, kind: str, cluster: int, length: int,
             favourites: list[str]) -> list[str]:
    if kind == "repeat":
        return [rng.choice(favourites) for _ in range(length)]
    if kind == "album":
        a, p = cat.album_of[cat.popular(rng, cluster)]
        album = cat.albums[cluster][a]
        start = 0 if rng.random() < 0.6 else p
        return album[start:start + length]
    if kind == "playlist":
        playlist = cat.playlists[cluster][cat.playlist_pick.draw(rng)]
        start = 0 if rng.random() < 0.7 else rng.randrange(len(playlist))
        return playlist[start:start + length]
    return [cat.popular(rng, cluster) for _ in range(length)]


def _listen(rng: random.Random, out: list[Interaction], user: str, track: str, ts: float,
            skip_rate: float) -> float:
    """One listen's events (a skip, or a play that is mostly completed and sometimes sought
    in, added, later removed); returns when the next one starts."""
    if rng.random() < skip_rate:
        out.append(Interaction(user, track, ts, "skip"))
        return ts + 5 + rng.random() * 25
    out.append(Interaction(user, track, ts, "play"))
    if rng.random() < 0.05:
        out.append(Interaction(user, track, ts + 30, "seek"))
    end = ts + 120 + rng.random() * 180
    if rng.random() < 0.9:
        out.append(Interaction(user, track, end, "completed"))
    if rng.random() < 0.03:
        out.append(Interaction(user, track, end + 1, "added"))
        if rng.random() < 0.2:
            out.append(Interaction(user, track, end + 2 * DAY, "removed"))
    return end


def generate(users: int = 1000, items: int = 300, clusters: int | None = None,
             playlists: int = 8, sessions: tuple[int, int] = (3, 6),
             session_length: tuple[int, int] = (4, 14), favourites: tuple[int, int] = (4, 12),
             mix: dict[str, float] | None = None, skip_rate: float = 0.05,
             stray_rate: float = 0.05, queue_rate: float = 0.06, exponent: float = 1.0,
             seed: int = 0) -> list[Interaction]:
    """Listening events of ``users`` over ``items`` tracks, ordered by time; the same
    arguments give the same events. ``clusters`` defaults to one per 75 items; ``playlists``
    is per cluster; ``sessions``, ``session_length`` and ``favourites`` (how many a user
    has) are inclusive ranges. Before each session track, ``stray_rate`` is the chance of a
    stray track and ``queue_rate`` of a favourite queued in between."""
    clusters = clusters or max(1, items // 75)
    if items < clusters * 24:
        raise ValueError(f"{items} items are too few for {clusters} clusters (24 each at least)")
    kinds, weights = list(mix or MIX), list((mix or MIX).values())
    rng = random.Random(seed)
    cat = _Catalogue(rng, items, clusters, playlists, exponent)
    cluster_pick = _Zipf(clusters, 0.5)
    out: list[Interaction] = []
    for u in range(users):
        user = f"u{u:05d}"
        home = cluster_pick.draw(rng)
        second = cluster_pick.draw(rng) if rng.random() < 0.5 else home
        ts = START + rng.random() * 30 * DAY
        rotation = [cat.popular(rng, home) if rng.random() < 0.5  # half are hits,
                    else rng.choice(cat.tracks[home])  # half anything of their genre
                    for _ in range(rng.randint(*favourites))]
        for _ in range(rng.randint(*sessions)):
            cluster = home if rng.random() < 0.75 else second
            kind = rng.choices(kinds, weights)[0]
            tracks = _session(rng, cat, kind, cluster, rng.randint(*session_length), rotation)
            for track in tracks:
                roll = rng.random()
                if roll < stray_rate:  # autoplay, a friend's share: mostly not for them
                    stray = cat.popular(rng, rng.randrange(clusters))
                    ts = _listen(rng, out, user, stray, ts,
                                 0.8 if cat.cluster_of[stray] != cluster else skip_rate)
                elif roll < stray_rate + queue_rate:  # one of theirs, queued in between
                    ts = _listen(rng, out, user, rng.choice(rotation), ts, skip_rate)
                ts = _listen(rng, out, user, track, ts, skip_rate)
            ts += DAY * (0.2 + rng.random() * 3)
    out.sort(key=lambda i: i.ts)
    return out
