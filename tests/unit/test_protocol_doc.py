"""docs/protocol.md is part of the contract: its conformance vectors and message list must match.

The vectors live in one file, docs/conformance/passes-v1.json, which another implementation runs
as it is; the document explains it, lists its malformed rules and quotes its keys and gate.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from edge.config import GateSection, KeysSection
from edge.decide import Flag, GateContext, PassUsage, Reason, decide
from protocol import messages
from protocol.base45 import b45encode
from protocol.epass import (
    HolderKind,
    PassData,
    PassFormatError,
    encode_pass,
    key_id_of,
    parse_pass,
)
from protocol.policy import LockdownMode
from tests.unit.decide_helpers import MemoryCache

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "protocol.md"
VEC: dict[str, Any] = json.loads((DOCS / "conformance" / "passes-v1.json").read_text("utf-8"))
KEYS = {name: SigningKey(bytes.fromhex(k["seed_hex"])) for name, k in VEC["keys"].items()}
CASES = {c["name"]: c for c in VEC["cases"]}
# What the parser says for each malformed rule of the document's table: a vector meant for one
# rule but refused under another would prove nothing about the first.
RULE_DETAILS = {
    "prefix": "missing MJ1: prefix",
    "too-long": "pass text too long",
    "base45-alphabet": "outside the base45 alphabet|non-ASCII",
    "base45-length": "dangling character",
    "base45-chunk": "bad base45: chunk value",
    "base45-final": "final chunk value",
    "short": "pass too short",
    "version": "unsupported pass version",
    "holder-kind": "unknown holder kind",
    "valid-times": "valid_from must be before valid_until",
    "hours-any-time": "any time",
    "hours-empty": "start equals end",
    "hours-range": "start must be 0..1439",
    "weekdays": "weekdays must name",
    "field-overrun": "runs past the signature|truncated",
    "field-size": "bytes; at most 48",
    "empty-id": "must not be empty|gate id is empty",
    "gate-count": "more than 32 gates",
    "utf8": "not UTF-8",
    "control-char": "control character",
    "trailing-bytes": "left over before the signature",
}


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def context(overrides: dict[str, Any]) -> GateContext:
    settings = {**VEC["gate"], **overrides}
    trusted = [KEYS[name].verify_key for name in settings.pop("trusted")]
    lockdown = settings.pop("lockdown", None)  # from the signed policy, not the TOML
    g = GateSection.model_validate(settings)
    return GateContext(
        site=g.site,
        gate=g.gate,
        trusted={key_id_of(vk): vk for vk in trusted},
        direction=g.direction,
        tz=ZoneInfo(g.timezone),
        temperature=g.temperature,
        fever_threshold_c=g.fever_threshold,
        anti_passback=g.anti_passback,
        clock_skew_s=g.clock_skew_s,
        passback_window_s=g.passback_window_s,
        lockdown=None if lockdown is None else LockdownMode(lockdown),
    )


def cache(state: dict[str, Any]) -> MemoryCache:
    uses = {
        u["pass_id"]: PassUsage(
            u["uses"],
            u["last_direction"],
            datetime.fromisoformat(u["last_at"]).timestamp(),
            u["last_gate"],
        )
        for u in state.get("usage", [])
    }
    return MemoryCache(revoked=set(state.get("revoked", [])), uses=uses)


def test_keys() -> None:
    for name, key in KEYS.items():
        assert bytes(key.verify_key).hex() == VEC["keys"][name]["public_key_hex"]
        assert key_id_of(key.verify_key).hex() == VEC["keys"][name]["key_id"]


def test_document_quotes_the_file() -> None:
    match = re.search(r"```json conformance-excerpt\n(.*?)```", doc_text(), re.S)
    assert match, "docs/protocol.md lost its excerpt of the conformance file"
    excerpt = json.loads(match.group(1))
    assert excerpt["keys"] == VEC["keys"]
    assert excerpt["gate"] == VEC["gate"]
    for p in excerpt["passes"]:
        assert p in VEC["passes"], p["name"]
    for c in excerpt["cases"]:
        assert CASES[c["name"]] == c


@pytest.mark.parametrize("vector", VEC["passes"], ids=lambda v: v["name"])
def test_pass_vector_encodes_and_parses(vector: dict[str, Any]) -> None:
    f = vector["fields"]
    data = PassData(
        pass_id=bytes.fromhex(f["pass_id"]),
        site=f["site"],
        kind=HolderKind(f["kind"]),
        valid_from=f["valid_from"],
        valid_until=f["valid_until"],
        display_name=f["display_name"],
        gates=tuple(f["gates"]),
        hours=tuple(f["hours"]) if f["hours"] else None,
        weekdays=f["weekdays"],
        max_uses=f["max_uses"],
    )
    assert encode_pass(data, KEYS["issuer"]) == vector["text"]
    assert parse_pass(vector["text"]).data == data


@pytest.mark.parametrize("case", VEC["cases"], ids=lambda c: c["name"])
def test_case_decides(case: dict[str, Any]) -> None:
    d = decide(
        case["text"],
        context(case.get("gate", {})),
        cache(case.get("cache", {})),
        datetime.fromisoformat(case["now"]),
        case["temperature_c"],
    )
    expect = case["expect"]
    assert (d.granted, d.reason.value) == (expect["granted"], expect["reason"]), d.detail
    assert sorted(d.flags) == expect["flags"]


@pytest.mark.parametrize(
    "case", [c for c in VEC["cases"] if "payload_hex" in c], ids=lambda c: c["name"]
)
def test_payload_is_the_text_and_only_malformed_ones_are_signed_by_the_issuer(
    case: dict[str, Any],
) -> None:
    payload = bytes.fromhex(case["payload_hex"])
    assert case["text"] == "MJ1:" + b45encode(payload)
    signed = _signed_by(payload, KEYS["issuer"].verify_key)
    # A malformed vector signed by the issuer fails only for its defect; the rest must not verify.
    assert signed is (case["expect"]["reason"] == "malformed")


def _signed_by(payload: bytes, key: VerifyKey) -> bool:
    try:
        key.verify(payload[:-64], payload[-64:])
    except BadSignatureError:
        return False
    return True


@pytest.mark.parametrize("case", [c for c in VEC["cases"] if "rule" in c], ids=lambda c: c["name"])
def test_malformed_case_is_refused_under_its_rule(case: dict[str, Any]) -> None:
    with pytest.raises(PassFormatError, match=RULE_DETAILS[case["rule"]]):
        parse_pass(case["text"])


def test_every_documented_rule_has_a_case_and_every_case_a_documented_rule() -> None:
    pass_sections = doc_text().split("\n## Messages")[0]  # the wire bounds table comes later
    documented = re.findall(r"^\| `([a-z0-9-]+)` \|", pass_sections, re.M)
    assert len(documented) == len(set(documented))
    used = {c["rule"] for c in VEC["cases"] if "rule" in c}
    assert set(documented) == used == set(RULE_DETAILS)


def test_every_reason_and_flag_has_a_case() -> None:
    # The live-code reasons have their cases in passes-v2.json (tests/unit/test_protocol_doc_v2.py).
    live = {Reason.NO_LIVE_CODE, Reason.STALE_CODE, Reason.REPLAYED}
    assert {c["expect"]["reason"] for c in VEC["cases"]} == {r.value for r in Reason} - live
    flags = {f for c in VEC["cases"] for f in c["expect"]["flags"]}
    assert flags == {f.value for f in Flag}


@pytest.mark.parametrize("config", VEC["configurations"], ids=lambda c: c["name"])
def test_trusted_key_configurations(config: dict[str, Any]) -> None:
    keys = KeysSection.model_validate({"trusted": config["trusted"]})
    if config["expect"] == "refused":
        with pytest.raises(ValueError, match="key id"):
            keys.verify_keys()
    else:
        assert len(keys.verify_keys()) == len(config["trusted"])


def test_every_message_model_and_event_type_is_documented() -> None:
    doc = doc_text()
    models = [
        name
        for name, obj in vars(messages).items()
        if isinstance(obj, type)
        and issubclass(obj, messages._Message)
        and obj is not messages._Message
    ]
    assert models
    for name in models:
        assert f"### {name}" in doc, f"message model {name} is missing from docs/protocol.md"
    from protocol import policy

    wire = [policy.PolicyDocument, policy.SignedPolicy, policy.PolicyRequest, policy.PublicKey]
    for model in [*wire, policy.Lockdown]:
        assert f"### {model.__name__}" in doc, f"policy model {model.__name__} is undocumented"
    for refusal in policy.PolicyRefusal:
        assert f"[`{refusal.value}`]" in doc, f"policy refusal {refusal} is undocumented"
    for event_type in messages.EventType:
        assert f"`{event_type.value}`" in doc, f"event type {event_type} is undocumented"


def test_every_topic_kind_is_documented() -> None:
    from protocol.topics import (
        GateTopic,
        central_live_topic,
        central_replica_status_topic,
        central_status_topic,
    )

    doc = doc_text()
    for kind in GateTopic:
        assert f"`menjin/v1/{{site}}/{{gate}}/{kind.value}`" in doc, kind
    assert "`menjin/v1/{site}/sync`" in doc
    assert f"`{central_status_topic()}`" in doc
    assert f"`{central_live_topic()}`" in doc
    assert f"`{central_replica_status_topic('r1').replace('r1', '{replica}')}`" in doc
