"""The incident half of the core (pure): alert intake mapping, dedup and lifecycle.

Empty until the incidents issue fills it; it imports nothing of core.change.
"""
