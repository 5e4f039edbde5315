"""Drift of one window against a model's reference: every test, then one decision.

A ``ModelReference`` holds a profile per feature and one for the output, computed once (from an
uploaded training sample, or from window profiles for warm-up and rolling references).
``compare_window`` runs the configured tests on each feature the window and the reference share,
and decides with multiple-testing control over *decision hypotheses*: per feature, the primary
test of its kind (KS for numeric, chi-square for categorical) and the missing-rate test. A
feature drifted when one of its hypotheses is significant after correction and its effect is
at least the test's minimum. The other tests are reported beside it, uncorrected.

>>> import numpy as np
>>> from detectors.columns import ModelSchema, build_batch, columns_batch
>>> from detectors.profile import ProfileConfig, WindowProfile
>>> rng = np.random.default_rng(0)
>>> def window(shift: float) -> WindowProfile:
...     events = [{"model": "m", "features": {"x": float(v), "c": "a" if v < 1 else "b"},
...                "prediction": 0.5} for v in rng.normal(shift, 1, 2000)]
...     profile = WindowProfile(0, 60, ProfileConfig())
...     profile.add(build_batch(events, np.zeros(len(events)), ModelSchema(features={})))
...     return profile
>>> reference = ModelReference.from_profiles([window(0.0), window(0.0)], version="1")
>>> compare_window(reference, window(0.0)).drifted_features
()
>>> compare_window(reference, window(0.6)).drifted_features
('c', 'x')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np

from detectors.columns import FloatArray, ModelSchema, build_batch, columns_batch
from detectors.drift import CATEGORICAL_TESTS, NUMERIC_TESTS, DriftTestResult, decide
from detectors.drift.batch import categorical_tests, missing_rate_tests, numeric_tests
from detectors.drift.ks import _EXACT_MAX_PAIRS
from detectors.drift.missing_rate import missing_rate_test
from detectors.profile import (
    OTHER,
    CategoricalSummary,
    ColumnSummary,
    NumericSummary,
    ProbabilitySummary,
    ProfileConfig,
    WindowProfile,
    empty_like,
    merge_summaries,
)
from detectors.reference import CategoricalReference, NumericReference

FeatureReference = NumericReference | CategoricalReference
PREDICTION = "__prediction__"  # the output's name among a reference's profiles


@dataclass(frozen=True)
class ClassProbabilities:
    """The reference of a class-probability output: one numeric profile per class."""

    classes: tuple[NumericReference, ...]
    count: int
    missing: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "probabilities",
            "count": self.count,
            "missing": self.missing,
            "classes": [c.to_dict() for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassProbabilities:
        classes = tuple(NumericReference.from_dict(c) for c in data["classes"])
        return cls(classes, int(data["count"]), int(data["missing"]))


OutputReference = FeatureReference | ClassProbabilities


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.05
    correction: Literal["bh", "bonferroni"] = "bh"
    numeric_tests: tuple[str, ...] = ("ks", "wasserstein", "psi", "jensen_shannon")
    categorical_tests: tuple[str, ...] = ("chi_square", "psi", "jensen_shannon", "total_variation")
    numeric_decision: str = "ks"
    categorical_decision: str = "chi_square"
    # KS pairs with n m up to this take scipy's exact p-value (an O(n m) recursion, ~0.3 ms
    # a feature at 256 x 5,000); the others the Kolmogorov tail at the effective size
    # n m / (n + m), for every feature in one array call. Where the reference is many times
    # the window's sample (a slice: <= 256 values against up to 5,000) the two agree to
    # < 0.01 in p, with the same rejections under no drift (measured in
    # tests/detectors/drift/test_batch.py); for equal sizes the tail runs lower (by up to
    # 0.06 at 50 x 50), so whole windows keep the exact one.
    ks_exact_max_pairs: int = _EXACT_MAX_PAIRS

    def __post_init__(self) -> None:
        if self.ks_exact_max_pairs < 0:
            raise ValueError(
                f"ks_exact_max_pairs is a count of value pairs: use 0 (always the tail) or "
                f"more, got {self.ks_exact_max_pairs}"
            )
        for name in (*self.numeric_tests, self.numeric_decision):
            if name not in NUMERIC_TESTS:
                raise ValueError(f"unknown numeric test {name!r}; known: {sorted(NUMERIC_TESTS)}")
        for name in (*self.categorical_tests, self.categorical_decision):
            if name not in CATEGORICAL_TESTS:
                known = sorted(CATEGORICAL_TESTS)
                raise ValueError(f"unknown categorical test {name!r}; known: {known}")


@dataclass(frozen=True)
class ModelReference:
    """The reference one model version's windows are compared with."""

    version: str
    source: str  # "uploaded", "warmup" or "rolling"
    features: Mapping[str, FeatureReference]
    output: OutputReference | None = None

    def to_dict(self) -> dict[str, Any]:
        profiles = {name: ref.to_dict() for name, ref in self.features.items()}
        if self.output is not None:
            profiles[PREDICTION] = self.output.to_dict()
        return {"version": self.version, "source": self.source, "profiles": profiles}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelReference:
        profiles = dict(data["profiles"])
        raw_output = profiles.pop(PREDICTION, None)
        output: OutputReference | None = None
        if raw_output is not None:
            output = (
                ClassProbabilities.from_dict(raw_output)
                if raw_output.get("kind") == "probabilities"
                else _reference_from_dict(raw_output)
            )
        features = {name: _reference_from_dict(p) for name, p in profiles.items()}
        return cls(str(data["version"]), str(data["source"]), features, output)

    @classmethod
    def from_profiles(
        cls, profiles: Sequence[WindowProfile], version: str, source: str = "warmup"
    ) -> ModelReference:
        """Merge window profiles: their uniform samples and their category counts."""
        accumulator = ProfileAccumulator()
        for profile in profiles:
            accumulator.add(profile)
        return accumulator.reference(version, source)

    @classmethod
    def from_columns(
        cls,
        features: Mapping[str, FloatArray | list[Any]],
        prediction: list[Any] | None,
        version: str,
        source: str = "uploaded",
    ) -> ModelReference:
        """A training sample given by columns (``columns_batch``): the reference
        :meth:`from_rows` makes of the same table, without a dict per row. A float column, and
        a text column (strings and None, at most the profile's 10,000 categories), go straight
        to ``NumericReference.from_values`` / ``CategoricalReference.from_counts``: the
        profile would keep a float column's every value in order (its sample holds the whole
        upload) and hand them to the same call, and count a text column's values as they
        are, so the reference is the same, without the profile's per-value work."""
        sizes = {len(values) for values in features.values()}
        if prediction is not None:
            sizes.add(len(prediction))
        if len(sizes) > 1:
            raise ValueError(f"the columns have different lengths: {sorted(sizes)}")
        if not sizes or not sizes.pop():
            raise ValueError("the reference sample has no rows")
        direct: dict[str, FeatureReference] = {}
        for name, values in features.items():
            made = _direct_reference(values)
            if made is not None:
                direct[name] = made
        batch = columns_batch({n: v for n, v in features.items() if n not in direct}, prediction)
        profile = WindowProfile(
            0, 1, ProfileConfig(max(batch.size, 16), max_categories=_UPLOAD_CATEGORIES)
        )
        profile.add(batch)
        profiled = cls.from_profiles([profile], version, source)
        merged = {**profiled.features, **direct}
        return replace(profiled, features=dict(sorted(merged.items())))

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], version: str, source: str = "uploaded"
    ) -> ModelReference:
        """A training sample: rows of ``{"features": {...}, "prediction": ...}`` or flat rows
        whose ``prediction`` key, if any, is the output and every other key a feature."""
        events = []
        for row in rows:
            if "features" in row:
                events.append({"features": row["features"], "prediction": row.get("prediction")})
            else:
                features = {k: v for k, v in row.items() if k != "prediction"}
                events.append({"features": features, "prediction": row.get("prediction")})
        if not events:
            raise ValueError("the reference sample has no rows")
        # every value of the sample goes in: a window-sized sample cap would waste the upload
        config = ProfileConfig(sample_size=max(len(events), 16), max_categories=_UPLOAD_CATEGORIES)
        profile = WindowProfile(0, 1, config)
        profile.add(build_batch(events, np.zeros(len(events)), ModelSchema(features={})))
        return cls.from_profiles([profile], version, source)


