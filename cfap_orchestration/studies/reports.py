"""Reports over the results tables: one workbook, a CSV per sheet, a markdown summary.

The sheets, and what a missing input gives (an empty sheet carries a note saying what to
materialize; a table that exists but breaks its contract is an error naming the columns):

| sheet | source | input missing |
|---|---|---|
| contents | every sheet below | never missing |
| lift_results | causal.lift_analysis_results, latest row per estimate | note |
| mmm_roas | lift_analysis_results, media_mix_model* `roas` rows | note |
| mmm_budget_plan | causal.mmm_budget_plan | note |
| attribution | lift_analysis_results, Shapley and Markov rows | note |
| data_quality | `quality.assess` over raw, staging and marts | note naming the tables |
| truth_scorecard (sandbox) | causal.estimates_vs_truth | note |

No sheet fails for a missing table: each says what it is waiting for, so the workbook is
useful from the first materialization (data quality) and fills in as estimators run.
Timestamps are exported in UTC without an offset (Excel has no time zones).
No Dagster imports; `defs/report/` wires these into assets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cfap_orchestration.artifacts import ArtifactPath, write_artifact
from cfap_orchestration.quality import DAILY_SOURCES, assess
from cfap_orchestration.studies.journeys import MODEL_NAMES as ATTRIBUTION_MODEL_NAMES
from cfap_orchestration.studies.results import LIFT_ANALYSIS_RESULTS
from cfap_orchestration.studies.truth import COMPARISON_COLUMNS
from cfap_orchestration.warehouse import Warehouse

LIFT = f"{LIFT_ANALYSIS_RESULTS.schema}.{LIFT_ANALYSIS_RESULTS.name}"
BUDGET_PLAN = ("causal", "mmm_budget_plan")
SCORECARD = ("causal", "estimates_vs_truth")
MMM_PREFIX = "media_mix_model"
ATTRIBUTION_MODELS = tuple(ATTRIBUTION_MODEL_NAMES.values())
ESTIMATE_KEY = ["model_name", "subject", "metric"]
QUALITY_INPUTS = (
    *(("raw", t) for t in DAILY_SOURCES),
    ("staging", "stg_shopify__orders"),
    ("marts", "fct_marketing_daily"),
    ("marts", "fct_orders_daily"),
)
BUDGET_COLUMNS = (
    "channel",
    "current_spend",
    "optimal_spend",
    "expected_contribution",
    "current_contribution",
)
SCORECARD_REQUIRED = ("model_name", "subject", "metric", "estimate", "true_value", "covered")
EXCEL_CELL_LIMIT = 32_767  # characters Excel keeps in one cell
EXCEL_ILLEGAL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # as openpyxl refuses
EXCEL_SHEET_NAME_LIMIT = 31
FORBIDDEN_IN_SHEET_NAMES = set("[]:*?/\\")
WIDTH_BOUNDS = (8, 60)
PREVIEW_HIDDEN = {"run_id", "code_version", "model_version", "params", "diagnostics"}


@dataclass(frozen=True)
class Sheet:
    """One sheet of the workbook (and one CSV): its rows, where they come from, what they
    mean, and a note for the reader (why it is empty, or a headline)."""

    name: str
    description: str
    source: str
    frame: pd.DataFrame
    note: str | None = None

    def __post_init__(self) -> None:
        if (
            not self.name
            or len(self.name) > EXCEL_SHEET_NAME_LIMIT
            or FORBIDDEN_IN_SHEET_NAMES & set(self.name)
        ):
            raise ValueError(
                f"sheet name {self.name!r} is not a valid Excel sheet name: 1 to "
                f"{EXCEL_SHEET_NAME_LIMIT} characters, none of []:*?/\\"
            )

    @property
    def rows(self) -> int:
        return len(self.frame)

    def table(self) -> pd.DataFrame:
        """What the sheet shows: its rows, or its note alone when it has none."""
        if self.frame.empty and (self.note or len(self.frame.columns) == 0):
            return pd.DataFrame({"note": [self.note or "no rows"]})
        return self.frame


# --- Reading the results tables -------------------------------------------------------


def _require_columns(frame: pd.DataFrame, table: str, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{table} lacks columns {missing}: the table does not match its contract "
            "(re-run the asset that writes it)"
        )


def _read(warehouse: Warehouse, schema: str, table: str) -> pd.DataFrame | None:
    """The whole table, or None when it does not exist yet."""
    if not warehouse.table_exists(schema, table):
        return None
    return warehouse.query(f"SELECT * FROM {warehouse.relation(schema, table)}")


def read_lift_results(warehouse: Warehouse) -> pd.DataFrame | None:
    """The latest row of each estimate (model, subject, metric) in lift_analysis_results,
    in model order; None when no estimator has written the table yet."""
    table = LIFT_ANALYSIS_RESULTS
    frame = _read(warehouse, table.schema, table.name)
    if frame is None:
        return None
    _require_columns(frame, LIFT, table.column_names)
    frame = frame.assign(created_at=_utc(frame["created_at"]))
    latest = frame.sort_values("created_at", kind="stable").drop_duplicates(
        ESTIMATE_KEY, keep="last"
    )
    return latest.sort_values(ESTIMATE_KEY).reset_index(drop=True)


def read_truth_scorecard(warehouse: Warehouse) -> pd.DataFrame | None:
    """The sandbox's scorecard, or None when `causal/estimates_vs_truth` has not run."""
    frame = _read(warehouse, *SCORECARD)
    if frame is not None:
        _require_columns(frame, ".".join(SCORECARD), SCORECARD_REQUIRED)
    return frame


