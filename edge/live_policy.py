"""The gate's live policy: one immutable GateContext, swapped whole when a new policy applies.

Where it comes from, in order: the TOML's `[gate]` section (the initial policy), the newest
signed document central sent (verified against the pinned policy keys, for this gate, newer
than the one held), and the guard's local overrides (`menjin gate lockdown|release`). The last
two are kept in the gate's store, so a restart offline comes back with the same policy, and a
CLI in another process changes what the running agent enforces within one poll.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import Counter
from dataclasses import replace

from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field

from edge.cache import GateCache
from edge.config import GateSettings
from edge.decide import GateContext
from edge.journal import Journal
from protocol.messages import EventType
from protocol.policy import (
    LockdownMode,
    PolicyDocument,
    PolicyError,
    PolicyRefusal,
    PublicKey,
    SignedPolicy,
    check_applicable,
    verify_policy,
)

log = logging.getLogger(__name__)

_SIGNED, _LOCAL, _KEYS = "signed", "local", "keys"
_STRICTNESS = {None: 0, LockdownMode.RESIDENTS_ONLY: 1, LockdownMode.FULL: 2}


class LocalPolicy(BaseModel):
    """What a guard set at the gate itself, with no network: kept until they end it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lockdown: LockdownMode | None = Field(default=None, description="Local lockdown mode.")
    reason: str = Field(default="", max_length=200, description="Why, as the guard typed it.")
    emergency_release: bool = Field(default=False, description="Hold the relay open.")


class PolicyHolder:
    """The live GateContext. A decision reads `current()` once and uses that object throughout,
    so no presentation is decided half on the old and half on the new policy."""

    def __init__(self, initial: GateContext) -> None:
        self._ctx = initial

    def current(self) -> GateContext:
        return self._ctx

    def swap(self, ctx: GateContext) -> None:
        self._ctx = ctx  # one reference assignment: readers see the old object or the new one


def build_context(base: GateContext, doc: PolicyDocument | None, local: LocalPolicy) -> GateContext:
    """The TOML's context with the signed document's fields, then the guard's overrides."""
    ctx = base
    if doc is not None:
        ctx = replace(
            base,
            direction=doc.direction,
            temperature=doc.temperature,
            fever_threshold_c=doc.fever_threshold,
            anti_passback=doc.anti_passback,
            passback_window_s=doc.passback_window_s,
            trusted={bytes.fromhex(k.key_id): k.verify_key() for k in doc.trusted_keys},
            lockdown=doc.lockdown.mode if doc.lockdown else None,
            emergency_release=doc.emergency_release,
            live_code_kinds=frozenset(doc.live_code_kinds),
            policy_version=doc.version,
        )  # GateContext refuses a key filed under another key's id (ValueError)
    if _STRICTNESS[local.lockdown] > _STRICTNESS[ctx.lockdown]:
        ctx = replace(ctx, lockdown=local.lockdown)
    if local.emergency_release:
        ctx = replace(ctx, emergency_release=True)
    return ctx


def _document(signed_json: str | None) -> PolicyDocument | None:
    if signed_json is None:
        return None
    # Verified when it was applied; the store is the gate's own 0600 file.
    signed = SignedPolicy.model_validate_json(signed_json)
    return PolicyDocument.model_validate_json(signed.document)


