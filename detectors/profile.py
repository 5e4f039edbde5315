"""Window profiles: mergeable summaries of one model's events in one time window.

A profile holds counts, moments (Chan's parallel form), a bounded uniform sample per numeric
column and capped value counts per categorical column. ``metrics()`` turns a closed window into
the stable dotted metric names of DESIGN.md. State is plain data so it can be merged or
checkpointed; nothing here prints, sends or stores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from detectors.columns import Column, EventBatch, FloatArray, Kind
from detectors.quantiles import linear_quantiles, linear_quantiles_many
from detectors.sampling import BottomKSample, offer_each

OTHER = "__other__"  # categories beyond the per-window cap are counted here


Moments = tuple[float, float, float, float, float]  # total, mean, m2, min, max


class MetricRow(NamedTuple):
    metric: str
    feature: str
    category: str
    value: float


@dataclass
class NumericSummary:
    sample_size: int
    count: int = 0  # rows, missing included
    missing: int = 0
    mismatched: int = 0
    valid: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    total: float = 0.0  # the sum of the values, exact where mean * valid would round
    minimum: float = float("inf")
    maximum: float = float("-inf")
    sample: BottomKSample = field(init=False)

    def __post_init__(self) -> None:
        self.sample = BottomKSample(self.sample_size)

    def update(self, values: FloatArray, mismatched: int, rng: np.random.Generator) -> None:
        present = values[~np.isnan(values)]
        self.tally(int(values.size), int(present.size), mismatched)
        if present.size == 0:
            return
        self.combine_values(present)
        self.sample.add(present, rng)

    def tally(self, rows: int, present: int, mismatched: int) -> None:
        self.count += rows
        self.missing += rows - present
        self.mismatched += mismatched

    def combine_values(self, present: FloatArray) -> None:
        """Fold in the moments of ``present`` (no NaN, at least one value)."""
        total_b = float(present.sum())
        mean_b = float(present.mean())
        m2_b = float(((present - mean_b) ** 2).sum())
        self.combine(int(present.size), total_b, mean_b, m2_b, present.min(), present.max())

    def combine(
        self, n_b: int, total_b: float, mean_b: float, m2_b: float, lo: float, hi: float
    ) -> None:
        """Fold in the moments of ``n_b`` more values (Chan's parallel form)."""
        self.total += total_b
        n_a, n = self.valid, self.valid + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.valid = n
        self.minimum = min(self.minimum, float(lo))
        self.maximum = max(self.maximum, float(hi))

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / (self.valid - 1))) if self.valid > 1 else 0.0

    def quantiles(self, qs: list[float]) -> list[float]:
        values = self.sample.values
        if values.size == 0:
            return [float("nan")] * len(qs)
        return linear_quantiles(values, qs)  # np.quantile's numbers, without its overhead


@dataclass
class CategoricalSummary:
    max_categories: int
    count: int = 0
    missing: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def update(self, values: np.ndarray) -> None:
        tally = Counter(values.tolist())
        missing = tally.pop(None, 0)
        self.count += int(values.size)
        self.missing += missing
        for value, n in tally.items():
            self.add(value, n)

    def add(self, value: str, n: int) -> None:
        """Count ``n`` more of ``value`` (not None), or of ``OTHER`` once the cap is reached."""
        counts = self.counts
        if value in counts or len(counts) < self.max_categories:
            counts[value] += n
        else:
            counts[OTHER] += n

    @property
    def present(self) -> int:
        return self.count - self.missing


@dataclass
class ProbabilitySummary:
    """Class-probability vectors: per class the mean probability and a bounded sample of the
    probabilities (for drift tests of each class's distribution), and argmax counts."""

    width: int
    sample_size: int = 2048
    count: int = 0
    missing: int = 0
    mismatched: int = 0
    prob_sum: FloatArray = field(init=False)
    argmax_counts: np.ndarray = field(init=False)
    samples: list[BottomKSample] = field(init=False)

    def __post_init__(self) -> None:
        self.prob_sum = np.zeros(self.width)
        self.argmax_counts = np.zeros(self.width, dtype=np.int64)
        self.samples = [BottomKSample(self.sample_size) for _ in range(self.width)]

    def update(self, rows: FloatArray, mismatched: int, rng: np.random.Generator) -> None:
        present = rows[~np.isnan(rows).any(axis=1)]
        self.count += int(rows.shape[0])
        self.missing += int(rows.shape[0] - present.shape[0])
        self.mismatched += mismatched
        if present.shape[0]:
            self.prob_sum += present.sum(axis=0)
            self.argmax_counts += np.bincount(present.argmax(axis=1), minlength=self.width)
            for c, sample in enumerate(self.samples):
                sample.add(np.ascontiguousarray(present[:, c]), rng)


