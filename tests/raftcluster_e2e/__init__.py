"""End-to-end tests of the operator, its CRD and chart on the real control plane (tests/kube)."""
