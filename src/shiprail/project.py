"""A shiprail project on disk: ``shiprail.yaml``, ``services/``, ``releases/``.

This is where files are read; everything it returns has passed every guardrail, or it raises
``PlanInvalid`` listing every problem at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shiprail import defaults
from shiprail.errors import ConfigError, PlanInvalid, Problem
from shiprail.schema.guardrails import PlanContext, check_plan, check_policy, check_service
from shiprail.schema.plan import ReleasePlan
from shiprail.schema.policy import Policy
from shiprail.schema.resolved import ResolvedRelease, resolve
from shiprail.schema.service import Service, is_service_name
from shiprail.schema.source import SourceDoc, display_name, load_yaml, not_a_file
from shiprail.schema.validation import drop_related, validate, without_removal_advice


def file_hash(path: Path) -> str:
    """sha256 of the file's bytes, as ``sha256sum`` prints it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``shiprail.yaml``."""
    here = start.resolve()
    if here.is_file():
        here = here.parent
    for candidate in (here, *here.parents):
        if (candidate / defaults.POLICY_FILE).is_file():
            return candidate
    return None


def _upwards(start: Path) -> tuple[Path, ...]:
    """``start`` (its directory, when a file) and every directory above it, nearest first."""
    here = start.resolve()
    if here.is_file():
        here = here.parent
    return (here, *here.parents)


@dataclass
class Project:
    """A loaded, valid policy and where its files live."""

    root: Path
    policy: Policy

    @property
    def anchor_log(self) -> Path | None:
        """The anchor log ``audit.anchors`` names (relative to the project directory); None when it names none."""
        return anchor_log(self.root, self.policy)

    @property
    def services_dir(self) -> Path:
        return self.root / defaults.SERVICES_DIR

    def known_services(self) -> list[str]:
        """Names of the service files present (regular files: a directory named x.yaml is no service)."""
        if not self.services_dir.is_dir():
            return []
        return sorted(p.stem for p in self.services_dir.glob("*.yaml") if p.is_file())

    def load_service(self, name: str) -> tuple[Service | None, SourceDoc | None, list[Problem]]:
        """The service ``name``; ``(None, None, [])`` when its file does not exist (or ``name`` is not a name)."""
        if not is_service_name(name):
            return None, None, []  # never a path outside services/; the plan's rules say why
        path = self.services_dir / f"{name}.yaml"
        if not path.exists():
            return None, None, []
        # A directory (or a FIFO) of that name is not a missing file: reading it says what it is.
        doc = load_yaml(path)
        service, problems, _ = validate(Service, doc)
        if service is not None:
            problems.extend(check_service(service, doc, name))
        return (service if not problems else None), doc, problems


def anchor_log(root: Path, policy: Policy) -> Path | None:
    """``policy``'s ``audit.anchors`` as a path (under ``root`` unless absolute); None when it names none."""
    anchors = policy.audit.anchors
    return root / anchors if anchors else None


class PolicyWatch:
    """``shiprail.yaml`` as a long-running process (a controller, ``serve``) loaded it, and whether it changed since.

    People, roles, overrides and deployment freezes are read from the policy whenever they are
    judged; a controller asks ``poll`` at each pass so that an emergency freeze or a person who left
    counts without a restart. A change is told by the file's content (its hash), not its time.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / defaults.POLICY_FILE
        self._seen = self._digest()
        self._refused: bytes | None = None

    def _digest(self) -> bytes | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except OSError:
            return None

    def poll(self) -> tuple[Policy | None, str | None]:
        """``(policy, None)`` when the file changed and loads; ``(None, why)`` once when it changed and does not.

        ``(None, None)``: unchanged, or a change already refused. A file that does not load is never
        taken half: the process keeps the policy it has until the file loads again.
        """
        digest = self._digest()
        if digest == self._seen or digest == self._refused:
            return None, None
        try:
            policy = open_project(self.path.parent).policy
        except (ConfigError, PlanInvalid) as exc:
            self._refused = digest
            return None, str(exc)
        self._seen, self._refused = digest, None
        return policy, None


def open_project(start: Path | None = None) -> Project:
    """Load ``shiprail.yaml`` found at or above ``start`` (default: the working directory)."""
    origin = start or Path.cwd()
    root = find_root(origin) or find_root(Path.cwd())
    if root is None:
        for candidate in (*_upwards(origin), *_upwards(Path.cwd())):
            why = not_a_file(candidate / defaults.POLICY_FILE)
            if why is not None:  # a directory named shiprail.yaml is not a missing policy
                raise ConfigError(
                    f"{display_name(candidate / defaults.POLICY_FILE)} {why}, not a policy file; "
                    "move it aside and run `shiprail init` to create one"
                )
        raise ConfigError(
            f"no {defaults.POLICY_FILE} found in {display_name(origin)} or any parent directory; "
            "run `shiprail init` to create one"
        )
    doc = load_yaml(root / defaults.POLICY_FILE)
    policy, problems, _ = validate(Policy, doc)
    if policy is not None:
        # Not about a key already reported: a freeze's cut `end` is not also "missing".
        problems.extend(drop_related(problems, check_policy(policy, doc)))
    if problems or policy is None:
        raise PlanInvalid(problems)
    return Project(root, policy)


@dataclass
class CheckedPlan:
    """A release plan that passed every guardrail, with what it resolved to."""

    path: Path
    file: str
    text: str
    plan: ReleasePlan
    service: Service
    resolved: ResolvedRelease


def check_plan_file(path: Path, project: Project | None = None) -> CheckedPlan:
    """Validate one plan file against its project; raise ``PlanInvalid`` with every problem."""
    if project is None:
        try:
            project = open_project(path.parent)
        except PlanInvalid as broken_policy:
            # A broken shiprail.yaml must not hide what is wrong in the plan itself: the plan's
            # parse problems need no policy (the rules that do wait until the policy is fixed).
            try:
                _, plan_problems, _ = validate(ReleasePlan, load_yaml(path))
            except PlanInvalid as unreadable:
                plan_problems = unreadable.problems
            raise PlanInvalid([*broken_policy.problems, *plan_problems]) from None
    doc = load_yaml(path)
    plan, problems, broken = validate(ReleasePlan, doc)
    if plan is None:  # pragma: no cover - every plan field is optional to the parser
        raise PlanInvalid(problems)
    service = service_doc = None
    service_problems: list[Problem] = []
    if plan.service:
        service, service_doc, service_problems = project.load_service(plan.service)
    ctx = PlanContext(
        doc=doc,
        plan=plan,
        broken=broken,
        policy=project.policy,
        service=service,
        service_doc=service_doc,
        known_services=project.known_services(),
        people=list(project.policy.people),
    )
    later = list(check_plan(ctx))
    problems = without_removal_advice(problems, later)
    problems.extend(drop_related(problems, later))
    problems.extend(service_problems)
    problems.sort(key=lambda p: (p.file != doc.file, p.line or 0))
    if problems or service is None:
        raise PlanInvalid(problems)
    text = path.read_text(encoding="utf-8")
    return CheckedPlan(
        path=path,
        file=doc.file,
        text=text,
        plan=plan,
        service=service,
        resolved=resolve(plan, service, project.policy, file_hash(path)),
    )
