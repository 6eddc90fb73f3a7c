"""The signed gate policy: central's document of what one gate enforces, and how it is verified.

The signature covers bytes, not a re-serialisation: `SignedPolicy.document` is a JSON string,
and the Ed25519 signature is over `POLICY_DOMAIN + document.encode("utf-8")`. A verifier checks
those exact bytes first and only then parses them, so no canonical JSON form is needed
(docs/protocol.md, "Signed policy").
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.epass import HolderKind, key_id_of
from protocol.gate_policy import AntiPassback, Direction, TemperaturePolicy
from protocol.topics import ID_PATTERN

POLICY_DOMAIN = b"menjin-policy-v1\n"


class LockdownMode(StrEnum):
    """封控: who may still pass while a compound is locked down."""

    RESIDENTS_ONLY = "residents_only"  # residents, tenants and staff pass
    FULL = "full"  # only staff pass


# Who passes in each mode; everyone else is denied `lockdown`.
LOCKDOWN_ADMITS: dict[LockdownMode, frozenset[HolderKind]] = {
    LockdownMode.RESIDENTS_ONLY: frozenset(
        {HolderKind.RESIDENT, HolderKind.TENANT, HolderKind.STAFF}
    ),
    LockdownMode.FULL: frozenset({HolderKind.STAFF}),
}


class PolicyRefusal(StrEnum):
    """Why a gate refused a policy document; the strings are part of the contract."""

    GARBAGE = "garbage"  # not a SignedPolicy, or its document is not a PolicyDocument
    UNKNOWN_KEY = "unknown_key"  # signed by a key this gate has not pinned
    BAD_SIGNATURE = "bad_signature"
    WRONG_GATE = "wrong_gate"  # for another site or gate
    STALE = "stale"  # version not newer than the one the gate holds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublicKey(_Model):
    """An Ed25519 public key and the key id (its first 4 SHA-256 bytes) that names it."""

    key_id: str = Field(pattern=r"^[0-9a-f]{8}$", description="8 hex digits.")
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="64 hex digits.")

    @classmethod
    def of(cls, key: VerifyKey) -> PublicKey:
        return cls(key_id=key_id_of(key).hex(), public_key=bytes(key).hex())

    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes.fromhex(self.public_key))


class Lockdown(_Model):
    """An active lockdown as a gate enforces it."""

    id: str = Field(min_length=1, max_length=64, description="Central's lockdown id, or 'local'.")
    mode: LockdownMode = Field(description="residents_only or full.")
    reason: str = Field("", max_length=200, description="Why, as the admin wrote it.")


class PolicyDocument(_Model):
    """What one gate enforces; central signs it with a policy key."""

    v: Literal[1] = Field(default=1, description="Schema version.")
    site: str = Field(pattern=ID_PATTERN, description="The gate's site.")
    gate: str = Field(pattern=ID_PATTERN, description="The gate this document is for.")
    version: int = Field(ge=1, description="Grows with every change; a gate never goes back.")
    issued_at: datetime = Field(description="When central signed it.")
    direction: Direction = Field(Direction.BOTH, description="in, out or both.")
    temperature: TemperaturePolicy = Field(
        TemperaturePolicy.OFF, description="off, advisory or required."
    )
    fever_threshold: float = Field(37.3, ge=35.0, le=42.0, description="Fever at or above, °C.")
    anti_passback: AntiPassback = Field(AntiPassback.OFF, description="off, soft or hard.")
    passback_window_s: int = Field(60, ge=0, le=86_400, description="Two-way re-use window.")
    trusted_keys: list[PublicKey] = Field(
        min_length=1, max_length=16, description="Pass-signing keys the gate accepts."
    )
    policy_keys: list[PublicKey] = Field(
        default_factory=list,
        max_length=4,
        description="Policy keys the gate pins from now on; empty keeps the pinned ones.",
    )
    lockdown: Lockdown | None = Field(default=None, description="Active lockdown, if any.")
    emergency_release: bool = Field(
        default=False, description="Hold the door open until a document without it."
    )
    live_code_kinds: list[HolderKind] = Field(
        default_factory=list, description="Holder kinds that must show a live code (issue #12)."
    )


class SignedPolicy(_Model):
    """Central -> gate on `.../policy`, retained: a PolicyDocument and its signature."""

    v: Literal[1] = Field(default=1, description="Schema version.")
    document: str = Field(max_length=16_384, description="The PolicyDocument as JSON text.")
    key_id: str = Field(pattern=r"^[0-9a-f]{8}$", description="The policy key that signed.")
    signature: str = Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature, hex.")


class PolicyRequest(_Model):
    """Gate -> central on `.../policyreq`: send me my current document if newer than `have`."""

    v: Literal[1] = Field(default=1, description="Schema version.")
    have: int = Field(ge=0, description="Version the gate holds (0: only its TOML).")


class PolicyError(ValueError):
    """A policy document a gate must refuse; `refusal` says why."""

    def __init__(self, refusal: PolicyRefusal, detail: str) -> None:
        super().__init__(f"{refusal.value}: {detail}")
        self.refusal = refusal


def sign_policy(document: PolicyDocument, key: SigningKey) -> SignedPolicy:
    text = document.model_dump_json()
    signature = key.sign(POLICY_DOMAIN + text.encode("utf-8")).signature
    return SignedPolicy(
        document=text, key_id=key_id_of(key.verify_key).hex(), signature=signature.hex()
    )


def verify_policy(raw: bytes, pinned: dict[str, VerifyKey]) -> PolicyDocument:
    """Parse and verify a SignedPolicy payload against the pinned policy keys (by key id)."""
    try:
        signed = SignedPolicy.model_validate_json(raw)
    except ValidationError as exc:
        raise PolicyError(PolicyRefusal.GARBAGE, str(exc.errors()[:1])) from exc
    key = pinned.get(signed.key_id)
    if key is None:
        raise PolicyError(PolicyRefusal.UNKNOWN_KEY, f"key {signed.key_id} is not pinned")
    try:
        key.verify(POLICY_DOMAIN + signed.document.encode("utf-8"), bytes.fromhex(signed.signature))
    except BadSignatureError as exc:
        raise PolicyError(PolicyRefusal.BAD_SIGNATURE, f"key {signed.key_id}") from exc
    try:
        return PolicyDocument.model_validate_json(signed.document)
    except ValidationError as exc:
        # Signed by a pinned key yet not a document this gate understands: refuse, keep ours.
        raise PolicyError(PolicyRefusal.GARBAGE, str(exc.errors()[:1])) from exc


def check_applicable(document: PolicyDocument, site: str, gate: str, have: int) -> None:
    """Raise PolicyError unless the document is for this gate and newer than `have`."""
    if (document.site, document.gate) != (site, gate):
        raise PolicyError(
            PolicyRefusal.WRONG_GATE, f"document is for {document.site}/{document.gate}"
        )
    if document.version <= have:
        raise PolicyError(PolicyRefusal.STALE, f"version {document.version}, have {have}")
