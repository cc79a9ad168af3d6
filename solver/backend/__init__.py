"""Z3: the lexicographic optimum of a domain's problem and minimal conflicts (the only package that imports z3)."""
