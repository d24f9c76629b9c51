"""Raw Spotify answers of a day -> rows for the silver tables (albums, tracks, artists).

Rows are flat: every value is a string (lists and objects as JSON), so that silver's contracts
type them and move what does not fit, or what they do not declare, to `_rescued_data`. Fields
Spotify removes come out missing (NULL in silver); fields it adds come out as extra columns.
"""

from __future__ import annotations

import json
import re
from typing import Any

ALBUM_PATH = re.compile(r"/albums/([0-9A-Za-z]{22})/tracks")
KNOWN_NESTED = {"artists", "images", "tracks", "external_urls", "external_ids", "album",
                "followers", "available_markets", "copyrights"}  # fmt: skip


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _extra(obj: dict, known: set[str]) -> dict[str, str | None]:
    """Top-level fields this module does not map: passed on for the contract to judge."""
    return {k: _text(v) for k, v in obj.items() if k not in known and k not in KNOWN_NESTED}


def _albums(responses: list[dict]) -> list[dict]:
    found: dict[str, dict] = {}
    for response in responses:
        body = response["body"]
        for album in body.get("albums", []) if isinstance(body.get("albums"), list) else []:
            if album:
                found[album["id"]] = album
        if body.get("type") == "album":
            found[body["id"]] = body
    return list(found.values())


def rows(document: dict, seen_on: str) -> dict[str, list[dict[str, str | None]]]:
    """Albums, tracks and artists of one day's raw document, one row per id."""
    responses = document["responses"]
    albums = _albums(responses)
    tracks: dict[str, tuple[dict, str]] = {}
    for album in albums:
        for track in (album.get("tracks") or {}).get("items", []):
            tracks[track["id"]] = (track, album["id"])
    for response in responses:  # later pages of album tracks
        match = ALBUM_PATH.search(response["request"]["path"])
        if match and isinstance(response["body"].get("items"), list):
            for track in response["body"]["items"]:
                tracks[track["id"]] = (track, match.group(1))
    artists: dict[str, dict] = {}
    for response in responses:
        body = response["body"]
        if body.get("type") == "artist":  # /artists/{id}
            artists[body["id"]] = body
        elif body.get("type") != "album" and isinstance(body.get("artists"), list):  # /artists
            artists.update((a["id"], a) for a in body["artists"] if a)

    album_known = {"id", "name", "album_type", "release_date", "release_date_precision",
                   "total_tracks", "label", "popularity", "type", "uri", "href"}  # fmt: skip
    track_known = {"id", "name", "duration_ms", "explicit", "track_number", "disc_number",
                   "popularity", "type", "uri", "href", "is_local", "preview_url"}  # fmt: skip
    artist_known = {"id", "name", "genres", "popularity", "type", "uri", "href"}
    return {
        "spotify_albums": [
            {
                "album_id": a["id"],
                "album_name": a.get("name"),
                "album_type": a.get("album_type"),
                "release_date": a.get("release_date"),
                "release_date_precision": a.get("release_date_precision"),
                "total_tracks": _text(a.get("total_tracks")),
                "label": a.get("label"),
                "popularity": _text(a.get("popularity")),
                "artist_ids": _text([x["id"] for x in a.get("artists", [])]),
                "seen_on": seen_on,
                **_extra(a, album_known),
            }
            for a in albums
        ],
        "spotify_tracks": [
            {
                "track_id": t["id"],
                "track_name": t.get("name"),
                "album_id": album_id,
                "artist_ids": _text([x["id"] for x in t.get("artists", [])]),
                "artist_names": _text([x.get("name") for x in t.get("artists", [])]),
                "duration_ms": _text(t.get("duration_ms")),
                "explicit": _text(t.get("explicit")),
                "track_number": _text(t.get("track_number")),
                "seen_on": seen_on,
                **_extra(t, track_known),
            }
            for t, album_id in tracks.values()
        ],
        "spotify_artists": [
            {
                "artist_id": a["id"],
                "artist_name": a.get("name"),
                # Sorted: Spotify's order is not an attribute, and must not open a version.
                "genres": _text(sorted(a["genres"])) if isinstance(a.get("genres"), list) else None,
                "popularity": _text(a.get("popularity")),
                "followers": _text((a.get("followers") or {}).get("total")),
                "seen_on": seen_on,
                **_extra(a, artist_known),
            }
            for a in artists.values()
        ],
    }
