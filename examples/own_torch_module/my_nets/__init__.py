"""A user's own networks, in a package of their own (nothing here imports gravityml)."""
