"""Linux planning: desired state, persistence, spec checks, import and the planner."""
