"""A real Kubernetes control plane plus a process kubelet, for end-to-end tests."""