ColumnSummary = NumericSummary | CategoricalSummary | ProbabilitySummary


def empty_like(summary: ColumnSummary) -> ColumnSummary:
    """An empty summary of ``summary``'s kind and bounds."""
    if isinstance(summary, NumericSummary):
        return NumericSummary(summary.sample_size)
    if isinstance(summary, CategoricalSummary):
        return CategoricalSummary(summary.max_categories)
    return ProbabilitySummary(summary.width, summary.sample_size)


def only_missing(summary: ColumnSummary) -> bool:
    """A numeric summary that has seen nothing but missing values: what a feature gets while
    every value of it so far was null (its kind unknown yet), which a summary of the kind
    its first value shows may take over (``replaced_placeholder``)."""
    return (
        isinstance(summary, NumericSummary)
        and summary.valid == 0
        and summary.mismatched == 0
        and summary.count == summary.missing
    )


def replaced_placeholder(placeholder: ColumnSummary, fresh: ColumnSummary) -> ColumnSummary:
    """``fresh`` (empty, of the feature's real kind) with the rows ``placeholder`` counted,
    all of them missing."""
    _count_absent(fresh, placeholder.count)
    return fresh


def merge_summaries(a: ColumnSummary, b: ColumnSummary) -> ColumnSummary | None:
    """One summary of two windows (or partitions) of the same column; None when their kinds
    differ. Samples stay bounded by the smaller sample size, so a merged summary costs what
    one window's does, however many windows it covers. A window where the feature was only
    ever null takes the other's kind (its rows count as missing)."""
    if not isinstance(b, NumericSummary) and only_missing(a):
        a = replaced_placeholder(a, empty_like(b))
    elif not isinstance(a, NumericSummary) and only_missing(b):
        b = replaced_placeholder(b, empty_like(a))
    if isinstance(a, NumericSummary) and isinstance(b, NumericSummary):
        merged = NumericSummary(min(a.sample_size, b.sample_size))
        merged.count, merged.missing = a.count + b.count, a.missing + b.missing
        merged.mismatched = a.mismatched + b.mismatched
        merged.valid = a.valid + b.valid
        merged.total = a.total + b.total
        if merged.valid:
            delta = b.mean - a.mean
            merged.mean = a.mean + delta * b.valid / merged.valid
            merged.m2 = a.m2 + b.m2 + delta * delta * a.valid * b.valid / merged.valid
        merged.minimum, merged.maximum = min(a.minimum, b.minimum), max(a.maximum, b.maximum)
        merged.sample = a.sample.merge(b.sample)
        return merged
    if isinstance(a, CategoricalSummary) and isinstance(b, CategoricalSummary):
        categorical = CategoricalSummary(max(a.max_categories, b.max_categories))
        categorical.count, categorical.missing = a.count + b.count, a.missing + b.missing
        for value, n in (a.counts + b.counts).items():
            if value == OTHER or len(categorical.counts) >= categorical.max_categories:
                categorical.counts[OTHER] += n
            else:
                categorical.counts[value] += n
        return categorical
    if isinstance(a, ProbabilitySummary) and isinstance(b, ProbabilitySummary):
        if a.width != b.width:
            return None
        probs = ProbabilitySummary(a.width, min(a.sample_size, b.sample_size))
        probs.count, probs.missing = a.count + b.count, a.missing + b.missing
        probs.mismatched = a.mismatched + b.mismatched
        probs.prob_sum = a.prob_sum + b.prob_sum
        probs.argmax_counts = a.argmax_counts + b.argmax_counts
        probs.samples = [x.merge(y) for x, y in zip(a.samples, b.samples, strict=True)]
        return probs
    return None


@dataclass
class ProfileConfig:
    sample_size: int = 2048
    max_categories: int = 200
    # distinct custom metric names one window summarises; later ones are counted, not kept
    max_custom_metrics: int = 100


def new_summary(column: Column, config: ProfileConfig) -> ColumnSummary:
    if column.kind is Kind.NUMERIC:
        return NumericSummary(config.sample_size)
    if column.kind is Kind.CATEGORICAL:
        return CategoricalSummary(config.max_categories)
    return ProbabilitySummary(column.values.shape[1], config.sample_size)


