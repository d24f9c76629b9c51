"""The Spotify client against a real local HTTP server that follows the API's contract."""

from __future__ import annotations

import pytest

from spotify_assets.spotify.client import (
    Capability,
    EndpointUnavailable,
    QuotaExceeded,
    Retry,
    SpotifyClient,
    SpotifyError,
)
from spotify_assets.spotify.releases import fetch_new_releases
from spotify_assets_tests.fake_spotify import FakeSpotify


@pytest.fixture
def fake():
    server = FakeSpotify().start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_for(fake, capability=Capability.AUTO, secret=None, **retry) -> SpotifyClient:
    clock = Clock()
    return SpotifyClient(
        fake.client_id,
        secret or fake.client_secret,
        capability=capability,
        api_url=fake.api_url,
        token_url=fake.token_url,
        retry=Retry(**retry),
        sleep=clock.sleep,
        clock=clock,
    )


def an_artist(fake) -> str:
    return next(iter(fake.artist_objects))


def test_a_token_is_cached_renewed_before_expiry_and_after_a_401(fake):
    client = client_for(fake)
    for _ in range(3):
        client.get(f"/artists/{an_artist(fake)}")
    assert fake.count("/api/token") == 1
    client.clock.now += 3600 - 59  # within a minute of expiry: renewed before asking
    client.get(f"/artists/{an_artist(fake)}")
    assert fake.count("/api/token") == 2
    assert client.stats["/artists/{id} 401"] == 0
    fake.expire_tokens()  # revoked or expired early: one 401, a new token, the same request
    client.get(f"/artists/{an_artist(fake)}")
    assert fake.count("/api/token") == 3
    assert client.stats["/artists/{id} 401"] == 1
    assert client.stats["/artists/{id} 200"] == 5


def test_a_429_waits_retry_after_within_a_bounded_total_wait(fake):
    client = client_for(fake, max_total_wait_seconds=10)
    fake.fail("/v1/artists/", 429, times=2, headers={"Retry-After": "3"})
    assert client.get(f"/artists/{an_artist(fake)}")["type"] == "artist"
    assert client.sleep.__self__.slept == [3.0, 3.0]
    assert client.stats["/artists/{id} 429"] == 2
    # A Retry-After of 0 (or junk) waits a second: the client never spins.
    fake.fail("/v1/artists/", 429, times=1, headers={"Retry-After": "0"})
    client.get(f"/artists/{an_artist(fake)}")
    assert client.sleep.__self__.slept == [3.0, 3.0, 1.0]
    fake.fail("/v1/artists/", 429, times=1, headers={"Retry-After": "5"})
    with pytest.raises(SpotifyError) as error:
        client.get(f"/artists/{an_artist(fake)}")
    assert str(error.value) == (
        "Spotify /artists/{id}: rate limited or failing beyond the allowed total wait of 10 s "
        "(already waited 7 s, next wait 5 s); try again later"
    )
    patient = client_for(fake, max_total_wait_seconds=1000)
    fake.fail("/v1/artists/", 429, times=25, headers={"Retry-After": "nan"})
    with pytest.raises(SpotifyError) as error:
        patient.get(f"/artists/{an_artist(fake)}")
    assert str(error.value) == (
        "Spotify /artists/{id}: still rate limited after 20 waits; try again later"
    )


def test_quota_exhaustion_stops_at_once_with_a_clear_message(fake):
    client = client_for(fake)
    quota = {"error": {"status": 429, "reason": "QUOTA_EXCEEDED"}}
    fake.fail("/v1/artists/", 429, times=1, body=quota, headers={"Retry-After": "1"})
    with pytest.raises(QuotaExceeded) as error:
        client.get(f"/artists/{an_artist(fake)}")
    assert str(error.value) == (
        "Spotify /artists/{id}: the app's quota is exhausted (429 QUOTA_EXCEEDED); runs resume "
        "when Spotify restores it, or apply for extended quota"
    )
    assert client.sleep.__self__.slept == []


