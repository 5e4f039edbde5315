"""Request and response bodies of the alarm resources, named by role (``RuleCreate``...)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    field_validator,
    model_validator,
)

from alarms.rules import Comparison
from api.timeparse import Time

Severity = Literal["info", "warning", "critical"]
Action = Literal["notify", "retrain", "rollback"]
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]
Pattern = Annotated[str, Field(max_length=200, description="exact name, or a glob (* ? [..])")]
Labels = Annotated[dict[LabelName, Annotated[str, Field(max_length=500)]], Field(max_length=50)]


# Request bodies are validated strictly: JSON's types as the schema states them, no coercion
# ("enabled": 0 is not a boolean, "for": "2" not an integer). Enums are the exception: a
# strict enum would want an Enum instance, and its JSON value is what a client sends.
STRICT_BODY = ConfigDict(extra="forbid", strict=True)


def _notify_only() -> list[Action]:
    return ["notify"]


class RuleCreate(BaseModel):
    """A threshold alarm on one metric; selectors are exact names or globs (``*`` = any)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200, examples=["AgeMissing"])
    metric: str = Field(
        pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$",
        max_length=200,
        description="a metric the worker writes, e.g. input.missing_rate, drift.share_drifted",
    )
    model: Pattern = "*"
    feature: Pattern = Field("*", description="'' = model-level metrics only")
    segment: Pattern = Field("*", description="'' = the whole stream, not a slice")
    version: Pattern = Field(
        "",
        description="a model version (exact or glob: '*' = every version): the rule watches "
        "that version's own figures instead of the whole model's or its slices'",
    )
    category: Pattern = "*"
    comparison: Annotated[Comparison, Strict(False)]
    threshold: float = Field(allow_inf_nan=False)
    for_windows: int = Field(
        1, alias="for", ge=1, le=10_000, description="consecutive breaching windows to fire"
    )
    keep_firing_for: int = Field(
        0, ge=0, le=10_000, description="clear windows a firing alert waits before resolving"
    )
    severity: Severity = "warning"
    labels: Labels = Field(default_factory=dict)
    actions: list[Action] = Field(default_factory=_notify_only, max_length=3)
    description: str = Field("", max_length=2000)
    enabled: bool = True

    @model_validator(mode="after")
    def _slice_or_version(self) -> RuleCreate:
        if self.version and self.segment not in ("*", ""):
            raise ValueError(
                "a rule watches a segment slice or a version, not both: "
                f"drop 'segment' ({self.segment!r}) or 'version' ({self.version!r})"
            )
        if self.segment.startswith("@"):
            raise ValueError("'segment' cannot start with '@': use 'version' for a version")
        return self


class RulePublic(RuleCreate):
    model_config = ConfigDict(strict=False)  # built from stored rules, not from a client

    id: str
    origin: str = Field(description="'default' for the rules Driftline ships, else 'user'")
    created_at: str | None
    updated_at: str | None


class FindingPublic(BaseModel):
    kind: Literal["errors", "shift"] = Field(
        description="errors: a slice of the alert's labelled examples where the model fails "
        "most (quality and concept-drift alerts); shift: a declared slice whose inputs "
        "shifted most in the window that fired the alert (data-drift alerts)"
    )
    slice: str = Field(description="its predicates, e.g. segment.channel=mobile ∧ amount<20.5")
    size: int = Field(description="its labelled examples (errors) or events (shift)")
    value: float | None = Field(description="its error (rate, or MAE), or its drift effect")
    reference: float | None = Field(
        description="the error of the rest of the examples, or the whole window's drift effect"
    )
    q_value: float | None = Field(
        description="errors: that the slice is worse than the rest, Benjamini-Hochberg adjusted "
        "over every slice the search tried"
    )


class FindingsPublic(BaseModel):
    items: list[FindingPublic] = Field(description="best first")
    note: str = Field(description="what was searched, or why nothing was ('' if not searched)")