def update_summary(summary: ColumnSummary, column: Column, rng: np.random.Generator) -> None:
    mismatched = 0 if column.mismatched is None else int(column.mismatched.sum())
    if isinstance(summary, NumericSummary):
        summary.update(column.values, mismatched, rng)
    elif isinstance(summary, CategoricalSummary):
        summary.update(column.values)
    else:
        summary.update(column.values, mismatched, rng)


def update_numeric(
    pairs: Sequence[tuple[NumericSummary, Column]], rng: np.random.Generator
) -> None:
    """Fold numeric columns of one batch into their summaries in a few NumPy calls: what
    ``NumericSummary.update`` does one column after the other, to the last bit and the last
    random draw. Each column is a contiguous row of one block, so NumPy sums it pairwise as
    it does a 1-D array; the sample keys of every column are drawn in one call, which gives
    the same numbers in the same order as a call per column. The columns with missing values
    have their moments taken apart, those with as many present values together
    (``_grouped_moments``)."""
    block = np.stack([column.values for _, column in pairs])
    n = block.shape[1]
    if n == 0:  # nothing to count, nothing drawn
        return
    missing = np.isnan(block)
    gaps = missing.any(axis=1)
    present_rows = (n - missing.sum(axis=1)).tolist()
    # every column's present values, one after the other (each one's run is contiguous)
    present = block[~missing] if gaps.any() else block.reshape(-1)
    full = block[~gaps] if gaps.any() else block
    totals = full.sum(axis=1)
    means = totals / n
    m2s = ((full - means[:, None]) ** 2).sum(axis=1)
    lows, highs = full.min(axis=1).tolist(), full.max(axis=1).tolist()
    moments = zip(totals.tolist(), means.tolist(), m2s.tolist(), lows, highs, strict=True)
    gapped = _grouped_moments(present, _gap_runs([(0, present_rows, gaps.tolist())]))
    start = 0
    for (summary, column), has_gaps, count in zip(pairs, gaps.tolist(), present_rows, strict=True):
        mismatched = 0 if column.mismatched is None else int(column.mismatched.sum())
        summary.tally(n, count, mismatched)
        if has_gaps:
            if count:
                summary.combine(count, *gapped[start])
        else:
            summary.combine(n, *next(moments))
        start += count
    keys = rng.random(start)
    offer_each([summary.sample for summary, _ in pairs], present, keys, present_rows)


def _plain(summaries: Mapping[str, ColumnSummary], columns: Mapping[str, Column]) -> bool:
    """Whether each column goes to a summary of its kind (or to a new one), so that
    ``update_numeric`` can take the numeric ones together. Otherwise a column of class
    probabilities draws sample keys in between, or a text column meets a numeric summary
    (the placeholder of a feature only null so far, which ``_summary`` replaces): the
    per-column path does what it always did."""
    for name, column in columns.items():
        summary = summaries.get(name)
        if column.kind is Kind.PROBABILITIES or isinstance(summary, ProbabilitySummary):
            return False
        if column.kind is Kind.CATEGORICAL and isinstance(summary, NumericSummary):
            return False
        if column.kind is Kind.NUMERIC and column.values.ndim != 1:  # (a table's 2-D column)
            return False
    return True


