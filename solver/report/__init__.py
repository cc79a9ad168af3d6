"""Frozen result records: answers, conflicts, what holds a domain back, audits and plans."""
