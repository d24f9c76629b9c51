"""Bronze rows -> a silver table's contract: typed, cleaned, evolved, and nothing silently lost.

Auto Loader's rescued-data semantics on plain Spark: a value that does not fit its declared type,
a column whose name differs from a contract column only in case, and (in `rescue` mode) a column
the contract does not know, go to `_rescued_data` as a JSON object of the original values plus
`_file_path`, the bronze data file the row came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from spotify_assets.catalog import Layer, TableName, table_name
from spotify_assets.transforms.contracts import RESCUED, Case, Contract, Evolution
from spotify_assets.transforms.schema_history import ACCEPT_COMMAND, SchemaHistory

INTERNAL = ("_ingested_at",)  # bronze's own columns, carried through
SOURCE_FILE = "_source_file"


class NewColumnsRejected(RuntimeError):
    """A `failOnNewColumns` table met columns its contract does not declare."""


@dataclass
class Conformed:
    frame: DataFrame
    columns_added: list[str] = field(default_factory=list)
    columns_rescued: list[str] = field(default_factory=list)  # whole columns sent to rescue
    columns_ignored: list[str] = field(default_factory=list)
    columns_missing: list[str] = field(default_factory=list)  # in the contract, not in bronze


def with_source_file(bronze: DataFrame) -> DataFrame:
    """Bronze as read from Delta, with the data file of every row (for `_file_path`)."""
    return bronze.select("*", F.col("_metadata.file_path").alias(SOURCE_FILE))


def _clean(column: Column, is_string: bool, case: Case | None) -> Column:
    if not is_string:
        return column
    cleaned = F.nullif(F.trim(column), F.lit(""))
    if case is not None:
        cleaned = getattr(F, case.value)(cleaned)
    return cleaned


def conform(
    bronze: DataFrame,
    contract: Contract,
    history: SchemaHistory,
    table: TableName | None = None,
) -> Conformed:
    """Map `bronze` (read through `with_source_file`) onto the contract and the table's schema
    history, evolving the history as the contract's evolution mode says. `table` names the
    silver table in messages (default: its name in the local catalog)."""
    table = table or table_name(Layer.SILVER, contract.entity)
    types = {f.name: f.dataType for f in bronze.schema.fields}
    data = [c for c in bronze.columns if c not in (*INTERNAL, SOURCE_FILE, RESCUED)]
    history.follow_contract(contract)
    history.settle_types({c: types[c].simpleString() for c in data})
    declared = {n: t for n, t in history.columns(contract)}
    by_lower = {n.lower(): n for n in declared}
    result = Conformed(bronze)

    unknown = [c for c in data if c not in declared and c.lower() not in by_lower]
    case_variants = [c for c in data if c not in declared and c.lower() in by_lower]
    if unknown and contract.evolution is Evolution.FAIL_ON_NEW_COLUMNS:
        accept = ACCEPT_COMMAND.format(entity=contract.entity, columns=" ".join(unknown))
        raise NewColumnsRejected(
            f"{table}: bronze has new column(s) {unknown} that the contract "
            f"does not declare, and its evolution mode is {Evolution.FAIL_ON_NEW_COLUMNS}. "
            f"Accept them with `{accept}`, "
            "or declare them in spotify_assets/transforms/contracts.py."
        )
    if unknown and contract.evolution is Evolution.ADD_NEW_COLUMNS:
        history.add({c: types[c].simpleString() for c in unknown}, "columns added")
        declared.update({c: types[c].simpleString() for c in unknown})
        result.columns_added = unknown
    elif unknown and contract.evolution is Evolution.RESCUE:
        result.columns_rescued = unknown
    elif unknown:
        result.columns_ignored = unknown
    result.columns_rescued = [*result.columns_rescued, *case_variants]

    selected: list[Column] = []
    rescue: list[Column] = []
    for name, declared_type in declared.items():
        if name not in types:
            result.columns_missing.append(name)
            selected.append(F.lit(None).cast(declared_type or "string").alias(name))
            continue
        raw = F.col(f"`{name}`")
        is_string = isinstance(types[name], StringType)
        value = _clean(raw, is_string, contract.case.get(name))
        target = declared_type or types[name].simpleString()
        if target != types[name].simpleString():
            typed = value.try_cast(target)
            rescue.append(F.when(value.isNotNull() & typed.isNull(), _entry(name, raw)))
            value = typed
        selected.append(value.alias(name))
    for name in result.columns_rescued:
        rescue.append(F.when(F.col(f"`{name}`").isNotNull(), _entry(name, F.col(f"`{name}`"))))

    # One projection of bronze: the rescue expressions read the raw values, not the typed ones.
    frame = bronze.select(
        *selected,
        _rescued(rescue, RESCUED in bronze.columns).alias(RESCUED),
        *_ignored_flags(result),
        *INTERNAL,
    )
    for name, expression in contract.derived:
        frame = frame.withColumn(name, F.expr(expression))
    derived = [name for name, _ in contract.derived]
    internal = [c for c in frame.columns if c not in declared and c not in derived]
    result.frame = frame.select(*(f"`{c}`" for c in (*declared, *derived, *internal)))
    return result


def _rescued(entries: list[Column], from_bronze: bool) -> Column:
    """A JSON object of the rescued values (bronze's own, for values the source could not type,
    then silver's) and the row's bronze file; NULL when none."""
    parts = []
    if from_bronze:
        landed = F.from_json(F.col(RESCUED), "map<string,string>")
        parts.append(F.coalesce(F.map_entries(landed), F.array().cast(ENTRIES)))
    if entries:
        parts.append(F.filter(F.array(*entries), lambda e: e.isNotNull()))
    if not parts:
        return F.lit(None).cast("string")
    present = F.concat(*parts) if len(parts) > 1 else parts[0]
    location = F.array(_entry("_file_path", F.col(SOURCE_FILE)))
    return F.when(F.size(present) > 0, F.to_json(F.map_from_entries(F.concat(present, location))))


ENTRIES = "array<struct<key:string,value:string>>"


IGNORED_VALUES = "_ignored_values"


def _ignored_flags(result: Conformed) -> list[Column]:
    """How many values of ignored columns each row drops (counted, as `none` promises)."""
    if not result.columns_ignored:
        return []
    flags = [F.col(f"`{c}`").isNotNull().cast("int") for c in result.columns_ignored]
    total = flags[0]
    for flag in flags[1:]:
        total = total + flag
    return [total.alias(IGNORED_VALUES)]


def _entry(name: str, value: Column) -> Column:
    return F.struct(F.lit(name).alias("key"), value.cast("string").alias("value"))
