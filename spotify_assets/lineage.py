"""Column-level lineage of rendered SQL, for the UI (`dagster/column_lineage`).

Parsed from the statement itself (sqlglot), so it cannot drift from what runs.
"""

from __future__ import annotations

from dagster import AssetKey, TableColumnDep, TableColumnLineage
from sqlglot import exp
from sqlglot.lineage import lineage


def column_lineage(
    sql: str, views: dict[str, AssetKey], schema: dict[str, dict[str, str]]
) -> TableColumnLineage:
    """For every output column of `sql`, the asset columns it is computed from. `views` maps
    the relations the statement reads to assets; `schema` gives their columns and types."""
    deps: dict[str, list[TableColumnDep]] = {}
    for column, node in lineage(None, sql, schema=schema, dialect="spark").items():
        found = []
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            asset = views.get(leaf.source.name)
            if asset is not None:  # a leaf is named like view."column"
                name = exp.to_column(leaf.name, dialect="spark").name
                found.append(TableColumnDep(asset_key=asset, column_name=name))
        deps[column] = sorted(set(found), key=lambda d: (d.asset_key.to_string(), d.column_name))
    return TableColumnLineage(deps_by_column=deps)
