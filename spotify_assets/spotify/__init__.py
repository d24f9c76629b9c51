"""The Spotify Web API source: a client for the 2026 API rules and the daily new releases."""
