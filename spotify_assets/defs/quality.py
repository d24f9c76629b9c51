"""Expectations as Dagster asset checks: one check per rule, its result carrying the counts."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from spotify_assets.transforms.expectations import EXPECTATIONS, Action, Outcome


def check_specs(asset: AssetKey, entity: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            name=rule.name,
            asset=asset,
            description=f"{rule.action.value}: {rule.constraint}",
        )
        for rule in EXPECTATIONS[entity]
    ]


def combine(parts: list[list[Outcome]]) -> list[Outcome]:
    """Outcomes of several windows of one run, summed per rule."""
    if not parts:
        return []
    combined = []
    for outcomes in zip(*parts, strict=True):
        samples = sorted({k for o in outcomes for k in o.sample_failing_keys})[:5]
        combined.append(
            Outcome(
                outcomes[0].expectation,
                sum(o.passed_records for o in outcomes),
                sum(o.failed_records for o in outcomes),
                samples,
            )
        )
    return combined


def check_results(outcomes: list[Outcome]) -> list[AssetCheckResult]:
    """`warn` and `drop` violations are WARN (the rows were kept or quarantined: handled);
    a `fail` rule never gets here with failures, the materialisation stopped before writing."""
    return [
        AssetCheckResult(
            check_name=o.expectation.name,
            passed=o.failed_records == 0,
            severity=AssetCheckSeverity.ERROR
            if o.expectation.action is Action.FAIL
            else AssetCheckSeverity.WARN,
            metadata={
                "action": o.expectation.action.value,
                "constraint": o.expectation.constraint,
                "passed_records": o.passed_records,
                "failed_records": o.failed_records,
                "dropped_records": o.dropped_records,
                "sample_failing_keys": str(o.sample_failing_keys),
            },
        )
        for o in outcomes
    ]


def dropped_by_rule(outcomes: list[Outcome]) -> dict[str, int]:
    return {o.expectation.name: o.dropped_records for o in outcomes if o.dropped_records}
