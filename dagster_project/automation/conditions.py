"""Declarative automation: evaluation and publication follow each new variant.

`compressed_model[m|r]` materializes (watch sensor, nightly schedule, backfill or a click) → one
run of `evaluation_report[m|r]` + its blocking checks + `hub_release[m|r]` + `registry_entry[m|r]`
(publication steps run only when the checks passed) → `model_comparison[m]`. The automation condition sensor in
`definitions.py` evaluates these conditions.
"""

from __future__ import annotations

from dagster import AssetSelection, AutomationCondition


def _follow(updated: AutomationCondition) -> AutomationCondition:
    """`AutomationCondition.eager()` with a chosen notion of "a dependency updated"."""
    return (
        (AutomationCondition.newly_missing() | updated).since_last_handled()
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    )


# A new variant gets evaluated. A new base evaluation alone does not re-evaluate old variants:
# their own compressed_model run (stale base revision → new variant) brings them up to date.
evaluation_condition = _follow(
    AutomationCondition.any_deps_updated().ignore(AssetSelection.assets("base_evaluation"))
).with_label("eager (new variant)")

# Publication rides in the same run as the evaluation it depends on: evaluation_report's blocking
# checks (approval) then stop hub_release and registry_entry inside that run when the variant is
# not approved. (Dagster's check-status conditions are not per partition, so a condition such as
# `all_deps_blocking_checks_passed()` cannot tell one variant's approval from another's.)
# The publication assets also refuse anything unapproved themselves (NotApproved).
publication_condition = (
    AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
    & ~AutomationCondition.in_progress()
).with_label("with its evaluation")

# The comparison of one base model spans every recipe partition, most of which never exist
# (recipes nobody asked for): it must not wait for missing variants, and has nothing to show
# before the first variant is evaluated.
comparison_condition = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("eager (any variant updated)")