class AlertPublic(BaseModel):
    id: str
    state: Literal["pending", "firing", "resolved", "inactive"]
    rule_id: str
    rule_name: str
    model: str
    feature: str
    segment: str
    version: str = Field("", description="the version whose cut the alert is on ('' if none)")
    metric: str
    comparison: str
    threshold: float
    value: float | None = Field(description="latest value (worst over categories)")
    severity: str
    labels: dict[str, str]
    actions: list[str]
    description: str
    active_since: str | None = Field(description="start of the first breaching window")
    last_window: str | None = Field(description="start of the newest window evaluated")
    fired_at: str | None
    resolved_at: str | None
    notified_at: str | None = Field(description="last notification sent (not silenced)")
    updated_at: str | None
    findings: FindingsPublic = Field(
        description="where the trouble is, found when the alert fired: the top slices of its "
        "errors (quality, concept drift) or of its input shift (data drift)"
    )


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


class SubscriptionCreate(BaseModel):
    """A receiver; the filters select which alerts it gets (empty: all). ``kind``:
    ``webhook`` (a signed Driftline document POSTed to ``url``) or ``alertmanager``
    (``url`` is an Alertmanager's base URL; alerts go to its ``/api/v2/alerts``)."""

    model_config = STRICT_BODY

    kind: Literal["webhook", "alertmanager"] = "webhook"
    url: str = Field(
        max_length=2048,
        pattern=r"^https?://[^\s/?#]+[^\s]*$",
        examples=["https://hooks.example.com/driftline"],
    )
    secret: SecretStr | None = Field(
        None, max_length=512, description="signs each body: X-Driftline-Signature (HMAC-SHA256)"
    )
    model: Pattern = "*"
    severities: list[Severity] = Field(default_factory=list, max_length=3)
    labels: Labels = Field(default_factory=dict, description="alert labels: exact or glob")
    description: str = Field("", max_length=2000)

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _alertmanager_unsigned(self) -> SubscriptionCreate:
        if self.kind == "alertmanager":
            if self.secret is not None:
                raise ValueError("an alertmanager subscription takes no secret (nothing signs)")
            if urlsplit(self.url).query or urlsplit(self.url).fragment:
                raise ValueError("an alertmanager url is its base URL: no query or fragment")
        return self


class SubscriptionPublic(BaseModel):
    """A subscription as the API shows it: never its secret."""

    id: str
    kind: Literal["webhook", "alertmanager"]
    url: str
    has_secret: bool
    model: str
    severities: list[str]
    labels: dict[str, str]
    description: str
    created_at: str | None


class DeliveryPublic(BaseModel):
    id: str
    subscription_id: str
    alert_id: str
    event: str
    status: Literal["pending", "retrying", "delivered", "failed", "silenced", "cancelled"]
    attempts: int
    response_code: int | None
    error: str
    created_at: str | None
    next_attempt_at: str | None
    finished_at: str | None
    payload: dict[str, Any] | list[dict[str, Any]] = Field(
        description="the body sent: Driftline's document, or Alertmanager's alert array"
    )


class MatcherBody(BaseModel):
    model_config = STRICT_BODY

    name: LabelName
    value: str = Field(max_length=1000)
    op: Literal["=", "!=", "=~", "!~"] = "="

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatcherBody:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(
                    f"{self.value!r} is not a valid regular expression: {exc}"
                ) from None
        return self


class SilenceCreate(BaseModel):
    """Mutes notifications of the alerts every matcher selects, from ``starts_at`` (default
    now) until ``ends_at`` (or for ``duration_s``). Times: epoch seconds or RFC 3339."""

    model_config = STRICT_BODY

    matchers: list[MatcherBody] = Field(min_length=1, max_length=50)
    starts_at: Time | None = Field(None, description="default: now")
    ends_at: Time | None = None
    duration_s: float | None = Field(None, gt=0, le=366 * 86400, allow_inf_nan=False)
    comment: str = Field("", max_length=2000)
    created_by: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _has_an_end(self) -> SilenceCreate:
        if self.ends_at is None and self.duration_s is None:
            raise ValueError("give 'ends_at' or 'duration_s'")
        return self


class SilencePublic(BaseModel):
    id: str
    matchers: list[MatcherBody]
    starts_at: str | None
    ends_at: str | None
    status: Literal["pending", "active", "expired"]
    comment: str
    created_by: str
    created_at: str | None
