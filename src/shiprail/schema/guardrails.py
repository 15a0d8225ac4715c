"""The rules a policy, a service and a release plan must keep, each with the sentence it prints.

Pydantic checks shapes and types; these check meaning: that a contract can fire, that a rollout
passes every required weight, that the right people and channels exist. Every rule reports a
``Problem`` at the exact key it concerns, and all rules run, so a user sees everything at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from shiprail import defaults
from shiprail.durations import format_duration
from shiprail.errors import Problem
from shiprail.providers import metric_problem, template_problems, url_problems
from shiprail.routers import weight_problem
from shiprail.routers.haproxy import HaproxyRouterConfig, socket_problem
from shiprail.routers.nginx import NginxRouterConfig, address_problems
from shiprail.schema.plan import (
    COMPARISONS,
    MAX_CONSECUTIVE_SECONDS,
    MAX_LOAD_USERS,
    MAX_MIN_SAMPLES,
    MAX_SIGNAL_ABOVE,
    Probe,
    ReleasePlan,
    Stage,
    Step,
    Trigger,
)
from shiprail.schema.policy import APPROVE_ROLES, ON_CALL_ROLE, RISK_ORDER, Policy
from shiprail.schema.resolved import analysis_interval, effective_risk
from shiprail.schema.service import FRACTION_KINDS, LATENCY_KINDS, REGRESSION_KINDS, Metric, Service, is_service_name
from shiprail.schema.source import SourceDoc
from shiprail.schema.validation import did_you_mean
from shiprail.text import is_http_url

SIGNALS = ("customer_complaint", "alert")
METRIC_KINDS = ("error_rate", "latency", "rate", "count", "ratio", "gauge")

# Numbers from this size on are shown as 1e+30, not as 31 digits.
_SHOWN_AS_EXPONENT = 10**15


def _num(value: float) -> str:
    if abs(value) >= _SHOWN_AS_EXPONENT:
        digits = str(abs(int(value)))  # an int of 400 digits has no float to format
        mantissa = f"{digits[0]}.{digits[1:4]}".rstrip("0").rstrip(".")
        return f"{'-' if value < 0 else ''}{mantissa}e+{len(digits) - 1}"
    return str(int(value)) if float(value).is_integer() else str(value)


# ------------------------------------------------------------------------------------ policy


def check_policy(policy: Policy, doc: SourceDoc) -> list[Problem]:
    """Rules for ``shiprail.yaml``."""
    out: list[Problem] = []
    weights = policy.rollout.weights
    for i, w in enumerate(weights):
        if not 0 < w <= 100:
            out.append(doc.problem(("rollout", "weights", i), f"a weight is a percentage in (0, 100], got {w}"))
        if i and w <= weights[i - 1]:
            out.append(
                doc.problem(
                    ("rollout", "weights", i),
                    f"{w} comes after {weights[i - 1]}; weights must increase",
                )
            )
    if not weights:
        out.append(doc.problem(("rollout", "weights"), "at least one weight is required, and the last must be 100"))
    elif weights[-1] != 100:
        out.append(doc.problem(("rollout", "weights"), "the last weight must be 100"))
    for risk, bakes in policy.rollout.min_bake.items():
        for weight, seconds in bakes.items():
            if weights and weight not in weights:
                out.append(
                    doc.problem(
                        ("rollout", "min_bake", risk, weight),
                        f"weight {weight} is not one of rollout.weights ({', '.join(map(str, weights))})",
                    )
                )
            if seconds < 0:
                out.append(doc.problem(("rollout", "min_bake", risk, weight), "cannot be negative"))
    if policy.rollout.analysis_interval <= 0:
        out.append(doc.problem(("rollout", "analysis_interval"), "must be longer than 0s"))
    for risk, gates in policy.gates.items():
        if gates.approvals < 0:
            out.append(doc.problem(("gates", risk, "approvals"), "cannot be negative"))
    for i, item in enumerate(policy.contract.must_cover):
        if item not in METRIC_KINDS and item not in SIGNALS:
            out.append(
                doc.problem(
                    ("contract", "must_cover", i),
                    f"{item!r} is neither a metric kind ({', '.join(METRIC_KINDS)}) nor a signal "
                    f"({', '.join(SIGNALS)}){did_you_mean(item, [*METRIC_KINDS, *SIGNALS])}",
                )
            )
    if policy.verify.window <= 0:
        out.append(doc.problem(("verify", "window"), "must be longer than 0s"))
    if not policy.overrides.roles:
        out.append(doc.problem(("overrides", "roles"), "at least one role must be able to override"))
    most = defaults.OVERRIDE_REASON_MIN_CHARS_MAX
    if policy.overrides.reason_min_chars > most:
        out.append(
            doc.problem(
                ("overrides", "reason_min_chars"),
                f"{policy.overrides.reason_min_chars} characters would make every override reason (and "
                f"post-mortem summary) all but impossible to write; give at most {most}",
            )
        )
    out.extend(_freeze_problems(policy, doc))
    if policy.audit.anchors is not None and not policy.audit.anchors.strip():
        out.append(
            doc.problem(
                ("audit", "anchors"),
                "is empty; give the anchor log's file path (relative to the project directory), or leave the key out",
            )
        )
    if policy.audit.anchor_every <= 0:
        out.append(doc.problem(("audit", "anchor_every"), "must be longer than 0s"))
    seen: dict[str, str] = {}
    for name in policy.people:
        # The gates count distinct names: bob and Bob would be two approvers, and Alice could
        # approve alice's release.
        key = name.strip().casefold()
        if key in seen:
            out.append(
                doc.problem(
                    ("people", name),
                    f"{name!r} differs from {seen[key]!r} only in case or spaces; give each person one name",
                )
            )
        else:
            seen[key] = name
    return out


def _freeze_problems(policy: Policy, doc: SourceDoc) -> Iterator[Problem]:
    """Each freeze is one window (start/end) or a recurring one (cron_start/cron_end), whole, and named once."""
    names: set[str] = set()
    for i, f in enumerate(policy.freezes):
        at = ("freezes", i)
        one_off = f.start is not None or f.end is not None
        recurring = f.cron_start is not None or f.cron_end is not None
        if not f.name.strip():
            yield doc.problem((*at, "name"), "give the freeze a name, said in the gate's reason")
        elif f.name in names:
            yield doc.problem((*at, "name"), f"another freeze is named {f.name!r}; give each freeze its own name")
        names.add(f.name)
        if one_off and recurring:
            yield doc.problem(
                at, "give start and end (one window) or cron_start and cron_end (a recurring one), not both"
            )
        elif not one_off and not recurring:
            yield doc.problem(at, "give start and end (one window) or cron_start and cron_end (a recurring one)")
        elif one_off and (f.start is None or f.end is None):
            yield doc.problem(at, f"{'end' if f.end is None else 'start'} is missing; a one-off freeze needs both")
        elif recurring and (f.cron_start is None or f.cron_end is None):
            yield doc.problem(
                at, f"{'cron_end' if f.cron_end is None else 'cron_start'} is missing; a recurring freeze needs both"
            )
        elif f.start is not None and f.end is not None and f.end <= f.start:
            yield doc.problem(
                (*at, "end"),
                f"{f.end:%Y-%m-%dT%H:%M} is not after start ({f.start:%Y-%m-%dT%H:%M}); a freeze ends after it begins",
            )
        elif f.cron_start is not None and f.cron_start == f.cron_end:
            yield doc.problem((*at, "cron_end"), "is the same as cron_start, so the freeze would never be on")


# ----------------------------------------------------------------------------------- service


def check_service(service: Service, doc: SourceDoc, expected_name: str) -> list[Problem]:
    """Rules for ``services/<name>.yaml``."""
    out: list[Problem] = []
    if service.name != expected_name:
        out.append(
            doc.problem(
                ("name",),
                f"{service.name!r} does not match the file name; use name: {expected_name}",
            )
        )
    if not service.metrics:
        out.append(doc.problem(("metrics",), "at least one metric is required for a contract to watch"))
    for name, metric in service.metrics.items():
        if _cut(doc, ("metrics", name), metric.model_fields_set):
            continue  # a key of it was refused (quantile: 1.5) and is reported; "has no quantile" would be false
        why = metric_problem(service.provider, name, metric)
        if why:
            out.append(doc.problem(("metrics", name), f"{why} (provider type {service.provider.type})"))
        for path, problem in template_problems(service.provider, metric):
            out.append(doc.problem(("metrics", name, *path), problem))
    for key, why in url_problems(service.provider):
        out.append(doc.problem(("provider", key), why))
    if isinstance(service.router, NginxRouterConfig):
        for key, why in address_problems(service.router):
            out.append(doc.problem(("router", key), why))
    elif isinstance(service.router, HaproxyRouterConfig) and (why := socket_problem(service.router)):
        out.append(doc.problem(("router", "socket"), why))
    timeout = getattr(service.provider, "timeout", None)
    if timeout is not None and timeout <= 0:
        # Every query would give up at once: each analysis inconclusive, the release paused.
        out.append(doc.problem(("provider", "timeout"), "must be longer than 0s"))
    if service.defaults.stage is not None:
        out.extend(_stage_problems(service.defaults.stage, doc, ("defaults", "stage")))
    if service.defaults.verify is not None:
        out.extend(_probe_problems(service.defaults.verify.probes, doc, ("defaults", "verify", "probes")))
    return out


def _cut(doc: SourceDoc, loc: tuple[str, ...], given: set[str]) -> bool:
    """Whether the file gives the mapping at ``loc`` a key its model lacks: one validation refused and cut."""
    here = doc.data
    for part in loc:
        here = here.get(part) if isinstance(here, dict) else None
    return isinstance(here, dict) and any(key not in given for key in here)


# -------------------------------------------------------------------------------------- plan


@dataclass
class PlanContext:
    """What the plan rules look at."""

    doc: SourceDoc
    plan: ReleasePlan
    broken: set[str]
    policy: Policy
    service: Service | None = None
    service_doc: SourceDoc | None = None
    known_services: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)

    def ok(self, *sections: str) -> bool:
        """True when none of ``sections`` failed to parse (so rules about them can run)."""
        return not self.broken.intersection(sections)


PlanRule = Callable[[PlanContext], Iterator[Problem]]
RULES: list[PlanRule] = []


def rule(fn: PlanRule) -> PlanRule:
    """Register a plan rule; rules run in the order they are defined."""
    RULES.append(fn)
    return fn


@rule
def required_fields(ctx: PlanContext) -> Iterator[Problem]:
    plan, doc = ctx.plan, ctx.doc
    for key in ("service", "version", "baseline", "owner"):
        if ctx.ok(key) and getattr(plan, key) is None:
            yield doc.problem((key,), "is required")
        elif ctx.ok(key) and not getattr(plan, key).strip():
            yield doc.problem((key,), "is required; it is empty")
    if ctx.ok("service") and plan.service and plan.service.strip() and not is_service_name(plan.service):
        yield doc.problem(
            ("service",),
            f"{plan.service!r} is not a service name: it names services/<service>.yaml, so it cannot start with a "
            "dot or hold / \\ : or ..",
        )
    if ctx.ok("scope"):
        if plan.scope is None:
            yield doc.problem(("scope",), "is required: summary, user_facing, changes and tags")
        elif not plan.scope.summary:
            yield doc.problem(("scope", "summary"), "a one-line summary of the change is required")
    if ctx.ok("rollback_contract") and plan.rollback_contract is None:
        yield doc.problem(
            ("rollback_contract",),
            "a rollback contract is required (no contract, no release); see `shiprail init` for an example",
        )
    if ctx.ok("verify") and plan.verify is None:
        yield doc.problem(("verify",), "is required: the validation window and who is on call")
    if plan.version and plan.baseline and plan.version == plan.baseline:
        yield doc.problem(("version",), f"is the same as the baseline ({plan.baseline}); a release changes the version")


@rule
def known_people(ctx: PlanContext) -> Iterator[Problem]:
    plan = ctx.plan
    if plan.owner and plan.owner not in ctx.policy.people:
        yield ctx.doc.problem(
            ("owner",),
            f"{plan.owner!r} is not a person in shiprail.yaml; add them under people"
            f"{did_you_mean(plan.owner, ctx.people)}",
        )


@rule
def service_exists(ctx: PlanContext) -> Iterator[Problem]:
    name = ctx.plan.service
    if name and is_service_name(name) and ctx.service is None and ctx.service_doc is None:
        yield ctx.doc.problem(
            ("service",),
            f"no service file services/{name}.yaml; create it or fix the name{did_you_mean(name, ctx.known_services)}",
        )


def _trigger_problems(ctx: PlanContext, i: int, trigger: Trigger) -> Iterator[Problem]:
    loc = ("rollback_contract", "triggers", i)
    doc = ctx.doc
    if trigger.metric is None and trigger.signal is None:
        yield doc.problem(loc, f"a metric or a signal ({', '.join(SIGNALS)}) is required")
        return
    if trigger.metric is not None and trigger.signal is not None:
        yield doc.problem((*loc, "signal"), "give a metric or a signal, not both")
        return
    given = trigger.comparisons()
    if not given:
        yield doc.problem(loc, f"a comparison with a number is required: one of {', '.join(COMPARISONS)}")
    elif len(given) > 1:
        yield doc.problem(
            (*loc, given[1]),
            f"one comparison per trigger, got {' and '.join(given)}; split it into two triggers",
        )
    if trigger.min_samples is not None and trigger.min_samples < 0:
        yield doc.problem((*loc, "min_samples"), f"cannot be negative, got {trigger.min_samples}")
    elif trigger.min_samples is not None and trigger.min_samples > MAX_MIN_SAMPLES:
        yield doc.problem(
            (*loc, "min_samples"),
            f"{_num(trigger.min_samples)} can never fire: no window holds more than {_num(MAX_MIN_SAMPLES)} samples "
            "(10⁵ requests a second for 300 years); give a smaller number",
        )
    if trigger.consecutive is not None and trigger.consecutive < 1:
        yield doc.problem((*loc, "consecutive"), f"must be at least 1, got {trigger.consecutive}")
    elif trigger.consecutive is not None:
        interval = _analysis_interval(ctx)
        most = MAX_CONSECUTIVE_SECONDS // interval
        if trigger.consecutive > most:
            yield doc.problem(
                (*loc, "consecutive"),
                f"{_num(trigger.consecutive)} can never fire: that many analyses in a row, one every "
                f"{format_duration(interval)}, take longer than {format_duration(MAX_CONSECUTIVE_SECONDS)}, "
                f"the longest a step or validation window may last; give at most {most:,}",
            )
    # A regression written but unusable (``regression: true``) is reported where it stands; it still
    # means the trigger has no window to ask for.
    regression = trigger.regression is not None or (*loc, "regression") in doc.lines
    if regression and trigger.signal is None:
        if trigger.window is not None:
            yield doc.problem(
                (*loc, "window"),
                "a regression test reads every analysis since the rollout began, not a window; remove window",
            )
    elif trigger.window is None:
        # A signal compared other than with above: that problem (below) asks for the window too.
        if not (trigger.signal and any(c != "above" for c in given)):
            what = "the signals are counted over" if trigger.signal else "the metric is measured over"
            yield doc.problem((*loc, "window"), f"a window {what} is required (e.g. 5m)")
    elif trigger.window <= 0:
        yield doc.problem((*loc, "window"), "must be longer than 0s")

    if trigger.signal is not None:
        for comparison in given:
            if comparison != "above":
                yield doc.problem(
                    (*loc, comparison),
                    f"{'an' if trigger.signal[:1] in 'aeiou' else 'a'} {trigger.signal} signal is a count; "
                    "compare it with above: N" + (" over a window (e.g. window: 1h)" if trigger.window is None else ""),
                )
        if trigger.above is not None and trigger.above < 0:
            yield doc.problem(
                (*loc, "above"),
                f"a count above {_num(trigger.above)} always fires; a count cannot be negative",
            )
        elif trigger.above is not None and trigger.above >= MAX_SIGNAL_ABOVE:
            yield doc.problem(
                (*loc, "above"),
                f"a count above {_num(trigger.above)} can never fire: no window gathers more than "
                f"{MAX_SIGNAL_ABOVE:,} {trigger.signal} signals; give a smaller count",
            )
        return

    metric = trigger.metric
    if ctx.service is None:
        return
    defined = ctx.service.metrics.get(metric or "")
    if defined is None:
        yield doc.problem(
            (*loc, "metric"),
            f"{metric!r} is not defined by service {ctx.service.name!r} "
            f"(services/{ctx.service.name}.yaml metrics)"
            f"{did_you_mean(metric or '', list(ctx.service.metrics))}",
        )
        return
    kind = defined.kind
    if trigger.above is not None:
        if kind in FRACTION_KINDS and trigger.above >= 1:
            yield doc.problem(
                (*loc, "above"),
                f"{_num(trigger.above)} can never fire: {metric} is a fraction between 0 and 1 (write 0.01 for 1%)",
            )
        elif kind != "gauge" and trigger.above < 0:
            yield doc.problem((*loc, "above"), f"{_num(trigger.above)} always fires: {metric} is never negative")
    if trigger.below is not None:
        if kind != "gauge" and trigger.below <= 0:
            yield doc.problem((*loc, "below"), f"{_num(trigger.below)} can never fire: {metric} is never negative")
        elif kind in FRACTION_KINDS and trigger.below > 1:
            yield doc.problem(
                (*loc, "below"),
                f"{_num(trigger.below)} always fires: {metric} is a fraction between 0 and 1",
            )
    if trigger.above_baseline is not None and trigger.above_baseline <= 1:
        yield doc.problem(
            (*loc, "above_baseline"),
            f"a ratio of {_num(trigger.above_baseline)} fires while the canary is no worse than "
            "the baseline; use a ratio above 1 (2 means twice the baseline)",
        )
    if trigger.regression is not None:
        for field, rule in trigger.regression.out_of_range():
            value = getattr(trigger.regression, field)
            yield doc.problem((*loc, "regression", field), f"{rule}, got {_num(value)}")
        if kind in LATENCY_KINDS and trigger.regression.bursts != "independent":
            yield doc.problem(
                (*loc, "regression", "bursts"),
                f"{metric} is a {kind} metric; bursts applies to error_rate and ratio metrics: remove it",
            )
        if kind not in REGRESSION_KINDS:
            yield doc.problem(
                (*loc, "regression"),
                f"{metric} is a {kind} metric; the regression test compares error_rate, ratio and latency metrics",
            )
        else:
            missing = _regression_input(ctx.service, defined)
            if missing:
                yield doc.problem((*loc, "regression"), f"{metric}: {missing}")


def _analysis_interval(ctx: PlanContext) -> int:
    """How often the contract is evaluated, as ``resolve`` says: the plan's rollout, the service's, the policy's."""
    rollout = ctx.plan.rollout if ctx.ok("rollout") else None
    if rollout is None and ctx.plan.rollout is None and ctx.service is not None:
        rollout = ctx.service.defaults.rollout
    interval = analysis_interval(rollout, ctx.policy)
    # A negative interval is reported where it stands; judge `consecutive` by the policy's meanwhile.
    return max(interval if interval > 0 else ctx.policy.rollout.analysis_interval, 1)


