"""Pure gate policy: pass text + gate context + cache view + time + temperature -> Decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from nacl.signing import VerifyKey

from edge.sigmemo import SignatureMemo, signature_digest
from edge.verify_pool import VerifyPool, shared_pool
from protocol.epass import (
    ALL_DAYS,
    HolderKind,
    PassFormatError,
    SignedPass,
    key_id_of,
    parse_pass,
    signature_valid,
)
from protocol.gate_policy import AntiPassback, Direction, TemperaturePolicy
from protocol.live import Flag, Reason
from protocol.livecode import live_message, nearest_slot, slot_in_window
from protocol.messages import DetailValue
from protocol.policy import LOCKDOWN_ADMITS, LockdownMode

# Re-exported: the gate's callers import the policy's and the decision's enums from here.
__all__ = ["AntiPassback", "Direction", "Flag", "Reason", "TemperaturePolicy"]

# A plausible body temperature, both ends included; outside it a reading is a sensor fault.
BODY_MIN_C = 34.0
BODY_MAX_C = 42.5


_TEMPERATURE_FLAGS = (Flag.FEVER, Flag.SENSOR_FAULT)
# Temperature reasons arise only on an otherwise good pass, so they mark one as well.
_PASS_GOOD = (Reason.OK, Reason.FEVER, Reason.NO_TEMPERATURE)


@dataclass(frozen=True, slots=True)
class GateContext:
    """The gate's policy at one moment: immutable, swapped whole when a new policy applies."""

    site: str
    gate: str
    trusted: dict[bytes, VerifyKey]
    direction: Direction = Direction.BOTH
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    temperature: TemperaturePolicy = TemperaturePolicy.OFF
    fever_threshold_c: float = 37.3
    anti_passback: AntiPassback = AntiPassback.OFF
    clock_skew_s: int = 300
    passback_window_s: int = 60
    lockdown: LockdownMode | None = None
    emergency_release: bool = False
    policy_version: int = 0  # 0: the TOML's policy; else the signed document's version
    live_code_kinds: frozenset[HolderKind] = frozenset()
    # Not policy: the issuer signatures this gate already verified (edge/sigmemo.py).
    verified: SignatureMemo = field(default_factory=SignatureMemo, compare=False, repr=False)
    # Not policy: where a cold first code's two signature checks overlap (edge/verify_pool.py).
    verify_pool: VerifyPool = field(default_factory=shared_pool, compare=False, repr=False)

    def __post_init__(self) -> None:
        for key_id, key in self.trusted.items():
            if key_id_of(key) != key_id:
                # A pass names its key by id; a key filed under another id would never match.
                raise ValueError(f"trusted key {bytes(key).hex()} is not key id {key_id.hex()}")


@dataclass(frozen=True, slots=True)
class PassUsage:
    """What this gate's cache remembers about one pass."""

    uses: int
    last_direction: str | None
    last_at: float | None
    last_gate: str | None


@dataclass(frozen=True, slots=True)
class PassRecord:
    """Everything the gate cache knows about one pass that a decision may need."""

    revoked: bool
    usage: PassUsage | None
    live_code_used: bool  # this live slot of the pass was granted here before
    signature_verified: bool  # the store remembers this signature digest as verified here


