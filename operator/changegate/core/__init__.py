"""What changegate decides: pure functions of the objects and an injected clock.

`change/` decides about changes and rollouts, `oncall/` who is on call,
`incident/` what an alert means; `common` holds what they share (time,
conditions, identities) and `ports` the Protocols the core needs from outside.
The halves never import each other.
"""