def _regression_input(service: Service, metric: Metric) -> str | None:
    """Why ``service``'s provider cannot give the regression test its counts or buckets, or None."""
    provider = service.provider.type
    where = f"services/{service.name}.yaml"
    if metric.kind in LATENCY_KINDS:
        if provider == "prometheus" and not metric.buckets_query:
            return f"the regression test compares histogram buckets; give the metric a buckets_query in {where}"
        if provider == "web":
            return "the web provider reads one number, not histogram buckets; use prometheus, scrape or push"
    elif provider == "prometheus" and not metric.count_query:
        return f"the regression test needs request counts; give the metric a count_query in {where}"
    elif provider == "web" and not metric.count_path:
        return f"the regression test needs request counts; give the metric a count_path in {where}"
    return None


@rule
def contract(ctx: PlanContext) -> Iterator[Problem]:
    c = ctx.plan.rollback_contract
    if c is None:
        return
    doc = ctx.doc
    if not c.triggers:
        yield doc.problem(("rollback_contract", "triggers"), "at least one trigger is required")
        return
    names: dict[str, int] = {}
    for i, trigger in enumerate(c.triggers):
        yield from _trigger_problems(ctx, i, trigger)
        name = trigger.name or trigger.metric or trigger.signal or ""
        if name in names:
            yield doc.problem(
                ("rollback_contract", "triggers", i, "name"),
                f"{name!r} is already the name of triggers[{names[name]}]; names must be unique",
            )
        names.setdefault(name, i)
    if not c.armed():
        # "No contract, no release": triggers that only report cannot be the contract.
        yield doc.problem(
            ("rollback_contract", "triggers"),
            f"every trigger is a dry run ({len(c.triggers)} with dry_run: true), so nothing would roll the release "
            "back; at least one trigger without dry_run is required",
        )
    if c.revert.max_duration is not None and c.revert.max_duration <= 0:
        yield doc.problem(("rollback_contract", "revert", "max_duration"), "must be longer than 0s")
    if ctx.service is None:
        return
    covered: set[str] = set()
    # A trigger watching nothing, or a metric the service does not define, is already reported;
    # it may be the very trigger meant to cover a requirement, so do not report that twice.
    unknown: set[str] = set()
    # A dry run covers nothing: it never rolls back, so must_cover would be met by a trigger that cannot act.
    for trigger in c.armed():
        if trigger.signal:
            covered.add(trigger.signal)
        elif trigger.metric is None:
            unknown.update((*METRIC_KINDS, *SIGNALS))
        elif trigger.metric in ctx.service.metrics:
            covered.add(ctx.service.metrics[trigger.metric].kind)
        else:
            unknown.update(METRIC_KINDS)
    for need in ctx.policy.contract.must_cover:
        if need not in covered and need not in unknown:
            if need in SIGNALS:
                what = f"add a trigger with signal: {need}"
            else:
                fitting = [name for name, metric in ctx.service.metrics.items() if metric.kind == need]
                what = (
                    f"add a trigger on {' or '.join(fitting)}"
                    if fitting
                    else f"services/{ctx.service.name}.yaml defines no {need} metric; add one and a trigger on it"
                )
            dry = [t.name or t.metric or t.signal or "" for t in c.dry_runs() if _covers(ctx, t) == need]
            if dry:
                what += f" ({', '.join(dry)} {'has' if len(dry) == 1 else 'have'} dry_run: true, which covers nothing)"
            yield doc.problem(
                ("rollback_contract", "triggers"),
                f"the contract does not cover {need}, which shiprail.yaml contract.must_cover requires; {what}",
            )


