"""Container images' rules (stable ids, docs/ecosystems.md), evaluated with the generic ones.

Generic rules kept: ``analysis.failed``, ``command.metachar``, ``evidence.stale``,
``evidence.future``. A registry is approved by an ``ecosystem = "image"`` entry of
``[[registries]]`` whose URL is a prefix of ``REGISTRY/PATH/`` (so an entry can approve one
organisation of a registry); the same entry says what an unsigned or root image needs
(``unsigned``/``root``: allow, require-approval or deny; default allow, the signal still
recorded for the reviewer), which keys its images' cosign signatures are verified with
(``trusted_keys``) and whether a verified signature is required (``require_signature``).
"""

from __future__ import annotations

from aegis.ecosystems.image.names import ImageRef, check_targets, split_location
from aegis.errors import InputError
from aegis.policy.config import ApprovedRegistry
from aegis.policy.result import Effect
from aegis.policy.rules import (
    PHRASE_REPOSITORY,
    PHRASE_SOURCE,
    Check,
    Facts,
    Hit,
    Miss,
    Rule,
    listed,
    unique,
)

GENERIC = ("analysis.failed", "command.metachar", "evidence.stale", "evidence.future")


def _ref(facts: Facts) -> ImageRef | None:
    try:
        (ref,) = check_targets(facts.plan.intent.targets)
        split_location(facts.plan.intent.location)
    except InputError:
        return None
    return ref


def entry_for(
    registries: tuple[ApprovedRegistry, ...], registry: str, ref: ImageRef
) -> ApprovedRegistry | None:
    """The longest ``[[registries]]`` image entry approving ``ref`` from ``registry``. Pure."""
    if registry not in (f"https://{ref.host}/", f"http://{ref.host}/"):
        return None
    where = f"{registry}{ref.path}/"
    found = [r for r in registries if r.ecosystem == "image" and where.startswith(r.url)]
    return max(found, key=lambda r: len(r.url)) if found else None


def approving_entry(facts: Facts) -> ApprovedRegistry | None:
    """The longest ``[[registries]]`` image entry approving the plan's repository."""
    ref = _ref(facts)
    if ref is None:
        return None
    return entry_for(facts.config.registries, facts.plan.intent.registry or "", ref)


def target_invalid(facts: Facts) -> Check:
    """Not exactly one reference in the grammar, or no store (a hand-made plan)."""
    if _ref(facts) is None:
        shown = [*facts.plan.intent.targets, f"location {facts.plan.intent.location!r}"]
        return Hit(f"outside the image grammar: {listed(shown)}", unique(shown))
    return Miss("one registry reference into a container store")


def registry_unapproved(facts: Facts) -> Check:
    """The registry (and path) is not an image ``[[registries]]`` entry."""
    if approving_entry(facts) is None:
        where = f"{facts.plan.intent.registry or ''} {' '.join(facts.plan.intent.targets)[:200]}"
        return Hit(f"registry {where!r} is not an approved [[registries]] entry for images",
                   (facts.plan.intent.registry or "",))  # fmt: skip
    return Miss("the registry is approved")


def _signals(facts: Facts, name: str) -> list[str]:
    return [f"{s.package}: {s.detail}" for s in facts.plan.signals if s.name == name]


def tag_mutable(facts: Facts) -> Check:
    """A reference without a digest: a tag can move after signing (never applied)."""
    hits = _signals(facts, "image.tag-mutable")
    eco = facts.plan.ecosystem
    if not hits:
        return Miss("the reference is pinned by digest")
    pinned = eco.image.digest if eco is not None and eco.image is not None else ""
    hint = (
        f"; plan it pinned: {eco.image.reference}@{pinned}" if pinned and eco and eco.image else ""
    )
    return Hit(f"a mutable tag is never applied{hint} (or --pin)", unique(hits))