def _utc(column: pd.Series) -> pd.Series:
    """Timestamps in UTC with the offset dropped (Excel cannot store one)."""
    return pd.to_datetime(column, utc=True).dt.tz_localize(None)


def _json_value(text: Any, key: str) -> Any:
    """`key` of a JSON object held as text; None when absent or not JSON."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value.get(key) if isinstance(value, dict) else None


def _with_period(frame: pd.DataFrame) -> pd.DataFrame:
    """The first and last day an estimate covers, from its params, where it records them."""
    return frame.assign(
        period_start=[_json_value(p, "start_date") for p in frame["params"]],
        period_end=[_json_value(p, "end_date") for p in frame["params"]],
    )


# --- The sheets -----------------------------------------------------------------------

NOT_MEASURED = f"{LIFT} does not exist yet: no measurement asset has run."
# What was measured and the estimate first, then the period; the rest of the results
# contract after them, so a column the contract gains reaches the sheet too.
LIFT_LEADING_COLUMNS = [
    "model_name",
    "subject",
    "metric",
    "effect",
    "ci_lower",
    "ci_upper",
    "p_value",
    "effect_relative",
    "std_error",
    "incremental_value",
    "incremental_roas",
    "n_obs",
    "period_start",
    "period_end",
    "created_at",
]
LIFT_COLUMNS = LIFT_LEADING_COLUMNS + [
    c for c in LIFT_ANALYSIS_RESULTS.column_names if c not in LIFT_LEADING_COLUMNS
]


def lift_results_sheet(results: pd.DataFrame | None) -> Sheet:
    description = (
        "Every causal estimate, latest run of each: what was measured (subject, metric), the "
        "effect with its interval and p-value, and the revenue and ROAS it implies."
    )
    if results is None:
        return Sheet("lift_results", description, LIFT, pd.DataFrame(), NOT_MEASURED)
    frame = _with_period(results)[LIFT_COLUMNS]
    note = None if len(frame) else f"{LIFT} has no rows yet."
    return Sheet("lift_results", description, LIFT, frame, note)


def mmm_roas_sheet(results: pd.DataFrame | None) -> Sheet:
    description = (
        "Revenue each paid channel caused per unit of spend, from the media-mix model: "
        "posterior mean with its 94% HDI, calibrated by the geo tests and not."
    )
    source = f"{LIFT} ({MMM_PREFIX}*, metric roas)"
    if results is None:
        return Sheet("mmm_roas", description, source, pd.DataFrame(), NOT_MEASURED)
    rows = results[results["model_name"].str.startswith(MMM_PREFIX) & (results["metric"] == "roas")]
    frame = _with_period(rows).rename(
        columns={
            "subject": "channel",
            "effect": "roas",
            "ci_lower": "hdi_low",
            "ci_upper": "hdi_high",
            "incremental_value": "incremental_revenue",
            "n_obs": "weeks",
        }
    )
    frame.insert(0, "variant", [_mmm_variant(m) for m in frame["model_name"]])
    columns = ["variant", "model_name", "channel", "roas", "hdi_low", "hdi_high"]
    columns += ["incremental_revenue", "weeks", "period_start", "period_end", "created_at"]
    note = None if len(frame) else "No media-mix ROAS yet: materialize causal/mmm_channel_roas."
    return Sheet("mmm_roas", description, source, frame[columns].reset_index(drop=True), note)


def _mmm_variant(model_name: str) -> str:
    """media_mix_model is the experiment-calibrated fit; a suffix names any other."""
    return model_name.removeprefix(MMM_PREFIX).lstrip("_") or "calibrated"


def budget_plan_sheet(warehouse: Warehouse) -> Sheet:
    description = (
        "The weekly paid budget split that maximises expected revenue under the media-mix "
        "model's response curves, beside the current split: spend and revenue per week."
    )
    source = ".".join(BUDGET_PLAN)
    plan = _read(warehouse, *BUDGET_PLAN)
    if plan is None:
        waiting = f"{source} does not exist yet: materialize causal/mmm_budget_plan."
        return Sheet("mmm_budget_plan", description, source, pd.DataFrame(), waiting)
    _require_columns(plan, source, BUDGET_COLUMNS)
    frame = plan.assign(
        spend_change=plan["optimal_spend"] - plan["current_spend"],
        contribution_gain=plan["expected_contribution"] - plan["current_contribution"],
    )
    first = ["model_name", "channel", "current_spend", "optimal_spend", "spend_change"]
    first += ["current_contribution", "expected_contribution", "contribution_gain"]
    ordered = [c for c in first if c in frame.columns]
    frame = frame[ordered + [c for c in frame.columns if c not in ordered]]
    note = None if len(frame) else f"{source} has no rows."
    return Sheet("mmm_budget_plan", description, source, frame, note)


def attribution_sheet(results: pd.DataFrame | None) -> Sheet:
    description = (
        "Conversions credited to each channel over visitor journeys by Shapley value and by "
        "Markov removal effect, with bootstrap intervals and each channel's share."
    )
    source = f"{LIFT} ({', '.join(ATTRIBUTION_MODELS)})"
    if results is None:
        return Sheet("attribution", description, source, pd.DataFrame(), NOT_MEASURED)
    rows = _with_period(results[results["model_name"].isin(ATTRIBUTION_MODELS)])
    frame = pd.DataFrame(
        {
            "channel": rows["subject"],
            "method": rows["model_name"].str.removesuffix("_attribution"),
            "model_name": rows["model_name"],
            "conversions": rows["effect"],
            "ci_lower": rows["ci_lower"],
            "ci_upper": rows["ci_upper"],
            "share": rows["effect_relative"],
            "attributed_value": [_json_value(d, "attributed_value") for d in rows["diagnostics"]],
            "journeys": rows["n_obs"],
            "period_start": rows["period_start"],
            "period_end": rows["period_end"],
            "created_at": rows["created_at"],
        }
    ).sort_values(["channel", "method"])
    note = None
    if frame.empty:
        note = "No attribution yet: materialize causal/shapley_attribution and markov_attribution."
    return Sheet("attribution", description, source, frame.reset_index(drop=True), note)


def data_quality_sheet(warehouse: Warehouse) -> Sheet:
    description = (
        "How far to trust the numbers: each source's share of days delivered, and whether "
        "the marts still agree with what the platforms sent (score 1.0 is perfect)."
    )
    source = "quality.assess over raw, staging and marts"
    missing = [f"{s}.{t}" for s, t in QUALITY_INPUTS if not warehouse.table_exists(s, t)]
    if missing:
        waiting = f"Not assessed: {', '.join(missing)} missing (run the ingest and dbt assets)."
        return Sheet("data_quality", description, source, pd.DataFrame(), waiting)
    report = assess(warehouse)
    note = (
        f"completeness {report.completeness:.4f}, accuracy {report.accuracy:.4f}, "
        f"{len(report.issues)} issue(s)"
    )
    return Sheet("data_quality", description, source, report.to_frame(), note)


def truth_sheet(scorecard: pd.DataFrame | None) -> Sheet:
    description = (
        "Sandbox only: each estimate beside the true value the simulated brand was built "
        "with, the error, and whether the interval covers it."
    )
    source = ".".join(SCORECARD)
    if scorecard is None:
        waiting = f"{source} does not exist yet: materialize causal/estimates_vs_truth."
        return Sheet("truth_scorecard", description, source, pd.DataFrame(), waiting)
    ordered = [c for c in COMPARISON_COLUMNS if c in scorecard.columns]
    frame = scorecard[ordered + [c for c in scorecard.columns if c not in ordered]]
    note = None if len(frame) else f"{source} has no rows: no estimate had a truth to score."
    return Sheet("truth_scorecard", description, source, frame, note)


def contents_sheet(sheets: Sequence[Sheet], generated_at: datetime) -> Sheet:
    frame = pd.DataFrame(
        {
            "sheet": [s.name for s in sheets],
            "rows": [s.rows for s in sheets],
            "description": [s.description for s in sheets],
            "source": [s.source for s in sheets],
            "note": [s.note or "" for s in sheets],
        }
    )
    stamp = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Sheet(
        "contents",
        "What each sheet holds, where it comes from, and its row count.",
        "this workbook",
        frame,
        f"generated {stamp}",
    )


def report_sheets(
    warehouse: Warehouse, *, sandbox: bool, generated_at: datetime | None = None
) -> list[Sheet]:
    """Every sheet of the results workbook, the contents first; the truth scorecard only
    with the sandbox (a real brand has no known truth)."""
    results = read_lift_results(warehouse)
    sheets = [
        lift_results_sheet(results),
        mmm_roas_sheet(results),
        budget_plan_sheet(warehouse),
        attribution_sheet(results),
        data_quality_sheet(warehouse),
    ]
    if sandbox:
        sheets.append(truth_sheet(read_truth_scorecard(warehouse)))
    return [contents_sheet(sheets, generated_at or datetime.now(UTC)), *sheets]


# --- Writing --------------------------------------------------------------------------


def _check_names(sheets: Sequence[Sheet]) -> None:
    if not sheets:
        raise ValueError("no sheets to write")
    names = [s.name.lower() for s in sheets]  # Excel compares sheet names case-blind
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"sheet names must be unique, repeated: {repeated}")


def _export_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Time-zone-aware timestamps as naive UTC: the same instants in CSV and Excel."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = _utc(out[column])
    return out


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """`_export_ready`, with text Excel cannot hold fixed (the CSV has it as it is): control
    characters removed, text longer than a cell keeps cut."""
    out = _export_ready(frame)
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(_fit_cell)
    return out


def _fit_cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = EXCEL_ILLEGAL_CHARACTERS.sub("", value)
    if len(value) > EXCEL_CELL_LIMIT:
        return value[: EXCEL_CELL_LIMIT - 1] + "…"
    return value


def _width(frame: pd.DataFrame, column: Any) -> int:
    """Characters to show of a column: its header or its longest value, within bounds."""
    values = frame[column].head(500)
    shown = [len(f"{v:.6g}") if isinstance(v, float) else len(str(v)) for v in values]
    longest = max([len(str(column)), *shown])
    low, high = WIDTH_BOUNDS
    return min(high, max(low, longest + 2))


def _write_excel(sheets: Sequence[Sheet], target: Path) -> None:
    from openpyxl.utils import get_column_letter

    with pd.ExcelWriter(target, engine="openpyxl") as writer:
        for sheet in sheets:
            table = _excel_ready(sheet.table())
            table.to_excel(writer, sheet_name=sheet.name, index=False)
            worksheet = writer.sheets[sheet.name]
            worksheet.freeze_panes = "A2"
            worksheet.auto_filter.ref = worksheet.dimensions
            for i, column in enumerate(table.columns, start=1):
                worksheet.column_dimensions[get_column_letter(i)].width = _width(table, column)


def write_workbook(sheets: Sequence[Sheet], path: ArtifactPath) -> ArtifactPath:
    """One .xlsx with a sheet each, header row frozen and filterable, columns sized to fit;
    replaces `path` atomically."""
    if path.suffix != ".xlsx":
        raise ValueError(f"workbook path must end in .xlsx, got {path.name!r}")
    _check_names(sheets)
    return write_artifact(path, lambda target: _write_excel(sheets, target))


def write_csvs(sheets: Sequence[Sheet], folder: ArtifactPath) -> list[ArtifactPath]:
    """`<folder>/<sheet>.csv` for each sheet (UTF-8, header row), each replaced atomically."""
    _check_names(sheets)
    return [write_artifact(folder / f"{s.name}.csv", _csv_writer(s)) for s in sheets]


def _csv_writer(sheet: Sheet) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        _export_ready(sheet.table()).to_csv(target, index=False)

    return write


def write_text(text: str, path: ArtifactPath) -> ArtifactPath:
    """`text` to `path` (UTF-8), replaced atomically."""

    def write(target: Path) -> None:
        target.write_text(text, encoding="utf-8")

    return write_artifact(path, write)


# --- Markdown -------------------------------------------------------------------------


def _number(value: Any) -> str:
    """Money-sized numbers with thousands separators, small ones to 4 significant digits."""
    if pd.isna(value):
        return ""
    if isinstance(value, bool | str):
        return str(value)
    number = float(value)
    return f"{number:,.0f}" if abs(number) >= 1000 else f"{number:.4g}"


def markdown_table(frame: pd.DataFrame) -> str:
    """`frame` as a markdown table: numbers formatted and right-aligned, blanks for missing."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]  # fmt: skip
    shown = frame.astype(object).where(frame.notna(), "")
    for column, is_number in zip(frame.columns, numeric, strict=True):
        if is_number:
            shown[column] = frame[column].map(_number)
    align = ["right" if n else "left" for n in numeric]
    return shown.to_markdown(index=False, colalign=align, disable_numparse=True)