def _covers(ctx: PlanContext, trigger: Trigger) -> str | None:
    """The metric kind or signal ``trigger`` watches, when it names one the service defines."""
    if trigger.signal:
        return trigger.signal
    if ctx.service is not None and trigger.metric in ctx.service.metrics:
        return ctx.service.metrics[trigger.metric].kind
    return None


@rule
def risk_and_stage(ctx: PlanContext) -> Iterator[Problem]:
    plan, doc, policy = ctx.plan, ctx.doc, ctx.policy
    if not ctx.ok("scope", "risk", "stage"):
        return
    risk, _ = effective_risk(plan, policy)
    implied, why = effective_risk(plan.model_copy(update={"risk": None}), policy)
    if plan.risk and RISK_ORDER[plan.risk] < RISK_ORDER[implied]:
        yield doc.problem(
            ("risk",),
            f"{plan.risk!r} is below the {implied!r} the tags imply ({why}); raise it or change the tags",
        )
    gates = policy.gates_for(risk)
    stage = plan.stage or (ctx.service.defaults.stage if ctx.service else None)
    if gates.qa_checklist and not (stage and stage.qa_checklist):
        yield doc.problem(
            ("stage", "qa_checklist"),
            f"a {risk}-risk release needs a QA checklist (shiprail.yaml gates.{risk}.qa_checklist)",
        )
    if gates.load_test and not (stage and stage.load_test):
        yield doc.problem(
            ("stage", "load_test"),
            f"a {risk}-risk release needs a load test (shiprail.yaml gates.{risk}.load_test)",
        )
    asked = plan.stage.approvals if plan.stage is not None else None
    if asked is not None and asked < gates.approvals:
        yield doc.problem(
            ("stage", "approvals"),
            f"{asked} is below the {gates.approvals} approvals shiprail.yaml "
            f"requires for {risk} risk; a plan may ask for more, never fewer",
        )
    else:
        # More approvals than people who may give them: the gate could never pass but by override,
        # whether the plan asks for them or shiprail.yaml does for its risk.
        needed = gates.approvals if asked is None else asked
        able = sorted(
            name
            for name, person in policy.people.items()
            if set(person.roles) & set(APPROVE_ROLES) and name != plan.owner
        )
        if needed > len(able):
            who = f" ({', '.join(able)})" if able else ""
            whose, fix = (
                ("", f"ask for at most {len(able)}")
                if asked is not None
                else (
                    f" (what shiprail.yaml gates.{risk}.approvals requires)",
                    f"lower gates.{risk}.approvals in shiprail.yaml to at most {len(able)}",
                )
            )
            yield doc.problem(
                ("stage", "approvals"),
                f"{_num(needed)}{whose} can never be given: shiprail.yaml has {len(able)} people besides the "
                f"owner who may approve{who}; {fix}, or add approvers",
            )
    if plan.stage is None:
        return
    yield from _stage_problems(plan.stage, doc, ("stage",))


