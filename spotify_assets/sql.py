"""The SQL-writing machine: Spark SQL rendered from the templates in `jinja_templates/`.

A template receives small declarative parameter sets (table roles, keys, column lists) and may
print only what this module vouches for: identifiers through `ident` (validated, back-quoted),
temporary views through `view`, Delta paths through `delta_table`, and value placeholders through
`param` (`:name`, bound by Spark as a SQL parameter). Printing anything else (a data value, a raw
string) is an error, so a template cannot be made to render SQL from data. Undefined names are
errors too (StrictUndefined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from spotify_assets.catalog import validate_identifier


class Sql(str):
    """A fragment this module produced, safe to print into a statement."""


class UnsafeTemplateValue(jinja2.TemplateError):
    pass


def ident(name: str) -> Sql:
    return Sql(f"`{validate_identifier(name, 'identifier')}`")


def view(name: str) -> Sql:
    return Sql(validate_identifier(name, "view name"))


def param(name: str) -> Sql:
    return Sql(f":{validate_identifier(name, 'parameter name')}")


def delta_table(path: str) -> Sql:
    """A Delta table by path: delta.`/lake/silver/x`. Paths come from configuration."""
    if not isinstance(path, str) or not path or any(c in path for c in "`\n\r\0"):
        raise ValueError(f"invalid Delta table path {path!r}")
    return Sql(f"delta.`{path}`")


def _finalize(value: Any) -> Any:
    if isinstance(value, Sql):
        return value
    raise UnsafeTemplateValue(
        f"a template printed {value!r} directly; print identifiers with `| ident`, views with "
        "`| view`, Delta paths with `| delta_table`, and values as parameters with `| param`"
    )


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("jinja_templates", ""),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(ident=ident, view=view, param=param, delta_table=delta_table)
    return env


@dataclass(frozen=True)
class Statement:
    """Rendered SQL and the values for its `:name` parameters."""

    template: str
    text: str
    args: dict[str, Any] = field(default_factory=dict)

    def run(self, spark):
        return spark.sql(self.text, args=self.args or None)


def render(template: str, args: dict[str, Any] | None = None, **context: Any) -> Statement:
    """Render `template` with the declarative `context`; `args` are the SQL parameter values."""
    text = environment().get_template(template).render(**context)
    return Statement(template, text, dict(args or {}))
