//! Kubernetes API server model (work in progress).