def _stage_problems(stage: Stage, doc: SourceDoc, base: tuple[str, ...]) -> Iterator[Problem]:
    """A plan's ``stage`` or a service's ``defaults.stage``: tests and load test that can run and fail."""
    seen: set[str] = set()
    for i, test in enumerate(stage.tests):
        if not test.name.strip():
            yield doc.problem((*base, "tests", i, "name"), "is empty; name the suite (gate evidence is listed by name)")
        elif test.name in seen:
            yield doc.problem((*base, "tests", i, "name"), f"{test.name!r} is used twice; names must be unique")
        seen.add(test.name)
        if test.cwd is not None and not test.cwd.strip():
            yield doc.problem((*base, "tests", i, "cwd"), "is empty; give the directory to run in, or remove cwd")
        if not test.command.strip():
            # The empty shell exits 0: a blank command would pass the tests gate without running a test.
            yield doc.problem(
                (*base, "tests", i, "command"),
                "is empty; give the shell command that runs the tests (an empty one passes without testing)",
            )
        if test.timeout <= 0:
            yield doc.problem((*base, "tests", i, "timeout"), "must be longer than 0s")
        if test.junit is not None and not test.junit.strip():
            yield doc.problem(
                (*base, "tests", i, "junit"),
                "is empty; give the path of the JUnit XML report the command writes, or remove junit",
            )
    items: dict[str, int] = {}
    for i, item in enumerate(stage.qa_checklist):
        if not item.strip():
            yield doc.problem((*base, "qa_checklist", i), "is empty; write what QA checks, or remove the item")
        elif item.strip() in items:
            yield doc.problem(
                (*base, "qa_checklist", i),
                f"{item.strip()!r} is already qa_checklist[{items[item.strip()]}]; remove the repeat",
            )
        items.setdefault(item.strip(), i)
    lt = stage.load_test
    if lt is not None:
        loc = (*base, "load_test")
        if (lt.locustfile is None) == (lt.command is None):
            yield doc.problem(loc, "give either locustfile (run with Locust) or command, not both or neither")
        if lt.command is not None and lt.stats_csv is None:
            yield doc.problem((*loc, "stats_csv"), "a load-test command must name the Locust-style stats CSV it writes")
        if lt.locustfile is not None and lt.host is None:
            yield doc.problem((*loc, "host"), "the host Locust sends load to is required")
        elif lt.host is not None and not is_http_url(lt.host):
            yield doc.problem(
                (*loc, "host"), f"an http:// or https:// URL (Locust's --host) is required, got {lt.host!r}"
            )
        t = lt.thresholds
        if t.p95_ms is None and t.error_rate is None and t.min_rps is None:
            yield doc.problem(
                (*loc, "thresholds"),
                "at least one threshold is required (p95_ms, error_rate, min_rps); "
                "a load test without one can never fail",
            )
        if t.error_rate is not None and not 0 <= t.error_rate < 1:
            yield doc.problem(
                (*loc, "thresholds", "error_rate"), f"a fraction in [0, 1) is required, got {_num(t.error_rate)}"
            )
        if lt.users < 1:
            yield doc.problem((*loc, "users"), f"at least 1 user is required, got {lt.users}")
        elif lt.users > MAX_LOAD_USERS:
            yield doc.problem(
                (*loc, "users"),
                f"{_num(lt.users)} users is more than a load test can simulate; give at most {MAX_LOAD_USERS:,}",
            )
        if lt.spawn_rate <= 0:
            rate = _num(lt.spawn_rate)
            yield doc.problem((*loc, "spawn_rate"), f"users started per second must be above 0, got {rate}")
        elif lt.spawn_rate > MAX_LOAD_USERS:
            yield doc.problem(
                (*loc, "spawn_rate"),
                f"{_num(lt.spawn_rate)} users a second is more than a load test can start; "
                f"give at most {MAX_LOAD_USERS:,}",
            )
        if lt.duration <= 0:
            yield doc.problem((*loc, "duration"), "must be longer than 0s")
        if t.p95_ms is not None and t.p95_ms <= 0:
            yield doc.problem((*loc, "thresholds", "p95_ms"), f"{_num(t.p95_ms)} can never pass; give a limit above 0")
        if t.min_rps is not None and t.min_rps < 0:
            yield doc.problem(
                (*loc, "thresholds", "min_rps"), f"{_num(t.min_rps)} always passes; give 0 or more requests per second"
            )