def test_server_errors_and_unreachable_hosts_are_retried_with_backoff(fake):
    client = client_for(fake)
    fake.fail("/v1/artists/", 503, times=2)
    assert client.get(f"/artists/{an_artist(fake)}")["type"] == "artist"
    assert client.sleep.__self__.slept == [0.5, 1.0]
    fake.fail("/v1/artists/", 500, times=5)
    with pytest.raises(SpotifyError) as error:
        client.get(f"/artists/{an_artist(fake)}")
    assert str(error.value) == "Spotify /artists/{id}: HTTP 500 (scripted)"
    assert client.stats["/artists/{id} 500"] == 5

    gone = SpotifyClient("id", "secret", api_url="http://127.0.0.1:9/v1",
                         token_url="http://127.0.0.1:9/api/token", retry=Retry(attempts=3),
                         sleep=lambda s: None)  # fmt: skip
    with pytest.raises(SpotifyError) as error:
        gone.get("/artists/x")
    assert str(error.value) == (
        "Spotify token: ConnectionError on all 3 attempts (127.0.0.1:9 unreachable?)"
    )


def test_wrong_credentials_are_named_without_showing_the_secret(fake):
    client = client_for(fake, secret="wrong-secret-value")
    with pytest.raises(SpotifyError) as error:
        client.get(f"/artists/{an_artist(fake)}")
    assert str(error.value) == (
        "Spotify refused the client credentials (HTTP 400, Invalid client); check "
        "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"
    )
    assert "wrong-secret-value" not in repr(client)


def test_development_mode_pages_through_search_albums_tracks_and_artists(fake):
    client = client_for(fake)
    day = fetch_new_releases(client)
    assert day.mode == "development"
    assert client.stats["fallbacks to development mode"] == 1
    assert fake.count("/v1/browse/new-releases") == 1  # tried once, never again
    assert fake.count("/v1/search") == 3  # 23 albums, 10 per page
    assert [a["id"] for a in day.albums] == list(fake.album_objects)
    for album in day.albums:
        assert len(album["tracks"]["items"]) == album["total_tracks"]  # second pages followed
        assert "popularity" not in album and "label" not in album  # removed in 2026
        assert len(album["id"]) == 22 and album["id"].isalnum()
    expected_artists = {
        a["id"] for album in day.albums for t in album["tracks"]["items"] for a in t["artists"]
    }
    assert {a["id"] for a in day.artists} == expected_artists
    assert fake.count("/v1/artists/") == len(expected_artists)  # one get each
    # Every answer is kept as it came, in order: the first is the refused-free search page.
    assert day.responses[0]["request"] == {
        "path": "/search",
        "params": {"q": "tag:new", "type": "album", "limit": 10},
    }
    assert len(day.responses) == len(fake.requests) - 2  # all but the token and the 403
    # Kept as sent: an album's first page of tracks still says where the next one is.
    long = next(a for a in day.albums if a["total_tracks"] > 50)
    sent = next(r["body"] for r in day.responses if r["body"].get("id") == long["id"])
    assert len(sent["tracks"]["items"]) == 50 and sent["tracks"]["next"] is not None


def test_extended_quota_uses_new_releases_and_batch_gets(fake):
    fake.mode = "extended"
    client = client_for(fake)
    day = fetch_new_releases(client)
    assert day.mode == "extended"
    assert client.stats["fallbacks to development mode"] == 0
    assert fake.count("/v1/browse/new-releases") == 1
    assert fake.count("/v1/search") == 0
    assert sum(1 for m, p, q in fake.requests if p == "/v1/albums") == 2  # 23 ids, 20 a call
    assert sum(1 for m, p, q in fake.requests if p == "/v1/artists") == 1
    assert all("popularity" in a for a in day.artists)


def test_extended_only_refuses_clearly_when_the_app_is_in_development_mode(fake):
    client = client_for(fake, capability=Capability.EXTENDED)
    with pytest.raises(EndpointUnavailable) as error:
        fetch_new_releases(client)
    assert str(error.value) == (
        "Spotify answered HTTP 403 for /browse/new-releases: This endpoint is not available in "
        "Development Mode"
    )


def test_fields_removed_or_added_by_the_api_pass_through_unchanged(fake):
    fake.removed_fields = {"genres"}
    fake.added_fields = {"new_field": {"nested": True}}
    day = fetch_new_releases(client_for(fake))
    artist = day.artists[0]
    assert "genres" not in artist and artist["new_field"] == {"nested": True}


def test_no_secret_or_token_in_messages_stats_or_repr(fake):
    client = client_for(fake)
    fake.fail("/v1/artists/", 500, times=5)
    with pytest.raises(SpotifyError) as error:
        client.get(f"/artists/{an_artist(fake)}")
    token = next(iter(fake.tokens))
    said = " ".join([str(error.value), repr(client), repr(dict(client.stats))])
    assert fake.client_secret not in said and token not in said