@dataclass
class WindowProfile:
    """Everything one window of one model needs to produce its metrics."""

    start: int  # epoch seconds
    seconds: int
    config: ProfileConfig
    count: int = 0
    late: int = 0  # events that arrived after their own window had closed
    invalid: int = 0  # events of this model sent to the dead-letter topic
    versions: Counter[str] = field(default_factory=Counter)
    latency: NumericSummary = field(init=False)
    features: dict[str, ColumnSummary] = field(default_factory=dict)
    output: ColumnSummary | None = None
    output_rows: int = 0
    # streaming detectors (river) that fired in this window, per (feature, detector)
    change_points: Counter[tuple[str, str]] = field(default_factory=Counter)
    # custom and business metrics sent with the events, per name
    custom: dict[str, NumericSummary] = field(default_factory=dict)
    custom_over_cap: set[str] = field(default_factory=set)  # names past max_custom_metrics
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.latency = NumericSummary(self.config.sample_size)
        self._rng = np.random.default_rng(self.start)

    def add(self, batch: EventBatch) -> None:
        """Fold a batch of this window's events into the profile (the numeric features of a
        batch together: ``update_numeric``)."""
        self._add_head(batch)
        if _plain(self.features, batch.features):
            self._add_features(batch)
        else:  # a column whose kind its summary does not have: one column at a time
            for name, column in batch.features.items():
                update_summary(self._summary(name, column, batch.size), column, self._rng)
        self._add_rest(batch, batch.features)

    def _add_head(self, batch: EventBatch) -> None:
        """What ``add`` does before the features: counts, versions, latency (its draws)."""
        self.count += batch.size
        self.versions.update(batch.versions.tolist())
        self.latency.update(batch.latency_ms, 0, self._rng)

    def _add_rest(self, batch: EventBatch, sent: Mapping[str, Column]) -> None:
        """What ``add`` does after the features (``sent``: the batch's feature columns):
        the features it lacks, the output, the custom metrics (their draws)."""
        for name, summary in self.features.items():
            if name not in sent:
                _count_absent(summary, batch.size)
        if batch.prediction is not None:
            if self.output is None:
                self.output = new_summary(batch.prediction, self.config)
                _count_absent(self.output, self.output_rows)
            update_summary(self.output, batch.prediction, self._rng)
        elif self.output is not None:
            _count_absent(self.output, batch.size)
        self.output_rows += batch.size
        for name, values in batch.custom.items():
            custom = self.custom.get(name)
            if custom is None:
                if len(self.custom) >= self.config.max_custom_metrics:
                    self.custom_over_cap.add(name)
                    continue
                custom = self.custom[name] = NumericSummary(self.config.sample_size)
            custom.update(values, 0, self._rng)

    def _summary(self, name: str, column: Column, rows: int) -> ColumnSummary:
        summary = self.features.get(name)
        if summary is None:
            summary = self.features[name] = new_summary(column, self.config)
            # rows the feature was absent from, before it first appeared
            _count_absent(summary, self.count - rows)
        elif column.kind is not Kind.NUMERIC and only_missing(summary):
            # only nulls so far, and now its first values show another kind: a text feature
            # whose first batch had none (its earlier rows stay counted, as missing)
            fresh = new_summary(column, self.config)
            summary = self.features[name] = replaced_placeholder(summary, fresh)
        return summary

    def _add_features(self, batch: EventBatch) -> None:
        """Fold numeric and categorical feature columns, the numeric ones all at once."""
        numeric: list[tuple[NumericSummary, Column]] = []
        for name, column in batch.features.items():
            summary = self._summary(name, column, batch.size)
            if isinstance(summary, NumericSummary):
                numeric.append((summary, column))
            else:  # categorical: counted, no random draws
                update_summary(summary, column, self._rng)
        if numeric:
            update_numeric(numeric, self._rng)

    def metrics(self, known_categories: Mapping[str, set[str]]) -> list[MetricRow]:
        """The window's metrics. ``known_categories``: per feature, the values seen before."""
        rows = [
            MetricRow("traffic.count", "", "", float(self.count)),
            MetricRow("traffic.late", "", "", float(self.late)),
            MetricRow("traffic.invalid", "", "", float(self.invalid)),
        ]
        if self.latency.valid:
            p50, p95, p99 = self.latency.quantiles([0.5, 0.95, 0.99])
            rows += [
                MetricRow("latency.p50", "", "", p50),
                MetricRow("latency.p95", "", "", p95),
                MetricRow("latency.p99", "", "", p99),
            ]
        quantiles = _feature_quantiles(self.features)
        for name, summary in sorted(self.features.items()):
            rows.extend(
                _input_metrics(name, summary, known_categories.get(name), quantiles.get(name))
            )
        rows.extend(_output_metrics(self.output, self.output_rows))
        for (feature, detector), fired in sorted(self.change_points.items()):
            rows.append(MetricRow(f"drift.stream.{detector}", feature, "", float(fired)))
        for name, summary in sorted(self.custom.items()):
            rows.extend(custom_rows(name, summary))
        if self.custom_over_cap:
            rows.append(
                MetricRow("custom.names_over_cap", "", "", float(len(self.custom_over_cap)))
            )
        return rows


class _Part(NamedTuple):
    """One part's numeric features, between its draws and the folding of every part."""

    rows: int
    summaries: list[NumericSummary]
    counts: list[int]  # present values per feature
    mismatched: list[int]
    gaps: list[bool]
    moments: list[Moments]  # of the features without gaps
    start: int  # where its present values begin in all parts' values