@dataclass
class ProfileAccumulator:
    """Window profiles merged as they come (a warm-up reference in the making): bounded
    samples and counts per column, never the windows themselves."""

    windows: int = 0
    events: int = 0
    features: dict[str, ColumnSummary] = field(default_factory=dict)
    output: ColumnSummary | None = None
    _broken: set[str] = field(default_factory=set)  # columns whose kind changed

    def add(self, profile: WindowProfile) -> None:
        self.windows += 1
        self.events += profile.count
        for name, summary in profile.features.items():
            self._fold(name, summary)
        if profile.output is not None:
            self._fold(PREDICTION, profile.output)

    def _fold(self, name: str, summary: ColumnSummary) -> None:
        if name in self._broken:
            return
        current = self.output if name == PREDICTION else self.features.get(name)
        # merging into an empty summary copies: the window's profile is not ours to grow
        merged = merge_summaries(current or empty_like(summary), summary)
        if merged is None:
            self._broken.add(name)
            self.features.pop(name, None)
            return
        if name == PREDICTION:
            self.output = merged
        else:
            self.features[name] = merged

    def reference(self, version: str, source: str) -> ModelReference:
        features: dict[str, FeatureReference] = {}
        for name, summary in sorted(self.features.items()):
            merged = _merge([summary])
            if merged is not None:
                features[name] = merged
        output: OutputReference | None = None
        if isinstance(self.output, ProbabilitySummary):
            output = _merge_probabilities([self.output])
        elif self.output is not None:
            output = _merge([self.output])
        return ModelReference(version, source, features, output)


