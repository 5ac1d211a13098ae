"""infra/access.py: every function of app.py declares what it touches, in names the models know."""

from __future__ import annotations

import pytest
from chalice import Chalice, Rate

import app
from chalicelib.config import Settings
from chalicelib.db import all_models
from infra import access
from infra.functions import functions
from infra.template import merge_template

SECRETS = [name for name in Settings.model_fields if f"{name}_parameter" in Settings.model_fields]


def test_every_function_of_app_py_has_a_declaration_and_every_declaration_a_function():
    names = [function.name for function in functions(app.app)]
    assert sorted(names) == sorted(access.ACCESS)
    assert access.problems(names, all_models(), SECRETS) == []


def test_a_function_added_to_app_py_without_a_declaration_stops_packaging():
    extended = Chalice(app_name="siyu")
    extended.routes.update(app.app.routes)
    extended.pure_lambda_functions.extend(app.app.pure_lambda_functions)
    extended.event_sources.extend(app.app.event_sources)

    @extended.schedule(Rate(1, unit=Rate.HOURS), name="store-census")
    def store_census(event: object) -> None:
        pass

    with pytest.raises(ValueError, match="store-census: app.py defines this function but infra/access.py declares"):
        merge_template(extended, all_models(), "dev")


def test_a_declaration_naming_no_table_domain_or_secret_is_refused():
    declarations = {
        **access.ACCESS,
        "ledger-audit": access.Access(
            domains={"loyalty": access.READ},
            tables={"points-ledger": access.READ},
            parameters=frozenset({"ledger_key"}),
        ),
    }
    names = [function.name for function in functions(app.app)]
    assert access.problems(names, all_models(), SECRETS, declarations) == [
        "ledger-audit: no domain 'loyalty'",
        "ledger-audit: no table 'points-ledger'",
        "ledger-audit: no secret setting 'ledger_key'",
    ]


def test_only_the_api_handler_may_hold_the_token_signing_key():
    declarations = {**access.ACCESS, "tier-review": access.Access(parameters=frozenset({"token_signing_key"}))}
    names = [function.name for function in functions(app.app)]
    assert access.problems(names, all_models(), SECRETS, declarations) == [
        "tier-review: only the API handler may read 'token_signing_key'",
    ]


def test_a_domain_stands_for_all_of_its_tables_and_a_table_adds_verbs_to_it():
    grants = access.table_grants(
        access.Access(domains={"members": access.READ}, tables={"members": access.WRITE}), all_models(),
    )
    assert {grant.table: grant.verbs for grant in grants} == {
        "guides": access.READ,
        "identities": access.READ,
        "members": access.READ | access.WRITE,
        "role-grants": access.READ,
    }
    assert next(grant for grant in grants if grant.table == "members").indexes == ("by-guide", "created-day")


def test_every_table_is_used_by_some_function():
    models = all_models()
    used = {grant.table for declared in access.ACCESS.values() for grant in access.table_grants(declared, models)}
    assert used == {model.Meta.table for model in all_models()}