def add_parts(
    parts: Sequence[tuple[WindowProfile, npt.NDArray[np.intp]]], batch: EventBatch
) -> None:
    """``profile.add(batch.take(rows))`` for each profile and its rows of ``batch`` (the
    slices of a batch: each profile its segment value's events), to the last bit and the last
    random draw, at a few NumPy calls a part instead of a few a feature: every part's numeric
    features are gathered from one block of the batch's, the moments of the columns with
    missing values are taken for all parts at once (grouped by their count of values, each a
    contiguous row, which NumPy sums pairwise as it does the column alone), and the samples
    compare their priorities in one call. Each profile still draws from its own generator, in
    the order ``add`` does: latency, the numeric features, the output, the custom metrics. A
    part that ``add`` would fold a column at a time (see ``_plain``) goes through ``add``."""
    kinds = _summary_kinds(batch.features)
    names = [name for name, kind in kinds.items() if kind is NumericSummary]
    block = np.stack([batch.features[n].values for n in names]) if names else None
    folded: list[_Part] = []
    values: list[FloatArray] = []
    keys: list[FloatArray] = []
    counted: dict[str, list[tuple[CategoricalSummary, npt.NDArray[np.intp]]]] = {}
    start = 0
    for profile, rows in parts:
        if block is None or not rows.size or not _groupable(profile.features, kinds):
            profile.add(batch.take(rows))
            continue
        light = _light(batch, rows)
        profile._add_head(light)
        n = light.size
        summaries: list[NumericSummary] = []
        mismatched: list[int] = []
        for name, column in batch.features.items():
            summary = profile._summary(name, column, n)
            if isinstance(summary, NumericSummary):
                summaries.append(summary)
                wrong = column.mismatched
                mismatched.append(0 if wrong is None else int(wrong[rows].sum()))
            elif isinstance(summary, CategoricalSummary):  # counted below, no random draws
                counted.setdefault(name, []).append((summary, rows))
        sub = np.ascontiguousarray(block[:, rows])
        missing = np.isnan(sub)
        gaps = missing.any(axis=1)
        counts = (n - missing.sum(axis=1)).tolist()
        some = bool(gaps.any())
        present = sub[~missing] if some else sub.reshape(-1)
        full = sub[~gaps] if some else sub
        totals = full.sum(axis=1)
        means = totals / n
        m2s = ((full - means[:, None]) ** 2).sum(axis=1)
        moments = list(
            zip(
                totals.tolist(),
                means.tolist(),
                m2s.tolist(),
                full.min(axis=1).tolist(),
                full.max(axis=1).tolist(),
                strict=True,
            )
        )
        keys.append(profile._rng.random(present.size))
        values.append(present)
        folded.append(_Part(n, summaries, counts, mismatched, gaps.tolist(), moments, start))
        start += present.size
        profile._add_rest(light, batch.features)
    for name, jobs in counted.items():
        _count_parts(batch.features[name], jobs)
    if folded:
        _fold(folded, np.concatenate(values), np.concatenate(keys))


def _fold(parts: Sequence[_Part], flat: FloatArray, keys: FloatArray) -> None:
    """Fold the parts' moments and offer their values (``flat``, part after part, feature
    after feature) with their priorities to the samples: ``update_numeric``'s steps."""
    gapped = _grouped_moments(flat, _gap_runs([(p.start, p.counts, p.gaps) for p in parts]))
    samples: list[BottomKSample] = []
    counts: list[int] = []
    for part in parts:
        moments = iter(part.moments)
        offset = part.start
        for summary, count, wrong, has_gaps in zip(
            part.summaries, part.counts, part.mismatched, part.gaps, strict=True
        ):
            summary.tally(part.rows, count, wrong)
            if not has_gaps:
                summary.combine(part.rows, *next(moments))
            elif count:
                summary.combine(count, *gapped[offset])
            offset += count
        samples.extend(summary.sample for summary in part.summaries)
        counts.extend(part.counts)
    offer_each(samples, flat, keys, counts)


def _summary_kinds(columns: Mapping[str, Column]) -> dict[str, type[ColumnSummary]]:
    """The kind of summary each feature column goes to when ``add`` takes the numeric ones
    together; empty when it would not for any profile (see ``_plain``)."""
    kinds: dict[str, type[ColumnSummary]] = {}
    for name, column in columns.items():
        if column.kind is Kind.NUMERIC and column.values.ndim == 1:
            kinds[name] = NumericSummary
        elif column.kind is Kind.CATEGORICAL:
            kinds[name] = CategoricalSummary
        else:
            return {}
    return kinds


