"""The project's SQL templates (Jinja2), rendered by `spotify_assets.sql`; a package so that the
wheel deployed to Databricks carries them."""