def _rollout_problems(
    steps: list[Step], doc: SourceDoc, base: tuple[str, ...], policy: Policy, risk: str, service: Service | None
) -> Iterator[Problem]:
    if not steps:
        yield doc.problem(base, "at least one step is required")
        return
    weights = [s.weight for s in steps]
    previous: float | None = None  # the last weight in range: one out of range is reported once, not twice
    for i, w in enumerate(weights):
        if not 0 < w <= 100:
            yield doc.problem((*base, i, "weight"), f"a weight is a percentage in (0, 100], got {_num(w)}")
            continue
        if previous is not None and w <= previous:
            yield doc.problem(
                (*base, i, "weight"),
                f"{_num(w)} comes after {_num(previous)}; weights must increase",
            )
        why = weight_problem(service.router, w) if service is not None else None
        if why and service is not None:
            router = service.router.type
            yield doc.problem((*base, i, "weight"), f"{why}; the service's {router} router cannot apply it")
        previous = w
    required = policy.rollout.weights
    missing = [w for w in required if w not in weights]
    if missing:
        yield doc.problem(
            base,
            f"weight {', '.join(map(str, missing))} is missing; shiprail.yaml requires "
            f"{', '.join(map(str, required))} in order, and no release skips a step",
        )
    elif weights[-1] != 100:
        yield doc.problem(base, "the last step must be weight 100")
    min_bake = policy.min_bake_for(risk)
    for i, step in enumerate(steps):
        need = min_bake.get(int(step.weight)) if float(step.weight).is_integer() else None
        if step.bake is not None and step.bake < 0:
            yield doc.problem((*base, i, "bake"), "cannot be negative")
        elif need and step.bake is not None and step.bake < need:
            yield doc.problem(
                (*base, i, "bake"),
                f"{format_duration(step.bake)} is below the {format_duration(need)} shiprail.yaml "
                f"requires at weight {_num(step.weight)} for {risk} risk",
            )


