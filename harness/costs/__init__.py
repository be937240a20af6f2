"""Costs: the price sheet (prices.py), how calls and strategies are priced (pricing.py), token estimates
(tokens.py), budget_usd and the spend ledger (budget.py), monthly cost and payback (model.py), the estimate before a
run (estimate.py), and the one dollar formatter (money.py)."""
