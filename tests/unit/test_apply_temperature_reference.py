"""apply_temperature against its slower reference (as of cab17e0, kept below): the same
decision, every field, for any decision, policy and reading; the same object when unchanged."""

from __future__ import annotations

from dataclasses import fields, replace

from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edge.decide import (
    BODY_MAX_C,
    BODY_MIN_C,
    Decision,
    Flag,
    GateContext,
    Reason,
    TemperaturePolicy,
    apply_temperature,
)
from protocol.epass import key_id_of

_TEMPERATURE_FLAGS = (Flag.FEVER, Flag.SENSOR_FAULT)
_PASS_GOOD = (Reason.OK, Reason.FEVER, Reason.NO_TEMPERATURE)


def ref_apply_temperature(
    decision: Decision, ctx: GateContext, temperature_c: float | None
) -> Decision:
    if ctx.temperature is TemperaturePolicy.OFF:
        temperature_c = None
    flags = [f for f in decision.flags if f not in _TEMPERATURE_FLAGS]
    plausible = temperature_c is not None and BODY_MIN_C <= temperature_c <= BODY_MAX_C
    if temperature_c is not None and not plausible:
        flags.append(Flag.SENSOR_FAULT)
    fever = plausible and temperature_c is not None and temperature_c >= ctx.fever_threshold_c
    if fever:
        flags.append(Flag.FEVER)
    temp_reason = None
    if ctx.temperature is TemperaturePolicy.REQUIRED:
        temp_reason = Reason.NO_TEMPERATURE if not plausible else (Reason.FEVER if fever else None)
    pass_good = decision.reason in _PASS_GOOD
    reason = (temp_reason or Reason.OK) if pass_good else decision.reason
    if (reason, reason is Reason.OK, temperature_c, tuple(flags)) == (
        decision.reason,
        decision.granted,
        decision.temperature_c,
        decision.flags,
    ):
        return decision
    return replace(
        decision,
        granted=reason is Reason.OK,
        reason=reason,
        temperature_c=temperature_c,
        flags=tuple(flags),
    )


KEY = SigningKey(bytes(range(32))).verify_key
_readings = st.none() | st.sampled_from([36.5, 37.3, 38.0, 20.0, 50.0]) | st.floats(30, 45)

decisions = st.builds(
    Decision,
    granted=st.booleans(),
    reason=st.sampled_from(list(Reason)),
    pass_id=st.none() | st.just("0123456789abcdef"),
    key_id=st.none() | st.just("a1b2c3d4"),
    holder_kind=st.none() | st.just("visitor"),
    display_name=st.none() | st.just("张*华"),
    valid_until=st.none() | st.just(1_800_000_000),
    temperature_c=_readings,
    flags=st.lists(st.sampled_from(list(Flag)), max_size=3).map(tuple),
    detail=st.sampled_from(["", "slot 5"]),
    live_slot=st.none() | st.just(178_000_000),
    signature_digest=st.none() | st.just(b"d" * 32),
)


@given(decisions, st.sampled_from(list(TemperaturePolicy)), _readings)
def test_apply_temperature_matches_reference(
    decision: Decision, policy: TemperaturePolicy, reading: float | None
) -> None:
    ctx = GateContext("hutong-12", "east", {key_id_of(KEY): KEY}, temperature=policy)
    got, want = (
        apply_temperature(decision, ctx, reading),
        ref_apply_temperature(decision, ctx, reading),
    )
    assert [getattr(got, f.name) for f in fields(Decision)] == [
        getattr(want, f.name) for f in fields(Decision)
    ]
    assert (got is decision) == (want is decision)


def test_every_decision_field_is_copied() -> None:
    # apply_temperature builds its new Decision by position: a field added to Decision must be
    # added there too, which this list (and the test above, given a strategy for it) asks for.
    assert [f.name for f in fields(Decision)] == [
        "granted", "reason", "pass_id", "key_id", "holder_kind", "display_name", "valid_until",
        "temperature_c", "flags", "detail", "live_slot", "signature_digest",
    ]  # fmt: skip
