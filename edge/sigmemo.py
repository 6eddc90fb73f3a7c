"""A bounded memory of issuer signatures already verified at this gate.

A phone shows the same signed pass with a new proof every slot, so the issuer's signature over
it need not be checked again: verification is deterministic, and only a (key, message,
signature) triple that verified is remembered, so a forged pass can never be let in by it.

The gate's store remembers them too, by `signature_digest`, so a restart does not make every
pass a first one again (table verified_signatures: edge/pass_state.py, and its in-memory
mirror, edge/pass_mirror.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from nacl.signing import VerifyKey

from protocol.epass import SIGNATURE_LEN, SignedPass

MAX_ENTRIES = 20_000  # about 4 MB: every pass of a large compound
_DIGEST_CONTEXT = b"menjin verified issuer signature 1\n"


def signature_digest(signed: SignedPass, key: VerifyKey) -> bytes:
    """Names one (issuer key, signature, signed bytes) triple: SHA-256 over all three, the
    fixed-size key and signature first, so no two triples share an input."""
    assert len(signed.signature) == SIGNATURE_LEN  # the parsers take exactly that many bytes
    return hashlib.sha256(_DIGEST_CONTEXT + bytes(key) + signed.signature + signed.message).digest()


class SignatureMemo:
    """Up to `size` good signatures, least recently used first out. The caller remembers a
    signature only once it verified (or the store vouched for it): see edge/decide.py."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self.size = size
        self._good: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def remembered(self, signed: SignedPass, key: VerifyKey) -> bool:
        what = bytes(key) + signed.message
        with self._lock:
            if self._good.get(signed.signature) == what:
                self._good.move_to_end(signed.signature)
                return True
        return False

    def remember(self, signed: SignedPass, key: VerifyKey) -> None:
        with self._lock:
            self._good[signed.signature] = bytes(key) + signed.message
            self._good.move_to_end(signed.signature)
            if len(self._good) > self.size:
                self._good.popitem(last=False)
