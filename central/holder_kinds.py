"""What each holder kind is called in Chinese and English, on printed cards and in sheets."""

from __future__ import annotations

from protocol.epass import HolderKind

# The names an office writes in its sheets and reads on a card (zh-CN, en).
KIND_NAMES: dict[HolderKind, tuple[str, str]] = {
    HolderKind.RESIDENT: ("住户", "Resident"),
    HolderKind.TENANT: ("租户", "Tenant"),
    HolderKind.VISITOR: ("访客", "Visitor"),
    HolderKind.STAFF: ("工作人员", "Staff"),
    HolderKind.DELIVERY: ("快递外卖", "Delivery"),
    HolderKind.CONTRACTOR: ("施工人员", "Contractor"),
}
# More words offices use in a sheet's kind column for the same kinds.
_ALIASES = {"居民": HolderKind.RESIDENT, "业主": HolderKind.RESIDENT, "快递": HolderKind.DELIVERY,
            "外卖": HolderKind.DELIVERY, "员工": HolderKind.STAFF, "施工": HolderKind.CONTRACTOR,
            "租客": HolderKind.TENANT}  # fmt: skip
_BY_NAME = {
    **{zh: kind for kind, (zh, _) in KIND_NAMES.items()},
    **{en.lower(): kind for kind, (_, en) in KIND_NAMES.items()},
    **_ALIASES,
}


def kind_from_sheet(value: str) -> str:
    """'住户' or 'Resident' -> 'resident'; anything unknown is returned for validation to reject."""
    kind = _BY_NAME.get(value.strip().lower())
    return kind.value if kind is not None else value