class PolicyKeeper:
    """Applies signed documents and local overrides to the holder; counts what it refused."""

    def __init__(
        self, settings: GateSettings, cache: GateCache, holder: PolicyHolder, journal: Journal
    ) -> None:
        self.site, self.gate = settings.gate.site, settings.gate.gate
        self.base = settings.context()
        self.toml_keys = settings.keys.policy_keys()
        self.cache, self.holder, self.journal = cache, holder, journal
        self.refused: Counter[PolicyRefusal] = Counter()
        self.applied = 0
        self._lock = threading.Lock()
        self._seen: tuple[str | None, ...] = (None, None)
        self.refresh()
        self._forget_untrusted()

    def current(self) -> GateContext:
        return self.holder.current()

    def pinned(self) -> dict[str, VerifyKey]:
        """Policy keys by key id: the TOML's, until a signed document named new ones."""
        stored = self.cache.policy_record(_KEYS)
        if stored is None:
            return dict(self.toml_keys)
        return {k["key_id"]: PublicKey(**k).verify_key() for k in json.loads(stored)}

    def local(self) -> LocalPolicy:
        raw = self.cache.policy_record(_LOCAL)
        return LocalPolicy() if raw is None else LocalPolicy.model_validate_json(raw)

    def document(self) -> PolicyDocument | None:
        return _document(self.cache.policy_record(_SIGNED))

    def refresh(self) -> None:
        """Rebuild the live context if the store changed (this process or another)."""
        with self._lock:
            seen = (self.cache.policy_record(_SIGNED), self.cache.policy_record(_LOCAL))
            if seen == self._seen:
                return
            self.holder.swap(build_context(self.base, _document(seen[0]), self.local()))
            self._seen = seen
            self._forget_untrusted()

    def offer(self, raw: bytes) -> bool:
        """Apply a SignedPolicy payload if it may be applied; True when it was."""
        with self._lock:
            try:
                doc = verify_policy(raw, self.pinned())
                held = self.document()
                if held is not None and doc == held:
                    return False  # the retained copy again, after a reconnect: nothing new
                check_applicable(doc, self.site, self.gate, held.version if held else 0)
                ctx = build_context(self.base, doc, self.local())
            except PolicyError as exc:
                self._refuse(exc.refusal, str(exc))
                return False
            except ValueError as exc:  # e.g. a trusted key filed under the wrong key id
                self._refuse(PolicyRefusal.GARBAGE, str(exc))
                return False
            self._store(raw.decode("utf-8"), doc)
            self.holder.swap(ctx)
            self._forget_untrusted()
            self.applied += 1
        signer = SignedPolicy.model_validate_json(raw).key_id
        details = {"version": doc.version, "key_id": signer}
        self.journal.append(EventType.POLICY_APPLIED, reason="ok", details=details)
        log.info("policy v%d applied (signed by %s)", doc.version, signer)
        return True

    def _store(self, signed_json: str, doc: PolicyDocument) -> None:
        self.cache.set_policy_record(_SIGNED, signed_json)
        if doc.policy_keys:  # the rotation: a document signed by an old key names the new ones
            keys = [k.model_dump() for k in doc.policy_keys]
            self.cache.set_policy_record(_KEYS, json.dumps(keys))
        self._seen = (signed_json, self._seen[1])

    def _forget_untrusted(self) -> None:
        # Housekeeping, never a reason to lose an applied policy or to stop the gate starting
        # (the store may be locked by a `gate present` in another process, or the disk full).
        # A retired issuer key's passes are refused before any memory of them is asked; the
        # store's rows are dropped so they cannot count after a restart should the key be
        # trusted anew. The running process's in-memory memo keeps its entries: each vouches
        # only for the exact key, signature and bytes that verified.
        try:
            forgotten = self.cache.forget_signatures(self.current().trusted)
        except sqlite3.Error as exc:
            log.warning("could not forget the signatures of untrusted keys: %s", exc)
            return
        if forgotten:
            log.info("forgot %d verified signatures of issuer keys no longer trusted", forgotten)

    def _refuse(self, refusal: PolicyRefusal, detail: str) -> None:
        self.refused[refusal] += 1
        log.warning("refused a policy document: %s", detail)
        self.journal.append(
            EventType.POLICY_REFUSED, reason=refusal.value, details={"detail": detail[:300]}
        )

    def set_local(self, local: LocalPolicy, event: EventType, on: bool) -> GateContext:
        """Record a guard's override, journal it, and apply it at once."""
        self.cache.set_policy_record(_LOCAL, local.model_dump_json())
        self.refresh()
        ctx = self.current()
        details = {"mode": local.lockdown.value if local.lockdown else None, "note": local.reason}
        self.journal.append(event, granted=on, reason="local", details=details)
        return ctx

    def counters(self) -> dict[str, int | bool]:
        out: dict[str, int | bool] = {"policy_applied": self.applied}
        out["policy_refused"] = sum(self.refused.values())
        for refusal in PolicyRefusal:
            out[f"policy_refused_{refusal.value}"] = self.refused[refusal]
        return out
