"""Reports: compliance evidence and the DORA figures, from what the halves recorded.

Pure, like the rest of the core. It sits above the change, on-call and
incident halves (it reads what they record: DeploymentRecords, ChangeRequests,
Incidents), and none of them imports it. `evidence` is the slim input model,
`compliance` the auditor's report, `dora` the delivery figures.
"""
