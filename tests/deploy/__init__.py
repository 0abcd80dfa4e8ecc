"""Deployment files (images, Kubernetes manifests, Lima VMs, scripts), checked offline."""
