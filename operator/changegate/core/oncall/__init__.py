"""Who is on call (pure): rotations, working hours, overrides and escalation.

Empty until the incidents issue fills it; it imports nothing of core.change.
"""