def _direct_reference(values: FloatArray | list[Any]) -> FeatureReference | None:
    """An uploaded column's reference without a profile (``ModelReference.from_columns``),
    or None where only the profile's path makes the same one."""
    if isinstance(values, np.ndarray):
        return NumericReference.from_values(values) if values.dtype == np.float64 else None
    try:
        tally: Counter[Any] = Counter(values)
    except TypeError:  # a list or a dict: unhashable
        return None
    # the kinds of the distinct values (one equal to a text, a str subclass's, counts with it)
    if not set(map(type, tally)) <= {str, type(None)}:
        return None  # numbers, booleans, lists: the profile decides their kind and text
    missing = tally.pop(None, 0)
    if not tally or len(tally) > _UPLOAD_CATEGORIES or OTHER in tally:
        return None  # all missing (no kind yet), or the profile's cap and its other bucket
    return CategoricalReference.from_counts(cast("Counter[str]", tally), missing)


_UPLOAD_CATEGORIES = 10_000  # the categories an uploaded reference's profile counts


def _reference_from_dict(data: Mapping[str, Any]) -> FeatureReference:
    if data.get("kind") == "numeric":
        return NumericReference.from_dict(data)
    return CategoricalReference.from_dict(data)


def _merge_probabilities(summaries: Sequence[ColumnSummary]) -> ClassProbabilities | None:
    probs = [s for s in summaries if isinstance(s, ProbabilitySummary)]
    widths = {s.width for s in probs}
    if len(widths) != 1:
        return None  # the number of classes changed: no sound reference
    classes = tuple(
        NumericReference.from_values(np.concatenate([s.samples[c].values for s in probs]))
        for c in range(widths.pop())
    )
    return ClassProbabilities(classes, sum(s.count for s in probs), sum(s.missing for s in probs))


