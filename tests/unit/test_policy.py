"""The signed policy document: the exact signed bytes, and every refusal a gate makes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edge.decide import GateContext
from edge.live_policy import LocalPolicy, build_context
from protocol.epass import HolderKind, key_id_of
from protocol.policy import (
    POLICY_DOMAIN,
    Lockdown,
    LockdownMode,
    PolicyDocument,
    PolicyError,
    PolicyRefusal,
    PublicKey,
    SignedPolicy,
    check_applicable,
    sign_policy,
    verify_policy,
)

POLICY_KEY = SigningKey(bytes(range(32)))
PASS_KEY = SigningKey(bytes(range(1, 33)))
PINNED = {key_id_of(POLICY_KEY.verify_key).hex(): POLICY_KEY.verify_key}


def document(**changes: object) -> PolicyDocument:
    fields: dict[str, object] = {
        "site": "hutong-12", "gate": "east", "version": 3,
        "issued_at": datetime(2026, 12, 1, tzinfo=UTC),
        "trusted_keys": [PublicKey.of(PASS_KEY.verify_key)],
    } | changes  # fmt: skip
    return PolicyDocument.model_validate(fields)


def test_the_signature_covers_the_domain_and_the_document_text_exactly() -> None:
    signed = sign_policy(document(), POLICY_KEY)
    message = POLICY_DOMAIN + signed.document.encode("utf-8")
    assert POLICY_DOMAIN == b"menjin-policy-v1\n"
    POLICY_KEY.verify_key.verify(message, bytes.fromhex(signed.signature))  # raises if not
    assert verify_policy(signed.model_dump_json().encode(), PINNED) == document()


def refusal(raw: bytes) -> PolicyRefusal:
    with pytest.raises(PolicyError) as info:
        verify_policy(raw, PINNED)
    return info.value.refusal


def test_an_edited_document_or_another_key_is_refused() -> None:
    signed = sign_policy(document(), POLICY_KEY)
    edited = signed.model_copy(update={"document": signed.document.replace('"east"', '"west"')})
    assert refusal(edited.model_dump_json().encode()) is PolicyRefusal.BAD_SIGNATURE
    other = sign_policy(document(), SigningKey(bytes(range(2, 34))))
    assert refusal(other.model_dump_json().encode()) is PolicyRefusal.UNKNOWN_KEY
    forged = other.model_copy(update={"key_id": signed.key_id})  # claims the pinned key
    assert refusal(forged.model_dump_json().encode()) is PolicyRefusal.BAD_SIGNATURE


@given(st.binary(max_size=200))
def test_garbage_is_refused_as_garbage(raw: bytes) -> None:
    assert refusal(raw) is PolicyRefusal.GARBAGE


def test_a_signed_text_that_is_no_document_is_garbage() -> None:
    text = '{"v": 1, "site": "hutong-12", "surprise": true}'
    sig = POLICY_KEY.sign(POLICY_DOMAIN + text.encode()).signature.hex()
    raw = SignedPolicy(document=text, key_id=next(iter(PINNED)), signature=sig)
    assert refusal(raw.model_dump_json().encode()) is PolicyRefusal.GARBAGE


def test_only_this_gate_and_a_newer_version_apply() -> None:
    check_applicable(document(), "hutong-12", "east", have=2)
    for site, gate, have, why in [
        ("hutong-12", "west", 2, PolicyRefusal.WRONG_GATE),
        ("other", "east", 2, PolicyRefusal.WRONG_GATE),
        ("hutong-12", "east", 3, PolicyRefusal.STALE),
        ("hutong-12", "east", 9, PolicyRefusal.STALE),
    ]:
        with pytest.raises(PolicyError) as info:
            check_applicable(document(), site, gate, have)
        assert info.value.refusal is why


def test_the_stricter_lockdown_holds_and_a_local_release_adds_to_central() -> None:
    base = GateContext(site="hutong-12", gate="east", trusted={})
    doc = document(lockdown=Lockdown(id="4", mode=LockdownMode.RESIDENTS_ONLY))
    local = LocalPolicy(lockdown=LockdownMode.FULL, emergency_release=True)
    ctx = build_context(base, doc, local)
    assert (ctx.lockdown, ctx.emergency_release, ctx.policy_version) == (LockdownMode.FULL, True, 3)
    assert set(ctx.trusted) == {key_id_of(PASS_KEY.verify_key)}
    weaker = build_context(base, document(lockdown=Lockdown(id="4", mode=LockdownMode.FULL)),
                           LocalPolicy(lockdown=LockdownMode.RESIDENTS_ONLY))  # fmt: skip
    assert weaker.lockdown is LockdownMode.FULL


def test_a_trusted_key_under_the_wrong_id_is_refused() -> None:
    bad = PublicKey(key_id="00000000", public_key=bytes(PASS_KEY.verify_key).hex())
    with pytest.raises(ValueError, match="key id"):
        build_context(GateContext(site="s", gate="g", trusted={}), document(trusted_keys=[bad]),
                      LocalPolicy())  # fmt: skip


def test_live_code_kinds_come_from_the_signed_document_else_the_toml() -> None:
    base = GateContext(
        site="hutong-12", gate="east", trusted={}, live_code_kinds=frozenset({HolderKind.VISITOR})
    )
    assert build_context(base, None, LocalPolicy()).live_code_kinds == {HolderKind.VISITOR}
    doc = document(live_code_kinds=[HolderKind.RESIDENT, HolderKind.TENANT])
    ctx = build_context(base, doc, LocalPolicy())
    assert ctx.live_code_kinds == {HolderKind.RESIDENT, HolderKind.TENANT}
