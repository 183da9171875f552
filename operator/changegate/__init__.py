"""changegate: change compliance for Kubernetes.

An operator, built on Kopf, that admits Deployment rollouts only under an
approved ChangeRequest and records the evidence auditors ask for.
"""

__version__ = "0.1.0"
