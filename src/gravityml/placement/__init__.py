"""Sites, policies, the cost and time model, the planner and budgets (layer 3).

A pipeline of pure functions: :func:`offer_table` flattens a catalog once; :func:`demand_for`
describes a job; :func:`plan` filters by policy and hardware, estimates cost and time, and chooses;
``_render`` turns a :class:`Plan` into rows, a paragraph, JSON or a PNG.
"""

from gravityml.placement._buy_rent import BuyVsRent, Option, buy_vs_rent, plot_buy_vs_rent
from gravityml.placement._demand import Calibration, Demand, demand_for, remaining_budget
from gravityml.placement._hardware import HARDWARE, THIS_MACHINE, Hardware, hardware, this_machine_tflops
from gravityml.placement._ledger import Entry, Meter, spent_usd, summarise
from gravityml.placement._ledger import append as ledger_append
from gravityml.placement._ledger import read as ledger_read
from gravityml.placement._offers import OfferTable, offer_table
from gravityml.placement._planner import Candidate, Plan, choose, filter_rows, plan, plan_many
from gravityml.placement._render import COLUMNS, explain, plot, rejections, rows, to_json

__all__ = [
    "COLUMNS",
    "HARDWARE",
    "THIS_MACHINE",
    "BuyVsRent",
    "Calibration",
    "Candidate",
    "Demand",
    "Entry",
    "Hardware",
    "Meter",
    "OfferTable",
    "Option",
    "Plan",
    "buy_vs_rent",
    "choose",
    "demand_for",
    "explain",
    "filter_rows",
    "hardware",
    "ledger_append",
    "ledger_read",
    "offer_table",
    "plan",
    "plan_many",
    "plot",
    "plot_buy_vs_rent",
    "rejections",
    "remaining_budget",
    "rows",
    "spent_usd",
    "summarise",
    "this_machine_tflops",
    "to_json",
]
