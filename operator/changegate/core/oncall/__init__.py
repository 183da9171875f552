"""Who is on call (pure): rotations, working hours, holidays and overrides.

`wallclock` turns local wall-clock times into instants across daylight-saving
changes; `rotation` lays a rotation's shifts on that clock; `working_hours`
says when working hours are; `schedule` combines them with overrides into the
answer the controller, the CLI and escalation use. Time is always a parameter.
Imports only `changegate.api` and `changegate.core.common`, never `core.change`.
"""