def _signal_rule(name: str, what: str) -> object:
    def check(facts: Facts) -> Check:
        hits = _signals(facts, name)
        return Hit(f"{what}: {listed(hits)}", unique(hits)) if hits else Miss(f"no {what}")

    check.__doc__ = f"Signal ``{name}``: {what}."
    return check


def _per_registry(name: str, attr: str, what: str) -> object:
    def check(facts: Facts) -> Check:
        hits = _signals(facts, name)
        if not hits:
            return Miss(f"not {what}")
        entry = approving_entry(facts)
        effect = Effect(getattr(entry, attr)) if entry is not None else Effect.ALLOW
        return Hit(f"{what} ({attr} = {effect.value}): {listed(hits)}", unique(hits), effect)

    check.__doc__ = f"Signal ``{name}``, with the effect the approving registry entry names."
    return check


def signature_unverified(facts: Facts) -> Check:
    """The approving entry has ``require_signature``; no trusted key verified the image.

    Its effect: deny when the entry's ``unsigned`` is deny, else require-approval.
    """
    entry = approving_entry(facts)
    eco = facts.plan.ecosystem
    image = eco.image if eco is not None else None
    if entry is None or not entry.require_signature or image is None:
        return Miss("no verified signature required")
    if image.signature == "verified":
        return Miss(f"signature verified by key {image.signature_key}")
    effect = Effect.DENY if entry.unsigned == Effect.DENY.value else Effect.REQUIRE_APPROVAL
    why = "no trusted key configured" if not entry.trusted_keys else f"signature {image.signature}"
    return Hit(f"registry {entry.name!r} requires a verified signature: {why} "
               f"({image.repository})", (image.repository,), effect)  # fmt: skip


def pull_clean(facts: Facts) -> Check:
    """Allow: one image by digest from an approved registry (stricter rules still apply)."""
    if facts.plan.failure is not None or not facts.changing:
        return Miss("nothing to pull")
    return Hit(f"{facts.changing[0].name}@{facts.changing[0].candidate_version}")


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

RULES: tuple[Rule, ...] = (
    Rule("image.target-invalid", _D, "not one image reference in the grammar, or no store",
         target_invalid, PHRASE_SOURCE),
    Rule("registry.unapproved", _D, "an index or registry not in [[registries]]",
         registry_unapproved, PHRASE_REPOSITORY),
    Rule("image.tag-mutable", _D, "a tag without a digest (mutable: never applied)",
         tag_mutable, PHRASE_SOURCE),
    Rule("image.tag-moved", _A, "the tag now names another digest than the pinned one",
         _signal_rule("image.tag-moved", "a moved tag")),  # type: ignore[arg-type]
    Rule("image.registry-lookalike", _A, "a registry host imitating a well-known one",
         _signal_rule("image.registry-lookalike", "a lookalike registry")),  # type: ignore[arg-type]
    Rule("image.unsigned", Effect.ALLOW, "no cosign/sigstore signature (effect: the registry's "
         "'unsigned')", _per_registry("image.unsigned", "unsigned", "unsigned")),  # type: ignore[arg-type]
    Rule("image.signature-invalid", _D, "a cosign signature that no trusted key verifies "
         "for this digest and repository",
         _signal_rule("image.signature-invalid", "an invalid signature")),  # type: ignore[arg-type]
    Rule("image.signature-unverified", _A, "require_signature: no signature verified by a "
         "trusted key (deny when the registry's 'unsigned' is deny)", signature_unverified),
    Rule("image.runs-as-root", Effect.ALLOW, "the image runs as root (effect: the registry's "
         "'root')", _per_registry("image.runs-as-root", "root", "running as root")),  # type: ignore[arg-type]
    Rule("image.pull", Effect.ALLOW, "one image by digest from an approved registry",
         pull_clean, overridable=True),
)  # fmt: skip


def image_rules(generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The generic rules images keep (in their order), then their own."""
    return tuple(r for r in generic if r.id in GENERIC) + RULES