def _groupable(
    summaries: Mapping[str, ColumnSummary], kinds: Mapping[str, type[ColumnSummary]]
) -> bool:
    """Whether each column goes to a summary of its kind, or to a new one (``_plain``; and
    no numeric column to the counts of a feature that was text)."""
    found = map(summaries.get, kinds)
    return all(s is None or type(s) is k for s, k in zip(found, kinds.values(), strict=True))


def _count_parts(
    column: Column, jobs: Sequence[tuple[CategoricalSummary, npt.NDArray[np.intp]]]
) -> None:
    """``summary.update(column.values[rows])`` for each (summary, rows), in one count of
    (part, value) pairs: each part's values come in the order it shows them, as its own
    count would give them."""
    sizes = [rows.size for _, rows in jobs]
    values = column.values[np.concatenate([rows for _, rows in jobs])].tolist()
    owners = np.repeat(np.arange(len(jobs)), sizes).tolist()
    for (summary, _), size in zip(jobs, sizes, strict=True):
        summary.count += size
    for (owner, value), n in Counter(zip(owners, values, strict=True)).items():
        summary = jobs[owner][0]
        if value is None:
            summary.missing += n
        else:
            summary.add(value, n)


def _light(batch: EventBatch, rows: npt.NDArray[np.intp]) -> EventBatch:
    """``batch.take(rows)`` without the features (which ``add_parts`` folds itself)."""
    return EventBatch(
        size=int(rows.size),
        ts=batch.ts[rows],
        latency_ms=batch.latency_ms[rows],
        features={},
        prediction=None if batch.prediction is None else batch.prediction.take(rows),
        versions=batch.versions[rows],
        custom={name: values[rows] for name, values in batch.custom.items()},
    )


def _gap_runs(
    columns: Sequence[tuple[int, Sequence[int], Sequence[bool]]],
) -> tuple[list[int], list[int]]:
    """(starts, sizes) of the runs of present values of the columns with missing values but
    some present: ``columns`` gives, per group of columns laid out one after the other from
    ``start``, each one's count of present values and whether it has gaps."""
    starts: list[int] = []
    sizes: list[int] = []
    for offset, counts, gaps in columns:
        for count, has_gaps in zip(counts, gaps, strict=True):
            if has_gaps and count:
                starts.append(offset)
                sizes.append(count)
            offset += count
    return starts, sizes


def _grouped_moments(flat: FloatArray, runs: tuple[list[int], list[int]]) -> dict[int, Moments]:
    """The moments of each run of ``flat`` (starts, sizes), by its start: what
    ``combine_values`` takes of it, to the bit, the runs of one size in one call (each a
    contiguous row, which NumPy sums pairwise as it does the run alone)."""
    starts, sizes = runs
    out: dict[int, Moments] = {}
    if not starts:
        return out
    begin = np.array(starts)
    size = np.array(sizes)
    for c in np.unique(size).tolist():
        at = begin[size == c]
        matrix = flat[at[:, None] + np.arange(c)]
        totals = matrix.sum(axis=1)
        means = totals / c
        m2s = ((matrix - means[:, None]) ** 2).sum(axis=1)
        stats = zip(
            totals.tolist(),
            means.tolist(),
            m2s.tolist(),
            matrix.min(axis=1).tolist(),
            matrix.max(axis=1).tolist(),
            strict=True,
        )
        out.update(zip(at.tolist(), stats, strict=True))
    return out


CUSTOM_STATS = ("count", "mean", "sum", "p50", "p95")
CUSTOM_PREFIX = "custom"  # sent with predictions: custom.<name>.<stat>
OUTCOME_PREFIX = "labels.custom"  # sent with labels, joined by id: labels.custom.<name>.<stat>


