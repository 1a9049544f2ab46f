"""Settlement: rules per agent and channel, statements computed from the ledger, confirmed once.

Tables (`models`): counterparties, rule versions, runs and their lines. What other modules use:
- `rules`: `RuleInput`, `Tier`, `set_rule`, `rule_in_force`, `rules_of`;
- `runs`: `create_run`, `confirm`, `get_run`, `list_runs`, `lines_of`;
- `exports`: the statement as CSV, XLSX and PDF; `check`: statements against ledger and orders;
- `tasks.run_due`: the worker's drafts at each cycle's end.
The rules, the arithmetic and the ledger entries are in docs/settlement.md.
"""

from kaquan.settlement.check import SettlementCheck, check
from kaquan.settlement.errors import (
    InvalidFormat,
    InvalidPeriod,
    InvalidRule,
    NoRule,
    PeriodOverlaps,
    RunNotFound,
    StaleDraft,
    UnknownCounterparty,
)
from kaquan.settlement.exports import FORMATS, money, sheet
from kaquan.settlement.models import SettlementLine, SettlementRule, SettlementRun
from kaquan.settlement.parties import Party, resolve
from kaquan.settlement.rules import RuleInput, Tier, describe, parse_tiers, rule_in_force, rules_of, set_rule
from kaquan.settlement.runs import (
    Confirmed,
    StatementFile,
    confirm,
    create_run,
    get_run,
    lines_of,
    list_runs,
    statement_file,
    statement_of,
)
from kaquan.settlement.statement import Figures, figures_of
from kaquan.settlement.tasks import run_due

__all__ = [
    "FORMATS",
    "Confirmed",
    "Figures",
    "InvalidFormat",
    "InvalidPeriod",
    "InvalidRule",
    "NoRule",
    "Party",
    "PeriodOverlaps",
    "RuleInput",
    "RunNotFound",
    "SettlementCheck",
    "SettlementLine",
    "SettlementRule",
    "SettlementRun",
    "StaleDraft",
    "StatementFile",
    "Tier",
    "UnknownCounterparty",
    "check",
    "confirm",
    "create_run",
    "describe",
    "figures_of",
    "get_run",
    "lines_of",
    "list_runs",
    "money",
    "parse_tiers",
    "resolve",
    "rule_in_force",
    "rules_of",
    "run_due",
    "set_rule",
    "sheet",
    "statement_file",
    "statement_of",
]