def _merge(summaries: Sequence[ColumnSummary]) -> FeatureReference | None:
    if not summaries:
        return None
    count = sum(s.count for s in summaries)
    missing = sum(s.missing for s in summaries)
    if all(isinstance(s, NumericSummary) for s in summaries):
        values = np.concatenate(
            [s.sample.values for s in summaries if isinstance(s, NumericSummary)]
        )
        ref = NumericReference.from_values(values)
        return replace(ref, count=count, missing=missing)
    counts: Counter[str] = Counter()
    for s in summaries:
        if isinstance(s, CategoricalSummary):
            counts.update(s.counts)
        elif isinstance(s, ProbabilitySummary):  # class probabilities: the argmax classes
            counts.update({str(i): int(n) for i, n in enumerate(s.argmax_counts)})
        else:
            return None  # the kind changed between windows: no sound reference
    counts.pop(OTHER, None)
    return CategoricalReference.from_counts(counts, missing)


@dataclass(frozen=True)
class ResultRow:
    """One test of one feature in one window, with the decision it contributed to."""

    feature: str
    result: DriftTestResult
    adjusted_p_value: float | None  # None for tests outside the decision or without p-value
    drifted: bool
    in_decision: bool


@dataclass(frozen=True)
class DriftReport:
    reference: str  # e.g. "uploaded:3" or "warmup:1"
    rows: tuple[ResultRow, ...]
    drifted_features: tuple[str, ...]
    features_tested: int
    share_drifted: float
    max_effect: float
    prediction_drifted: bool | None  # None: the output was not tested
    metrics: tuple[tuple[str, str, float], ...] = field(default=())  # (metric, feature, value)


def _current(summary: ColumnSummary) -> tuple[str, Any] | None:
    """(kind, data) of a window column as the tests take it."""
    if isinstance(summary, NumericSummary):
        return "numeric", summary.sample.values
    if isinstance(summary, CategoricalSummary):
        return "categorical", dict(summary.counts)
    counts = {str(i): int(n) for i, n in enumerate(summary.argmax_counts)}
    return "categorical", counts


Tested = tuple[dict[str, DriftTestResult], str]  # a column's results and its decision test


@dataclass(frozen=True)
class _WindowTests:
    """Every test of one window, before the decision: per shared feature (by name) its
    results with the missing-rate test, and the output's (one column, or one per class)."""

    features: dict[str, Tested]
    output: Tested | None = None
    classes: tuple[dict[str, DriftTestResult], ...] | None = None


def _test_names(config: DriftConfig, kind: str) -> tuple[tuple[str, ...], str]:
    """The configured tests of a kind and its decision test, each once, decision last if it
    is not among them (the order the reports have always listed them in)."""
    if kind == "numeric":
        tests, decision = config.numeric_tests, config.numeric_decision
    else:
        tests, decision = config.categorical_tests, config.categorical_decision
    return tuple(dict.fromkeys((*tests, decision))), decision


def _tests_for(
    reference: FeatureReference, summary: ColumnSummary, config: DriftConfig
) -> Tested | None:
    current = _current(summary)
    if current is None:
        return None
    kind, data = current
    if kind == "numeric" and isinstance(reference, NumericReference):
        names, decision = _test_names(config, "numeric")
        return {name: NUMERIC_TESTS[name](reference, data) for name in names}, decision
    if kind == "categorical" and isinstance(reference, CategoricalReference):
        names, decision = _test_names(config, "categorical")
        return {name: CATEGORICAL_TESTS[name](reference, data) for name in names}, decision
    return None  # the feature changed kind: not comparable


