"""The console's fleet-control view functions, without a browser: the version summary and its
line in both languages, the policy form as the API's body and its errors, the local-only
redirect."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from starlette.datastructures import FormData

from central.console.fleet_data import version_summary
from central.console.fleet_pages import back_to, policy_errors, policy_values
from central.console.i18n import Words
from central.console.render import environment
from central.fleet import PolicyFields
from central.routes.policy import GateVersion


def gate(name: str, version: int, applied: int | None) -> GateVersion:
    return GateVersion(gate_id=1, gate=name, version=version, applied_version=applied,
                       online=True)  # fmt: skip


def test_the_summary_groups_the_gates_behind_by_what_they_report() -> None:
    found = version_summary([gate("a", 7, 7), gate("b", 7, 6), gate("c", 7, 6),
                             gate("d", 7, None), gate("e", 0, None)])  # fmt: skip
    assert found == {"latest": 7, "behind": [(None, 1), (6, 2)], "pending": 3}
    assert version_summary([gate("a", 3, 3)]) == {"latest": 3, "behind": [], "pending": 0}
    assert version_summary([]) == {"latest": 0, "behind": [], "pending": 0}


def summary_text(lang: str, gates: list[GateVersion]) -> str:
    template = environment().get_template("_partials/policy_summary.html")
    words = Words(lang, ZoneInfo("Asia/Shanghai"))
    html = template.render(t=words, s=version_summary(gates), site="hutong")
    return re.sub(r"<[^>]+>", "", html).strip()


def test_the_summary_line_in_both_languages() -> None:
    behind = [gate("a", 7, 7), gate("b", 7, 6), gate("c", 7, 6)]
    assert summary_text("zh-CN", behind) == "策略 v7；2 个门岗仍为 v6"
    assert summary_text("en", behind) == "policy v7; 2 gates still on v6"
    assert summary_text("en", [gate("a", 7, 6)]) == "policy v7; 1 gate still on v6"
    assert summary_text("en", [gate("a", 7, 7)]) == "policy v7; every gate has applied it"
    assert summary_text("zh-CN", [gate("a", 0, None)]) == "尚未签发策略"


def test_an_empty_field_is_inherited_and_live_codes_only_when_chosen() -> None:
    form = FormData([("temperature", "required"), ("direction", ""), ("fever_threshold", " "),
                     ("live_code_kinds", "visitor"), ("csrf", "x")])  # fmt: skip
    assert policy_values(form) == {"temperature": "required"}
    chosen = FormData([("live_code", "set"), ("live_code_kinds", "visitor")])
    assert policy_values(chosen) == {"live_code_kinds": ["visitor"]}
    assert policy_values(FormData([("live_code", "set")])) == {"live_code_kinds": []}


def test_out_of_range_numbers_get_their_own_words() -> None:
    with pytest.raises(ValidationError) as caught:
        PolicyFields.model_validate({"fever_threshold": "50", "passback_window_s": "-1",
                                     "anti_passback": "sometimes"})  # fmt: skip
    assert policy_errors(caught.value) == {
        "fever_threshold": ["policy.error.fever_threshold"],
        "passback_window_s": ["policy.error.passback_window_s"],
        "anti_passback": ["policy.error.invalid"],
    }


@pytest.mark.parametrize(
    ("target", "lands"),
    [("/events", "/events"), ("/gates/3?x=1", "/gates/3?x=1"), ("//evil.example", "/fleet"),
     ("/\t/evil.example", "/fleet"), ("/\\evil.example", "/fleet"),
     ("https://evil.example", "/fleet"), ("", "/fleet")],
)  # fmt: skip
def test_a_form_returns_only_to_a_local_path(target: str, lands: str) -> None:
    assert back_to(target).headers["location"] == lands