@rule
def rollout(ctx: PlanContext) -> Iterator[Problem]:
    if not ctx.ok("rollout", "scope", "risk"):
        return
    risk, _ = effective_risk(ctx.plan, ctx.policy)
    if ctx.plan.rollout is not None:
        r = ctx.plan.rollout
        yield from _rollout_problems(r.steps, ctx.doc, ("rollout", "steps"), ctx.policy, risk, ctx.service)
        if r.analysis_interval is not None and r.analysis_interval <= 0:
            yield ctx.doc.problem(("rollout", "analysis_interval"), "must be longer than 0s")
    elif ctx.service and ctx.service.defaults.rollout and ctx.service_doc:
        yield from _rollout_problems(
            ctx.service.defaults.rollout.steps,
            ctx.service_doc,
            ("defaults", "rollout", "steps"),
            ctx.policy,
            risk,
            ctx.service,
        )


@rule
def verify(ctx: PlanContext) -> Iterator[Problem]:
    v = ctx.plan.verify
    if v is None:
        return
    doc, policy = ctx.doc, ctx.policy
    if v.window is not None and v.window < policy.verify.window:
        yield doc.problem(
            ("verify", "window"),
            f"{format_duration(v.window)} is below the {format_duration(policy.verify.window)} "
            "validation window shiprail.yaml requires",
        )
    defaults = ctx.service.defaults.verify if ctx.service else None
    on_call = v.on_call or (defaults.on_call if defaults else None)
    # The person answers wherever they were named: the plan, or the service's defaults.
    where: tuple[str, ...] = ("verify", "on_call")
    where_doc = doc
    if v.on_call is None and ctx.service_doc is not None:
        where, where_doc = ("defaults", "verify", "on_call"), ctx.service_doc
    if on_call is None:
        yield doc.problem(("verify", "on_call"), "someone on call for the validation window is required")
    elif on_call not in policy.people:
        yield where_doc.problem(
            where,
            f"{on_call!r} is not a person in shiprail.yaml; add them under people{did_you_mean(on_call, ctx.people)}",
        )
    elif ON_CALL_ROLE not in policy.roles_of(on_call):
        # On call means answering for the release in its window, pausing or rolling it back: a
        # person shiprail.yaml does not let do that (qa only, say) cannot be the one paged.
        held = ", ".join(policy.people[on_call].roles) or "no role"
        who = policy.holding(ON_CALL_ROLE)
        fix = f"name someone who has it ({', '.join(who)}), or" if who else "nobody has it yet:"
        yield where_doc.problem(
            where,
            f"{on_call} cannot be on call: that needs the role {ON_CALL_ROLE} in shiprail.yaml, and {on_call} "
            f"has {held}; {fix} give {on_call} the role",
        )
    yield from _probe_problems(v.probes, doc, ("verify", "probes"))