class CacheView(Protocol):
    """The one read-only question the policy asks the gate cache per presentation."""

    def pass_record(
        self, pass_id: str, live_slot: int | None, signature_digest: bytes | None
    ) -> PassRecord:
        """What the cache holds on the pass; for a None slot or digest, the answer is False."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one presentation and the facts it rests on."""

    granted: bool
    reason: Reason
    pass_id: str | None = None
    key_id: str | None = None
    holder_kind: str | None = None
    display_name: str | None = None
    valid_until: int | None = None
    temperature_c: float | None = None
    flags: tuple[Flag, ...] = ()
    detail: str = ""
    live_slot: int | None = None  # the live code's slot, remembered at this gate once granted
    # The issuer signature this decision verified afresh (sigmemo.signature_digest), for the
    # store to remember with the journal entry; None when it was remembered already.
    signature_digest: bytes | None = field(default=None, repr=False, compare=False)

    def journal_details(self) -> dict[str, DetailValue]:
        """The facts the journal's own columns (granted, reason, pass, temperature) lack."""
        out: dict[str, DetailValue] = {}
        for key in ("key_id", "holder_kind", "display_name", "valid_until", "detail", "live_slot"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        out["flags"] = [str(f) for f in self.flags]
        return out

    def verified_signature(self) -> tuple[bytes, bytes, float | None] | None:
        """(digest, key id, valid until) of the issuer signature verified afresh, for the store."""
        if self.signature_digest is None or self.key_id is None:
            return None
        return self.signature_digest, bytes.fromhex(self.key_id), self.valid_until

    def facts(self) -> dict[str, object]:
        """The decision as a flat JSON-friendly dict, for the journal and the CLI."""
        return {
            "granted": self.granted,
            "reason": self.reason.value,
            "pass_id": self.pass_id,
            "key_id": self.key_id,
            "holder_kind": self.holder_kind,
            "display_name": self.display_name,
            "valid_until": self.valid_until,
            "temperature_c": self.temperature_c,
            "flags": [str(f) for f in self.flags],
            "detail": self.detail,
            "live_slot": self.live_slot,
        }


def decide(
    text: str,
    ctx: GateContext,
    cache: CacheView,
    now: datetime,
    temperature_c: float | None = None,
) -> Decision:
    """Decide one presentation; never raises on bad input, never grants on an error."""
    return apply_temperature(_decide_pass(text, ctx, cache, now), ctx, temperature_c)


def _decide_pass(text: str, ctx: GateContext, cache: CacheView, now: datetime) -> Decision:
    try:
        signed = parse_pass(text)
    except PassFormatError as exc:
        return Decision(False, Reason.MALFORMED, detail=str(exc))
    key = ctx.trusted.get(signed.key_id)
    if key is None:
        return Decision(False, Reason.UNKNOWN_KEY, key_id=signed.key_id.hex())
    ts = now.timestamp()
    proof = signed.proof
    slot = nearest_slot(proof.residue, ts) if proof else None
    in_memory = ctx.verified.remembered(signed, key)
    digest = None if in_memory else signature_digest(signed, key)
    # One query, before any check needs it: separate lookups cost as much again.
    record = cache.pass_record(signed.data.pass_id.hex(), slot, digest)
    fresh = None
    device_ok = None
    if not in_memory:
        # Only a trusted key is ever looked up, and the digest covers it whole: a row the store
        # keeps for a key no longer trusted, or for other bytes, vouches for nothing here.
        if not record.signature_verified:
            issuer_ok, device_ok = _verify_both(signed, key, ctx, slot, ts)
            if not issuer_ok:
                return Decision(False, Reason.BAD_SIGNATURE, key_id=signed.key_id.hex())
            fresh = digest
        ctx.verified.remember(signed, key)
    return _decide_signed(signed, ctx, record, slot, now, ts, fresh, device_ok)


def _verify_both(
    signed: SignedPass, key: VerifyKey, ctx: GateContext, slot: int | None, ts: float
) -> tuple[bool, bool | None]:
    """The issuer's signature, and the phone's proof where _live_reason would check it (else
    None): the issuer's in the pool's worker while this thread checks the phone's."""
    device, proof = signed.device, signed.proof
    if (
        device is None
        or proof is None
        or slot is None
        or not slot_in_window(slot, ts, ctx.clock_skew_s)
    ):
        return signature_valid(signed, key), None
    job = ctx.verify_pool.start(lambda: signature_valid(signed, key))
    if job is None:  # one core, switched off, or the worker busy: as before the pool
        return signature_valid(signed, key), None
    device_ok = device.verify(live_message(signed.data.pass_id, slot), proof.signature)
    issuer_ok = ctx.verify_pool.result(job)
    if issuer_ok is None:  # the worker failed or is stuck: check here
        issuer_ok = signature_valid(signed, key)
    return issuer_ok, device_ok


def _decide_signed(
    signed: SignedPass,
    ctx: GateContext,
    record: PassRecord,
    slot: int | None,
    now: datetime,
    ts: float,
    fresh_digest: bytes | None,
    device_ok: bool | None,
) -> Decision:
    data = signed.data
    flags: list[Flag] = []
    reason, detail = _pass_reason(signed, ctx, record, slot, now, ts, flags, device_ok)
    # Positional, in field order: by keyword, a frozen dataclass costs a third more.
    return Decision(reason is Reason.OK, reason, data.pass_id.hex(), signed.key_id.hex(),
                    data.kind.value, data.display_name or None, data.valid_until, None,
                    tuple(flags), detail, slot, fresh_digest)  # fmt: skip


def apply_temperature(
    decision: Decision, ctx: GateContext, temperature_c: float | None
) -> Decision:
    """Apply the temperature policy to a decision made without a reading (or with another one).

    The agent decides on the pass first and reads the thermometer only for a good pass; this
    finishes that decision without verifying the signature again. Any earlier reading's effect
    is replaced, so applying it twice is the same as applying the last reading once.
    """
    if ctx.temperature is TemperaturePolicy.OFF:
        temperature_c = None  # a gate without a temperature policy ignores any reading
    if _unchanged_without_reading(decision, ctx, temperature_c):
        return decision  # the usual case: no policy, no reading
    flags = [f for f in decision.flags if f not in _TEMPERATURE_FLAGS]
    temp_reason = _temperature_reason(ctx, temperature_c, flags)
    pass_good = decision.reason in _PASS_GOOD
    reason = (temp_reason or Reason.OK) if pass_good else decision.reason
    if (reason, reason is Reason.OK, temperature_c, tuple(flags)) == (
        decision.reason,
        decision.granted,
        decision.temperature_c,
        decision.flags,
    ):
        return decision
    d = decision  # every other field as it was; replace() would cost as much as the rest
    return Decision(reason is Reason.OK, reason, d.pass_id, d.key_id, d.holder_kind,
                    d.display_name, d.valid_until, temperature_c, tuple(flags), d.detail,
                    d.live_slot, d.signature_digest)  # fmt: skip


def _unchanged_without_reading(
    decision: Decision, ctx: GateContext, temperature_c: float | None
) -> bool:
    """What apply_temperature's general path would find, in a few tests: no reading where none
    is required leaves a decision that carries no temperature fact as it is."""
    return (
        temperature_c is None
        and ctx.temperature is not TemperaturePolicy.REQUIRED
        and decision.temperature_c is None
        and not decision.flags
        and decision.reason is not Reason.FEVER
        and decision.reason is not Reason.NO_TEMPERATURE
        and decision.granted is (decision.reason is Reason.OK)
    )


def _pass_reason(
    signed: SignedPass,
    ctx: GateContext,
    record: PassRecord,
    slot: int | None,
    now: datetime,
    ts: float,
    flags: list[Flag],
    device_ok: bool | None,
) -> tuple[Reason, str]:
    data = signed.data
    if record.revoked:
        return Reason.REVOKED, ""
    if not signed.for_site(ctx.site):
        return Reason.WRONG_SITE, f"pass is for site {data.site!r}"
    if not signed.for_gate(ctx.gate):
        return Reason.WRONG_GATE, ""
    if ts + ctx.clock_skew_s < data.valid_from:
        return Reason.NOT_YET_VALID, ""
    if ts - ctx.clock_skew_s >= data.valid_until:
        return Reason.EXPIRED, ""
    scheduled = data.hours is not None or data.weekdays != ALL_DAYS
    if scheduled and not _within_schedule(data.hours, data.weekdays, now.astimezone(ctx.tz)):
        return Reason.OUTSIDE_HOURS, ""
    if ctx.lockdown is not None and data.kind not in LOCKDOWN_ADMITS[ctx.lockdown]:
        return Reason.LOCKDOWN, f"lockdown {ctx.lockdown.value}"
    live = _live_reason(signed, ctx, record, slot, ts, device_ok)
    if live is not None:
        return live
    usage = record.usage
    if data.max_uses and usage is not None and usage.uses >= data.max_uses:
        return Reason.USE_LIMIT, f"{usage.uses} of {data.max_uses} uses"
    if usage is not None and _is_passback(ctx, usage, ts):
        if ctx.anti_passback is AntiPassback.HARD:
            return Reason.PASSBACK, ""
        flags.append(Flag.PASSBACK)
    return Reason.OK, ""


def _live_reason(
    signed: SignedPass,
    ctx: GateContext,
    record: PassRecord,
    slot: int | None,
    ts: float,
    device_ok: bool | None,
) -> tuple[Reason, str] | None:
    """A device-bound pass needs a fresh proof by its phone, used nowhere before at this gate.
    device_ok: this proof's check, already made by _verify_both for this pass and slot."""
    if signed.device is None:
        if signed.data.kind in ctx.live_code_kinds:
            return Reason.NO_LIVE_CODE, f"this gate takes only live codes from {signed.data.kind}"
        return None
    proof = signed.proof
    if proof is None or slot is None:
        return Reason.NO_LIVE_CODE, "a device-bound pass without its phone's proof"
    if not slot_in_window(slot, ts, ctx.clock_skew_s):  # cheap, so before the signature
        return Reason.STALE_CODE, f"slot {slot}"
    if device_ok is None:
        device_ok = signed.device.verify(live_message(signed.data.pass_id, slot), proof.signature)
    if not device_ok:
        return Reason.NO_LIVE_CODE, "the phone's proof does not verify"
    if record.live_code_used:
        return Reason.REPLAYED, f"slot {slot}"
    return None


def _within_schedule(hours: tuple[int, int] | None, weekdays: int, local: datetime) -> bool:
    minute = local.hour * 60 + local.minute
    day = local.weekday()
    if hours is None:
        return bool(weekdays & (1 << day))
    start, end = hours
    if start < end:
        return start <= minute < end and bool(weekdays & (1 << day))
    # A window that crosses midnight belongs to the day it started on.
    if minute >= start:
        return bool(weekdays & (1 << day))
    if minute < end:
        return bool(weekdays & (1 << ((day - 1) % 7)))
    return False


def _is_passback(ctx: GateContext, usage: PassUsage, ts: float) -> bool:
    if ctx.anti_passback is AntiPassback.OFF:
        return False
    if ctx.direction is Direction.BOTH:
        # A two-way gate cannot tell in from out: a re-use within the window is a handed-back pass.
        return (
            usage.last_gate == ctx.gate
            and usage.last_at is not None
            and ts - usage.last_at < ctx.passback_window_s
        )
    return usage.last_direction == ctx.direction.value


def _temperature_reason(
    ctx: GateContext, temperature_c: float | None, flags: list[Flag]
) -> Reason | None:
    plausible = temperature_c is not None and BODY_MIN_C <= temperature_c <= BODY_MAX_C
    if temperature_c is not None and not plausible:
        flags.append(Flag.SENSOR_FAULT)
    fever = plausible and temperature_c is not None and temperature_c >= ctx.fever_threshold_c
    if fever:
        flags.append(Flag.FEVER)
    if ctx.temperature is not TemperaturePolicy.REQUIRED:
        return None
    if not plausible:
        return Reason.NO_TEMPERATURE
    return Reason.FEVER if fever else None