def _per_feature_tests(
    reference: ModelReference, window: WindowProfile, config: DriftConfig
) -> _WindowTests:
    """The tests one feature (and one output class) at a time, each through its own public
    function: the path ``compare_window`` took before ``_batched_tests``, kept for the
    equivalence tests and the benchmark that compare the two."""
    features: dict[str, Tested] = {}
    for name, summary in sorted(window.features.items()):
        ref = reference.features.get(name)
        if ref is None:
            continue
        tested = _tests_for(ref, summary, config)
        if tested is None:
            continue
        results, primary = tested
        results["missing_rate"] = missing_rate_test(ref, summary)
        features[name] = (results, primary)
    output_ref, output = reference.output, window.output
    if output_ref is None or output is None:
        return _WindowTests(features)
    if isinstance(output_ref, ClassProbabilities):
        if not isinstance(output, ProbabilitySummary) or output.width != len(output_ref.classes):
            return _WindowTests(features)
        names, _ = _test_names(config, "numeric")
        classes = tuple(
            {name: NUMERIC_TESTS[name](class_ref, output.samples[c].values) for name in names}
            for c, class_ref in enumerate(output_ref.classes)
        )
        return _WindowTests(features, classes=classes)
    return _WindowTests(features, output=_tests_for(output_ref, output, config))


def _batched_tests(
    reference: ModelReference, window: WindowProfile, config: DriftConfig
) -> _WindowTests:
    """The same tests as ``_per_feature_tests``, with every numeric column of the window
    (features, a numeric output, each class of a class-probability output) in one
    ``numeric_tests`` pass and each categorical column's counts aligned once
    (``detectors.drift.batch``). The results are the per-feature functions' (see there)."""
    return _batched_tests_of(reference, [window], config)[0]


def _batched_tests_of(
    reference: ModelReference, windows: Sequence[WindowProfile], config: DriftConfig
) -> list[_WindowTests]:
    """``_batched_tests`` of each window against one reference, the numeric columns of all
    of them in one ``numeric_tests`` pass and their missing rates in one call: each column's
    results are computed on their own in those passes, so they are what a pass per window
    gives, to the bit."""
    numeric_names, numeric_decision = _test_names(config, "numeric")
    categorical_names, categorical_decision = _test_names(config, "categorical")
    columns: list[tuple[NumericReference, FloatArray]] = []
    slots: list[dict[str, DriftTestResult]] = []  # where each numeric column's results go

    def numeric(ref: NumericReference, values: FloatArray) -> dict[str, DriftTestResult]:
        columns.append((ref, values))
        slots.append({})
        return slots[-1]

    def tested(ref: FeatureReference, summary: ColumnSummary) -> Tested | None:
        current = _current(summary)
        if current is None:
            return None
        kind, data = current
        if kind == "numeric" and isinstance(ref, NumericReference):
            return numeric(ref, data), numeric_decision
        if kind == "categorical" and isinstance(ref, CategoricalReference):
            return categorical_tests(ref, data, categorical_names), categorical_decision
        return None

    planned: list[_WindowTests] = []
    counted: list[tuple[FeatureReference, ColumnSummary]] = []
    for window in windows:
        features: dict[str, Tested] = {}
        for name, summary in sorted(window.features.items()):
            ref = reference.features.get(name)
            if ref is None:
                continue
            result = tested(ref, summary)
            if result is not None:
                features[name] = result
                counted.append((ref, summary))
        output_ref, output = reference.output, window.output
        out: Tested | None = None
        classes: tuple[dict[str, DriftTestResult], ...] | None = None
        if isinstance(output_ref, ClassProbabilities):
            if isinstance(output, ProbabilitySummary) and output.width == len(output_ref.classes):
                classes = tuple(
                    numeric(class_ref, output.samples[c].values)
                    for c, class_ref in enumerate(output_ref.classes)
                )
        elif output_ref is not None and output is not None:
            out = tested(output_ref, output)
        planned.append(_WindowTests(features, out, classes))
    computed = numeric_tests(
        [c[0] for c in columns],
        [c[1] for c in columns],
        numeric_names,
        exact_max_pairs=config.ks_exact_max_pairs,
    )
    for slot, results in zip(slots, computed, strict=True):
        slot.update(results)
    missing = iter(missing_rate_tests([c[0] for c in counted], [c[1] for c in counted]))
    for tests in planned:
        for results, _ in tests.features.values():
            results["missing_rate"] = next(missing)  # after the others, as the reports list it
    return planned


