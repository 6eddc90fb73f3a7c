"""docs/conformance/passes-v2.json (device-bound passes, live codes) holds, and the doc lists it."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from edge.config import GateSection
from edge.decide import GateContext, Reason, decide
from protocol.epass import HolderKind, PassData, PassFormatError, key_id_of, parse_pass
from protocol.epass_bound import encode_bound_pass
from protocol.livecode import DeviceAlg
from tests.unit.decide_helpers import MemoryCache
from tests.unit.livecode_helpers import build_vectors, ed25519_phone, p256_phone

DOCS = Path(__file__).resolve().parents[2] / "docs"
VEC: dict[str, Any] = json.loads((DOCS / "conformance" / "passes-v2.json").read_text("utf-8"))
V1: dict[str, Any] = json.loads((DOCS / "conformance" / "passes-v1.json").read_text("utf-8"))
KEYS = {n: SigningKey(bytes.fromhex(VEC["keys"][n]["seed_hex"])) for n in ("issuer", "untrusted")}
RULE_DETAILS = {
    "flag-default": "flag set over",
    "proof-length": "bytes after the signature",
    "truncated": "truncated field",
    "device-point": "not a compressed P-256 point",
}


def context(overrides: dict[str, Any]) -> GateContext:
    settings = {**VEC["gate"], **overrides}
    trusted = [KEYS[name].verify_key for name in settings.pop("trusted")]
    g = GateSection.model_validate(settings)
    return GateContext(
        site=g.site,
        gate=g.gate,
        trusted={key_id_of(vk): vk for vk in trusted},
        direction=g.direction,
        clock_skew_s=g.clock_skew_s,
        temperature=g.temperature,
        live_code_kinds=frozenset(g.live_code_kinds),
    )


def test_phone_keys_are_the_documented_ones() -> None:
    assert ed25519_phone().device.public.hex() == VEC["keys"]["phone_ed25519"]["public_key_hex"]
    assert p256_phone().device.public.hex() == VEC["keys"]["phone_p256"]["public_key_hex"]


@pytest.mark.parametrize("vector", VEC["passes"], ids=lambda v: v["name"])
def test_pass_vector_encodes_parses_and_fits(vector: dict[str, Any]) -> None:
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
    phone = ed25519_phone() if vector["phone"] == "phone_ed25519" else p256_phone()
    assert encode_bound_pass(data, phone.device, KEYS["issuer"]) == vector["text"]
    static, live = parse_pass(vector["text"]), parse_pass(vector["live"]["text"])
    assert static.proof is None and live.proof is not None
    assert static.device == live.device == phone.device
    assert live.for_site(f["site"]) and all(live.for_gate(g) for g in f["gates"])
    assert (static.data.kind, static.data.hours, static.data.max_uses) == (
        data.kind,
        data.hours,
        data.max_uses,
    )
    assert len(vector["live"]["text"]) <= 311


def test_the_file_is_what_the_generator_makes_but_for_p256_signatures() -> None:
    fresh = build_vectors()
    assert fresh["keys"] == VEC["keys"] and fresh["gate"] == VEC["gate"]
    ed25519_only = [
        c for c in VEC["cases"] if "p256" not in c["name"] and "visitor" not in c["name"]
    ]
    fresh_cases = {c["name"]: c for c in fresh["cases"]}
    for case in ed25519_only:
        assert fresh_cases[case["name"]] == case


def _cache(state: dict[str, Any]) -> MemoryCache:
    live = {(u["pass_id"], u["slot"]) for u in state.get("live_codes", [])}
    return MemoryCache(revoked=set(state.get("revoked", [])), live_used=live)


@pytest.mark.parametrize("case", VEC["cases"], ids=lambda c: c["name"])
def test_case_decides(case: dict[str, Any]) -> None:
    d = decide(
        case["text"],
        context(case.get("gate", {})),
        _cache(case.get("cache", {})),
        datetime.fromisoformat(case["now"]),
    )
    expect = case["expect"]
    assert (d.granted, d.reason.value) == (expect["granted"], expect["reason"]), d.detail
    if d.granted and case["text"].startswith("MJ2:"):
        assert d.live_slot is not None


@pytest.mark.parametrize("case", [c for c in VEC["cases"] if "rule" in c], ids=lambda c: c["name"])
def test_malformed_case_is_refused_under_its_rule(case: dict[str, Any]) -> None:
    with pytest.raises(PassFormatError, match=RULE_DETAILS[case["rule"]]):
        parse_pass(case["text"])


def test_every_documented_v2_rule_has_a_case() -> None:
    doc = (DOCS / "protocol.md").read_text("utf-8")
    documented = re.findall(r"^\| v2 `([a-z0-9-]+)` \|", doc, re.M)
    used = {c["rule"] for c in VEC["cases"] if "rule" in c}
    assert set(documented) == used == set(RULE_DETAILS)


def test_every_reason_has_a_case_in_one_of_the_files() -> None:
    reasons = {c["expect"]["reason"] for c in VEC["cases"] + V1["cases"]}
    assert reasons == {r.value for r in Reason}
    live = {Reason.NO_LIVE_CODE, Reason.STALE_CODE, Reason.REPLAYED}
    assert live <= {c["expect"]["reason"] for c in VEC["cases"]}


def test_p256_flag_matches_the_key() -> None:
    visitor = parse_pass(VEC["passes"][1]["live"]["text"])
    assert visitor.device is not None and visitor.device.alg is DeviceAlg.P256
