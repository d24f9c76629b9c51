"""A faithful local stand-in for the Spotify Web API (tests and the demo only).

A real HTTP server on loopback that follows the documented contract as it stands in 2026: the
Client Credentials token endpoint (Basic auth, form body, `expires_in`), Bearer tokens that expire
(401 "The access token expired"), paging objects with absolute `next` URLs, 22-character base62
ids, search `tag:new` with Development Mode's page limit of 10 and offset limit of 1000, and the
endpoints and fields Development Mode no longer has (403; no `popularity`, `label`,
`available_markets`, `followers`). Faults are scripted per path: a 429 with `Retry-After`, a quota
429, a 5xx, a dropped field or an added one.
"""

from __future__ import annotations

import base64
import json
import random
import string
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BASE62 = string.digits + string.ascii_letters
GENRES = ["pop", "rock", "hip hop", "jazz", "electronic", "classical", "k-pop", "bollywood"]
DEVELOPMENT_ONLY_MISSING = {"popularity", "label", "available_markets", "followers"}


def spotify_id(rng: random.Random) -> str:
    return "".join(rng.choice(BASE62) for _ in range(22))


@dataclass
class Fault:
    path: str  # the request path it applies to (prefix match)
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeSpotify:
    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"
    mode: str = "development"  # or "extended"
    token_lifetime: int = 3600
    albums: int = 23
    seed: int = 7
    release_date: str = "2026-11-26"
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    removed_fields: set[str] = field(default_factory=set)  # dropped from every object
    added_fields: dict[str, Any] = field(default_factory=dict)  # added to every object
    tokens: dict[str, float] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.artist_objects: dict[str, dict] = {}
        self.album_objects: dict[str, dict] = {}
        pool = []
        for n in range(max(3, self.albums // 2)):
            artist_id = spotify_id(rng)
            pool.append(artist_id)
            self.artist_objects[artist_id] = {
                "id": artist_id,
                "name": f"Artist {n}",
                "type": "artist",
                "uri": f"spotify:artist:{artist_id}",
                "genres": rng.sample(GENRES, rng.randint(0, 2)),
                "images": [],
                "popularity": rng.randint(0, 100),
                "followers": {"href": None, "total": rng.randint(0, 10**6)},
            }
        for n in range(self.albums):
            album_id = spotify_id(rng)
            artists = rng.sample(pool, rng.randint(1, 2))
            tracks = []
            for t in range(rng.choice([1, 3, 12, 55])):  # some need a second page of tracks
                track_id = spotify_id(rng)
                tracks.append({
                    "id": track_id, "name": f"Track {n}.{t}", "type": "track",
                    "uri": f"spotify:track:{track_id}", "track_number": t + 1,
                    "duration_ms": rng.randint(90_000, 420_000), "explicit": rng.random() < 0.2,
                    "artists": [self._artist_ref(a) for a in artists],
                })  # fmt: skip
            self.album_objects[album_id] = {
                "id": album_id, "name": f"Album {n}", "type": "album",
                "album_type": rng.choice(["album", "single", "compilation"]),
                "uri": f"spotify:album:{album_id}", "release_date": self.release_date,
                "release_date_precision": "day", "total_tracks": len(tracks),
                "artists": [self._artist_ref(a) for a in artists], "images": [],
                "label": f"Label {n % 4}", "popularity": rng.randint(0, 100),
                "available_markets": ["SE", "US"], "_tracks": tracks,
            }  # fmt: skip

    def _artist_ref(self, artist_id: str) -> dict:
        a = self.artist_objects[artist_id]
        return {"id": artist_id, "name": a["name"], "type": "artist", "uri": a["uri"]}

    # -- serving ----------------------------------------------------------------------------

    def start(self) -> FakeSpotify:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/token"

    def fail(self, path: str, status: int, times: int = 1, **kwargs: Any) -> None:
        self.faults.append(Fault(path, status, times, **kwargs))

    def expire_tokens(self) -> None:
        self.tokens = {token: 0.0 for token in self.tokens}

    def count(self, path_prefix: str) -> int:
        return sum(1 for _, path, _ in self.requests if path.startswith(path_prefix))

    # -- the API ----------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict, headers: dict, form: dict):
        self.requests.append((method, path, query))
        for fault in self.faults:
            if fault.times > 0 and path.startswith(fault.path):
                fault.times -= 1
                return fault.status, fault.body or _error(fault.status, "scripted"), fault.headers
        if path == "/api/token" and method == "POST":
            return self._token(headers, form)
        if not path.startswith("/v1/"):
            return 404, _error(404, "Service not found"), {}
        token = headers.get("authorization", "").removeprefix("Bearer ")
        expiry = self.tokens.get(token)
        if expiry is None:
            return 401, _error(401, "Invalid access token"), {}
        if time.monotonic() >= expiry:
            return 401, _error(401, "The access token expired"), {}
        return self._api(path.removeprefix("/v1"), query)

    def _token(self, headers: dict, form: dict):
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}, {}
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "unsupported_grant_type"}, {}
        token = spotify_id(random.Random()) + spotify_id(random.Random())
        self.tokens[token] = time.monotonic() + self.token_lifetime
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        return 200, body, {}

    def _api(self, path: str, query: dict):
        development = self.mode == "development"
        q = {k: v[0] for k, v in query.items()}
        parts = path.strip("/").split("/")
        closed = path in ("/browse/new-releases", "/albums", "/artists", "/tracks")
        if development and closed:
            return 403, _error(403, "This endpoint is not available in Development Mode"), {}
        if path == "/browse/new-releases":
            return 200, {"albums": self._page(path, q, self._simplified_albums(), 50)}, {}
        if path == "/search":
            if q.get("type") != "album" or "tag:new" not in q.get("q", ""):
                return 400, _error(400, "Only tag:new album searches are faked"), {}
            limit = int(q.get("limit", 20))
            if development and limit > 10:
                return 400, _error(400, "Invalid limit"), {}
            if int(q.get("offset", 0)) > 1000:
                return 400, _error(400, "Invalid offset"), {}
            page = self._page(path, q, self._simplified_albums(), 50, extra={"type": "album"})
            return 200, {"albums": page}, {}
        if path == "/albums":
            return 200, {"albums": [self._album(i) for i in q.get("ids", "").split(",")]}, {}
        if path == "/artists":
            return 200, {"artists": [self._artist(i) for i in q.get("ids", "").split(",")]}, {}
        if len(parts) == 2 and parts[0] == "albums" and parts[1] in self.album_objects:
            return 200, self._album(parts[1]), {}
        if len(parts) == 3 and parts[0] == "albums" and parts[2] == "tracks":
            album = self.album_objects.get(parts[1])
            if album is None:
                return 404, _error(404, "Non existing id"), {}
            return 200, self._page(path, q, album["_tracks"], 50, shaped=self._shape), {}
        if len(parts) == 2 and parts[0] == "artists" and parts[1] in self.artist_objects:
            return 200, self._artist(parts[1]), {}
        return 404, _error(404, "Non existing id"), {}

    def _shape(self, obj: dict) -> dict:
        hidden = set(self.removed_fields)
        if self.mode == "development":
            hidden |= DEVELOPMENT_ONLY_MISSING
        shaped = {k: v for k, v in obj.items() if k not in hidden and not k.startswith("_")}
        return {**shaped, **self.added_fields}

    def _simplified_albums(self) -> list[dict]:
        keep = ("id", "name", "type", "album_type", "uri", "release_date",
                "release_date_precision", "total_tracks", "artists", "images")  # fmt: skip
        return [{k: a[k] for k in keep} for a in self.album_objects.values()]

    def _album(self, album_id: str) -> dict | None:
        album = self.album_objects.get(album_id)
        if album is None:
            return None
        tracks = self._page(f"/albums/{album_id}/tracks", {}, album["_tracks"], 50, self._shape)
        return {**self._shape(album), "tracks": tracks}

    def _artist(self, artist_id: str) -> dict | None:
        artist = self.artist_objects.get(artist_id)
        return self._shape(artist) if artist is not None else None

    def _page(self, path, q, items, default_limit, shaped=None, extra=None) -> dict:
        limit, offset = int(q.get("limit", default_limit)), int(q.get("offset", 0))
        chunk = items[offset : offset + limit]
        args = "".join(f"{k}={v}&" for k, v in {**(extra or {}), **q}.items() if k not in
                       ("limit", "offset"))  # fmt: skip
        base = f"{self.api_url}{path}?{args}"
        more = offset + limit < len(items)
        return {
            "href": f"{base}offset={offset}&limit={limit}",
            "items": [shaped(i) if shaped else i for i in chunk],
            "limit": limit,
            "next": f"{base}offset={offset + limit}&limit={limit}" if more else None,
            "offset": offset,
            "previous": None if offset == 0 else f"{base}offset={max(offset - limit, 0)}",
            "total": len(items),
        }


def _error(status: int, message: str) -> dict:
    return {"error": {"status": status, "message": message}}


def _handler(fake: FakeSpotify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode()) if length else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = fake.answer(
                method, split.path, parse_qs(split.query), headers, form
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    return Handler
