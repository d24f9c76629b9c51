"""The day's new releases from the Spotify Web API, with every raw response kept.

Extended quota: `/browse/new-releases`, then the batch gets `/albums?ids=` (20 per call) and
`/artists?ids=` (50 per call). Development Mode (2026): `/search?q=tag:new&type=album` (pages of
10, offsets up to 1000), then one `/albums/{id}` and one `/artists/{id}` per item. Album tracks
beyond the first page come from `/albums/{id}/tracks`. The client picks the path and falls back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

from spotify_assets.spotify.client import (
    SEARCH_LIMIT_DEVELOPMENT,
    SEARCH_MAX_OFFSET,
    SpotifyClient,
)

ALBUM_BATCH = 20
ARTIST_BATCH = 50


@dataclass
class DailyReleases:
    albums: list[dict] = field(default_factory=list)  # full album objects, tracks included
    artists: list[dict] = field(default_factory=list)  # full artist objects
    responses: list[dict] = field(default_factory=list)  # {"request": ..., "body": ...}, in order
    mode: str = ""  # "extended" or "development": the path that answered


def fetch_new_releases(client: SpotifyClient, max_albums: int = 200) -> DailyReleases:
    day = DailyReleases()

    def keep(path: str, params: dict, body: dict) -> None:
        # A copy: album pages are merged into the bodies later; bronze keeps what was sent.
        day.responses.append(
            {"request": {"path": path, "params": params}, "body": copy.deepcopy(body)}
        )

    client.on_response = keep
    try:
        _fetch(client, day, max_albums)
    finally:
        client.on_response = None
    return day


def _fetch(api: SpotifyClient, day: DailyReleases, max_albums: int) -> None:
    def extended_albums() -> list[dict]:
        found = _take(api.pages("/browse/new-releases", {"limit": 50}, "albums"), max_albums)
        day.mode = "extended"
        return found

    def development_albums() -> list[dict]:
        params = {"q": "tag:new", "type": "album", "limit": SEARCH_LIMIT_DEVELOPMENT}
        found = _take(api.pages("/search", params, "albums", SEARCH_MAX_OFFSET), max_albums)
        day.mode = "development"
        return found

    listed = api.either(extended_albums, development_albums)
    ids = list(dict.fromkeys(a["id"] for a in listed if a.get("id")))
    day.albums = api.either(
        lambda: _batched(api, "/albums", ids, ALBUM_BATCH, "albums"),
        lambda: [api.get(f"/albums/{i}") for i in ids],
    )
    for album in day.albums:
        tracks = album.get("tracks") or {}
        if tracks.get("next"):  # the album object carries the first page only
            rest = api.pages(tracks["next"], {})
            tracks["items"] = [*tracks.get("items", []), *rest]
            tracks["next"] = None
    artist_ids = list(
        dict.fromkeys(
            artist["id"]
            for album in day.albums
            for track in (album.get("tracks") or {}).get("items", [])
            for artist in track.get("artists", [])
            if artist.get("id")
        )
    )
    day.artists = api.either(
        lambda: _batched(api, "/artists", artist_ids, ARTIST_BATCH, "artists"),
        lambda: [api.get(f"/artists/{i}") for i in artist_ids],
    )


def _take(items: Iterator[dict], limit: int) -> list[dict]:
    """At most `limit` items, without asking for a page beyond them."""
    return list(islice(items, limit))


def _batched(api: SpotifyClient, path: str, ids: list[str], size: int, key: str) -> list[dict]:
    found: list[dict] = []
    for start in range(0, len(ids), size):
        body = api.get(path, {"ids": ",".join(ids[start : start + size])})
        found.extend(x for x in body.get(key, []) if x)
    return found
