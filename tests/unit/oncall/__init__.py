"""Unit tests of the on-call core: rotations, working hours, overrides, schedules."""