def sheets_markdown(sheets: Sequence[Sheet], *, rows: int = 10) -> str:
    """A preview of the workbook: each sheet's first rows, without the JSON and id columns."""
    parts = []
    for sheet in sheets:
        table = sheet.table()
        shown = table[[c for c in table.columns if c not in PREVIEW_HIDDEN]].head(rows)
        more = f" (first {rows} of {sheet.rows})" if sheet.rows > rows else ""
        parts.append(f"### {sheet.name}{more}\n\n{sheet.description}\n\n")
        parts.append(markdown_table(shown) + "\n")
    return "\n".join(parts)


ESTIMATE_COLUMNS = [
    "subject",
    "metric",
    "effect",
    "ci_lower",
    "ci_upper",
    "p_value",
    "incremental_value",
    "incremental_roas",
    "n_obs",
]
TRUTH_COLUMNS = {
    "unit": "scored as",
    "estimate": "scored estimate",
    "true_value": "true value",
    "error": "error",
    "covered": "covered",
}


def estimates_markdown(
    estimates: pd.DataFrame | None,
    truth: pd.DataFrame | None = None,
    *,
    generated_at: datetime | None = None,
) -> str:
    """The latest estimates as markdown, one table per model.

    `estimates`: latest lift_analysis_results rows (`read_lift_results`; None: the table does
    not exist). `truth`: the sandbox's scorecard, whose columns are put beside each estimate
    it scored; None leaves them out (production), an empty frame says it is not built yet.
    """
    stamp = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Latest estimates", "", f"Generated {stamp} from {LIFT}.", ""]
    if estimates is None or estimates.empty:
        lines.append("No estimates yet: materialize the measurement assets (group `measure`).")
        return "\n".join(lines) + "\n"
    _require_columns(estimates, LIFT, [*ESTIMATE_KEY, *ESTIMATE_COLUMNS, "created_at"])
    lines += [_headline(estimates), ""]
    shown = estimates
    if truth is not None:
        lines += [_truth_headline(truth), ""]
        shown = _beside_truth(estimates, truth)
    for model, rows in shown.groupby("model_name", sort=True):
        columns = [c for c in [*ESTIMATE_COLUMNS, *TRUTH_COLUMNS.values()] if c in rows.columns]
        table = rows[columns].dropna(axis=1, how="all")  # a method's unused columns
        lines += [f"## {model}", "", markdown_table(table), ""]
    return "\n".join(lines)