def compare_window(
    reference: ModelReference,
    window: WindowProfile,
    config: DriftConfig | None = None,
    tag: str = "",
) -> DriftReport:
    """Every configured test per shared feature, one corrected decision, and the output.

    The tests run batched across the window's columns (``_batched_tests``); the report is
    the one the per-feature functions give (``_compare_window_per_feature``): the same
    statistics, p-values and decisions, the KS p-values to float rounding
    (tests/detectors/drift/test_batch.py)."""
    config = config or DriftConfig()
    return _report(reference, _batched_tests(reference, window, config), config, tag)


def compare_windows(
    reference: ModelReference,
    windows: Sequence[WindowProfile],
    config: DriftConfig | None = None,
    tag: str = "",
) -> list[DriftReport]:
    """``compare_window`` of each window against one reference (the slices of a window
    against their version's), the same reports, with the tests of all of them batched
    together (``_batched_tests_of``): a slice's window is small, so a pass per slice was
    mostly the passes' own cost."""
    config = config or DriftConfig()
    return [
        _report(reference, t, config, tag) for t in _batched_tests_of(reference, windows, config)
    ]


def _compare_window_per_feature(
    reference: ModelReference,
    window: WindowProfile,
    config: DriftConfig | None = None,
    tag: str = "",
) -> DriftReport:
    """``compare_window`` through the per-feature functions, one feature at a time (the old
    path: for the equivalence tests and ``bench.detectors``; its KS takes the default
    ``ks_exact_max_pairs``)."""
    config = config or DriftConfig()
    return _report(reference, _per_feature_tests(reference, window, config), config, tag)


def _report(
    reference: ModelReference, tests: _WindowTests, config: DriftConfig, tag: str
) -> DriftReport:
    """One corrected decision over the features' decision hypotheses, and the output's."""
    hypotheses: dict[str, DriftTestResult] = {}
    for name, (results, primary) in tests.features.items():
        hypotheses[f"{name}\t{primary}"] = results[primary]
        hypotheses[f"{name}\tmissing_rate"] = results["missing_rate"]
    decision = decide(hypotheses, config.alpha, config.correction)
    verdict = {f.feature: f for f in decision.features}
    rows: list[ResultRow] = []
    drifted: set[str] = set()
    for name, (results, _) in tests.features.items():
        for test, result in results.items():
            decided = verdict.get(f"{name}\t{test}")
            if decided is not None:
                rows.append(
                    ResultRow(name, result, decided.adjusted_p_value, decided.drifted, True)
                )
                if decided.drifted:
                    drifted.add(name)
            else:
                rows.append(ResultRow(name, result, None, result.is_drift(config.alpha), False))
    prediction_drifted = _output_rows(tests, config, rows)
    n = len(tests.features)
    share = len(drifted) / n if n else 0.0
    decided_effects = [
        r.result.effect_size for r in rows if r.in_decision and r.feature != PREDICTION
    ]
    report = DriftReport(
        reference=tag or f"{reference.source}:{reference.version}",
        rows=tuple(rows),
        drifted_features=tuple(sorted(drifted)),
        features_tested=n,
        share_drifted=share,
        max_effect=max(decided_effects, default=0.0),
        prediction_drifted=prediction_drifted,
    )
    return replace(report, metrics=tuple(_metrics(report)))


