"""Test helpers for the pure gate policy (edge/decide.py), shared by the decide, signature
memo, live-code and protocol-doc tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.decide import PassRecord, PassUsage


@dataclass
class MemoryCache:
    """The CacheView protocol over dicts: the policy is pure, so no file is needed here."""

    revoked: set[str] = field(default_factory=set)
    uses: dict[str, PassUsage] = field(default_factory=dict)
    live_used: set[tuple[str, int]] = field(default_factory=set)

    verified: set[bytes] = field(default_factory=set)

    def pass_record(
        self, pass_id: str, live_slot: int | None, signature_digest: bytes | None
    ) -> PassRecord:
        return PassRecord(
            revoked=pass_id in self.revoked,
            usage=self.uses.get(pass_id),
            live_code_used=(pass_id, live_slot) in self.live_used,
            signature_verified=signature_digest in self.verified,
        )
