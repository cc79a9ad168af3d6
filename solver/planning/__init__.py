"""What-if, suggestions, the incremental Planner and audits, built on the engine."""
