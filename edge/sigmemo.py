"""A bounded memory of issuer signatures already verified at this gate.

A phone shows the same signed pass with a new proof every slot, so the issuer's signature over
it need not be checked again: verification is deterministic, and only a (key, message,
signature) triple that verified is remembered, so a forged pass can never be let in by it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from nacl.signing import VerifyKey

from protocol.epass import SignedPass, signature_valid

MAX_ENTRIES = 20_000  # about 4 MB: every pass of a large compound


class SignatureMemo:
    """signature_valid, remembering up to `size` good signatures, least recently used first out."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self.size = size
        self._good: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def valid(self, signed: SignedPass, key: VerifyKey) -> bool:
        what = bytes(key) + signed.message
        with self._lock:
            if self._good.get(signed.signature) == what:
                self._good.move_to_end(signed.signature)
                return True
        if not signature_valid(signed, key):
            return False
        with self._lock:
            self._good[signed.signature] = what
            if len(self._good) > self.size:
                self._good.popitem(last=False)
        return True