def outcome_rows(
    outcomes: Sequence[Mapping[str, float] | None], config: ProfileConfig, seed: int = 0
) -> list[MetricRow]:
    """``labels.custom.<name>.<stat>`` of the outcomes joined to one window (or slice): the
    custom metrics of label events, one mapping (or None) per prediction."""
    summaries: dict[str, NumericSummary] = {}
    values: dict[str, list[float]] = {}
    for outcome in outcomes:
        for name, value in (outcome or {}).items():
            if name in values or len(values) < config.max_custom_metrics:
                values.setdefault(name, []).append(value)
    rng = np.random.default_rng(seed)
    for name, sent in values.items():
        summary = summaries[name] = NumericSummary(config.sample_size)
        summary.update(np.array(sent, dtype=float), 0, rng)
    return [
        row
        for name in sorted(summaries)
        for row in custom_rows(name, summaries[name], OUTCOME_PREFIX)
    ]


def custom_rows(name: str, s: NumericSummary, prefix: str = CUSTOM_PREFIX) -> Iterator[MetricRow]:
    """``custom.<name>.<stat>`` (:data:`CUSTOM_STATS`) of one custom metric's values; nothing
    when no event sent a value. ``count``: the events that did."""
    if not s.valid:
        return
    p50, p95 = s.quantiles([0.5, 0.95])
    stats = (float(s.valid), s.mean, s.total, p50, p95)
    for stat, value in zip(CUSTOM_STATS, stats, strict=True):
        yield MetricRow(f"{prefix}.{name}.{stat}", "", "", value)


def _count_absent(summary: ColumnSummary, rows: int) -> None:
    summary.count += rows
    summary.missing += rows


def _rate(part: float, whole: int) -> float:
    return part / whole if whole else 0.0


FEATURE_QUANTILES = (0.05, 0.5, 0.95)


def _feature_quantiles(features: Mapping[str, ColumnSummary]) -> dict[str, list[float]]:
    """``FEATURE_QUANTILES`` of every numeric feature with values, their samples taken
    together (``linear_quantiles_many``: the numbers ``quantiles`` gives each)."""
    named = [
        (name, s.sample.values)
        for name, s in features.items()
        if isinstance(s, NumericSummary) and s.valid
    ]
    named = [(name, values) for name, values in named if values.size]
    found = linear_quantiles_many([values for _, values in named], FEATURE_QUANTILES)
    return {name: q for (name, _), q in zip(named, found, strict=True)}


def _numeric_rows(
    prefix: str, name: str, s: NumericSummary, quantiles: list[float] | None = None
) -> Iterator[MetricRow]:
    if not s.valid:
        return
    p05, p50, p95 = quantiles or s.quantiles(list(FEATURE_QUANTILES))
    yield MetricRow(f"{prefix}.mean", name, "", s.mean)
    yield MetricRow(f"{prefix}.std", name, "", s.std)
    yield MetricRow(f"{prefix}.p05", name, "", p05)
    yield MetricRow(f"{prefix}.p50", name, "", p50)
    yield MetricRow(f"{prefix}.p95", name, "", p95)


def _input_metrics(
    name: str, s: ColumnSummary, known: set[str] | None, quantiles: list[float] | None = None
) -> Iterator[MetricRow]:
    yield MetricRow("input.missing_rate", name, "", _rate(s.missing, s.count))
    if isinstance(s, NumericSummary):
        if s.mismatched:
            yield MetricRow("input.type_mismatch_rate", name, "", _rate(s.mismatched, s.count))
        yield from _numeric_rows("input", name, s, quantiles)
    elif isinstance(s, CategoricalSummary):
        present = s.present
        for category, n in s.counts.most_common():
            yield MetricRow("input.category_freq", name, category, _rate(n, present))
        if known is not None:
            new = sum(n for c, n in s.counts.items() if c not in known and c != OTHER)
            yield MetricRow("input.new_category_rate", name, "", _rate(new, present))


def _output_metrics(s: ColumnSummary | None, rows: int) -> Iterator[MetricRow]:
    if s is None:  # no prediction seen yet: all outputs were null
        yield MetricRow("output.null_rate", "", "", 1.0 if rows else 0.0)
        return
    yield MetricRow("output.null_rate", "", "", _rate(s.missing, s.count))
    if isinstance(s, NumericSummary):
        yield from _numeric_rows("output", "", s)
    elif isinstance(s, CategoricalSummary):
        for category, n in s.counts.most_common():
            yield MetricRow("output.class_freq", "", category, _rate(n, s.present))
    else:
        present = s.count - s.missing
        for cls in range(s.width):
            label = str(cls)
            yield MetricRow("output.class_prob_mean", "", label, _rate(s.prob_sum[cls], present))
            yield MetricRow("output.class_freq", "", label, _rate(s.argmax_counts[cls], present))