def estimates_report(
    warehouse: Warehouse, *, sandbox: bool, generated_at: datetime | None = None
) -> tuple[str, int]:
    """The estimates markdown over the warehouse and how many estimates it shows; with the
    sandbox, beside the scorecard (or saying it is not built yet)."""
    estimates = read_lift_results(warehouse)
    truth = None
    if sandbox:
        truth = read_truth_scorecard(warehouse)
        truth = pd.DataFrame(columns=list(COMPARISON_COLUMNS)) if truth is None else truth
    text = estimates_markdown(estimates, truth, generated_at=generated_at)
    return text, 0 if estimates is None else len(estimates)


def _headline(estimates: pd.DataFrame) -> str:
    written = pd.to_datetime(estimates["created_at"])
    return (
        f"{len(estimates)} estimates from {estimates['model_name'].nunique()} models, "
        f"written {written.min():%Y-%m-%d %H:%M} to {written.max():%Y-%m-%d %H:%M} UTC."
    )


def _truth_headline(truth: pd.DataFrame) -> str:
    if truth.empty:
        return (
            "Sandbox: the scorecard against the simulated brand's truth is not built yet "
            "(materialize causal/estimates_vs_truth)."
        )
    experiments = truth[~truth["model_name"].isin(ATTRIBUTION_MODELS)]
    covered = int(experiments["covered"].astype(bool).sum())
    return (
        f"Sandbox: {len(truth)} estimates scored against the simulated brand's truth; "
        f"{covered} of {len(experiments)} experiment and model intervals cover the true value "
        "(attribution is scored on shares, where a gap is its bias, not noise)."
    )


def _beside_truth(estimates: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Each estimate with the scorecard's columns (blank where it has no truth)."""
    scored = truth[[*ESTIMATE_KEY, *[c for c in TRUTH_COLUMNS if c in truth.columns]]]
    scored = scored.drop_duplicates(ESTIMATE_KEY, keep="last")
    merged = estimates.merge(scored.rename(columns=TRUTH_COLUMNS), on=ESTIMATE_KEY, how="left")
    if "covered" in merged.columns:
        merged["covered"] = merged["covered"].map({True: "yes", False: "no"})  # NaN: unscored
    return merged
