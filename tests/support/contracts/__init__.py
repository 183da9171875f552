"""Local contract servers for the vendors changegate talks to: PagerDuty and ServiceNow.

Integration tests run against these instead of the SaaS (none is reachable
here). Each server checks requests against the vendor's published description,
records what it accepted, and fails on demand (faults.py).
"""
