"""Sites, policies, the cost and time model, the planner and budgets (layer 3)."""
