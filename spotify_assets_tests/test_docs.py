"""The README and .env.example document every configuration variable there is."""

from pathlib import Path

from spotify_assets.settings import VARIABLES

ROOT = Path(__file__).resolve().parent.parent


def test_every_variable_is_in_the_readme_table_and_env_example():
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for name, (default, _) in VARIABLES.items():
        shown = f"`{default}`" if default else "(unset)"
        assert f"| `{name}` | {shown} |" in readme, name
        assert f"\n{name}=" in example, name