def _probe_problems(probes: list[Probe], doc: SourceDoc, base: tuple[str, ...]) -> Iterator[Problem]:
    """A plan's ``verify.probes`` or a service's ``defaults.verify.probes``: checks that can run and pass."""
    seen: set[str] = set()
    for i, probe in enumerate(probes):
        if probe.name in seen:
            yield doc.problem((*base, i, "name"), f"{probe.name!r} is used twice; names must be unique")
        seen.add(probe.name)
        if not probe.url.startswith(("http://", "https://")):
            yield doc.problem((*base, i, "url"), f"an http:// or https:// URL is required, got {probe.url!r}")
        if not 100 <= probe.expect_status <= 599:
            yield doc.problem(
                (*base, i, "expect_status"),
                f"an HTTP status is 100 to 599, got {probe.expect_status}; no response can have it",
            )
        if probe.max_latency is not None and probe.max_latency <= 0:
            slowest = _num(probe.max_latency)
            yield doc.problem((*base, i, "max_latency"), f"{slowest} can never pass; give seconds above 0")
        if probe.interval <= 0:
            yield doc.problem((*base, i, "interval"), "must be longer than 0s")


@rule
def communication(ctx: PlanContext) -> Iterator[Problem]:
    if not ctx.ok("communication"):
        return
    plan, doc, channels = ctx.plan, ctx.doc, list(ctx.policy.channels)
    if not plan.communication:
        yield doc.problem(
            ("communication",),
            "a communication plan is required: at least one audience with channels and events",
        )
        return
    for i, entry in enumerate(plan.communication):
        if not entry.notify:
            yield doc.problem(("communication", i, "notify"), "at least one channel is required")
        for j, channel in enumerate(entry.notify):
            if channel not in ctx.policy.channels:
                known = f"; shiprail.yaml defines {', '.join(channels)}" if channels else ""
                hint = did_you_mean(channel, channels) or known
                yield doc.problem(
                    ("communication", i, "notify", j),
                    f"channel {channel!r} is not defined in shiprail.yaml channels{hint}",
                )
        if not entry.on:
            yield doc.problem(("communication", i, "on"), "at least one event is required")


def check_plan(ctx: PlanContext) -> list[Problem]:
    """Every plan rule's problems, in file order."""
    problems = [p for r in RULES for p in r(ctx)]
    return sorted(problems, key=lambda p: (p.file != ctx.doc.file, p.line or 0))