def _output_rows(tests: _WindowTests, config: DriftConfig, rows: list[ResultRow]) -> bool | None:
    """Prediction drift: the same tests on the output. Class-probability outputs are tested
    class by class (the distribution of each class's probability), corrected across classes."""
    if tests.classes is not None:
        per_class = {f"{PREDICTION}[{c}]": results for c, results in enumerate(tests.classes)}
        decision = decide(
            {name: results[config.numeric_decision] for name, results in per_class.items()},
            config.alpha,
            config.correction,
        )
        verdict = {f.feature: f for f in decision.features}
        for name, results in per_class.items():
            for test, result in results.items():
                if test == config.numeric_decision:
                    decided = verdict[name]
                    rows.append(
                        ResultRow(name, result, decided.adjusted_p_value, decided.drifted, True)
                    )
                else:
                    rows.append(ResultRow(name, result, None, result.is_drift(config.alpha), False))
        return bool(decision.drifted)
    if tests.output is None:
        return None
    results, primary = tests.output
    for test, result in results.items():
        rows.append(
            ResultRow(PREDICTION, result, None, result.is_drift(config.alpha), test == primary)
        )
    return results[primary].is_drift(config.alpha)


def _metrics(report: DriftReport) -> Iterable[tuple[str, str, float]]:
    """The report as dotted metrics (DESIGN.md), so rules and charts can use them."""
    yield "drift.share_drifted", "", report.share_drifted
    yield "drift.features_drifted", "", float(len(report.drifted_features))
    yield "drift.max_effect", "", report.max_effect
    if report.prediction_drifted is not None:
        yield "drift.prediction_drifted", "", float(report.prediction_drifted)
    flagged = set(report.drifted_features)
    seen: set[str] = set()
    for row in report.rows:
        output = row.feature.startswith(PREDICTION)
        # the output's rows: feature "" (or "class:<i>" for a class-probability output)
        feature = row.feature if not output else _class_label(row.feature)
        prefix = "drift.prediction." if output else "drift."
        test = row.result.test
        yield f"{prefix}{test}.statistic", feature, row.result.statistic
        yield f"{prefix}{test}.effect", feature, row.result.effect_size
        if row.result.p_value is not None:
            yield f"{prefix}{test}.p_value", feature, row.result.p_value
        if not output and row.feature not in seen:
            seen.add(row.feature)
            yield "drift.drifted", row.feature, float(row.feature in flagged)


def _class_label(name: str) -> str:
    return f"class:{name[len(PREDICTION) + 1 : -1]}" if name.endswith("]") else ""


def versus_metrics(report: DriftReport) -> Iterable[tuple[str, str, float]]:
    """One version's window against another's in the same window (a canary against its
    baseline, on the same traffic), as ``versus.*`` metrics: ``share_drifted``,
    ``features_drifted``, ``drifted`` per feature, ``inputs.p_value`` (the smallest
    multiplicity-adjusted p over the features' decision tests: a valid p-value of "no input
    differs"), and ``output.p_value`` and ``output.effect`` when the output was tested."""
    yield "versus.share_drifted", "", report.share_drifted
    yield "versus.features_drifted", "", float(len(report.drifted_features))
    flagged = set(report.drifted_features)
    inputs = [r for r in report.rows if r.in_decision and not r.feature.startswith(PREDICTION)]
    for feature in sorted({r.feature for r in inputs}):
        yield "versus.drifted", feature, float(feature in flagged)
    adjusted = [r.adjusted_p_value for r in inputs if r.adjusted_p_value is not None]
    if adjusted:
        yield "versus.inputs.p_value", "", min(adjusted)
    output = [r for r in report.rows if r.in_decision and r.feature.startswith(PREDICTION)]
    p_values = [
        r.adjusted_p_value if r.adjusted_p_value is not None else r.result.p_value for r in output
    ]
    kept = [p for p in p_values if p is not None]
    if kept:
        yield "versus.output.p_value", "", min(kept)
        yield "versus.output.effect", "", max(r.result.effect_size for r in output)
