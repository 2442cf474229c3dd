"""`stockade doctor`'s host checks: pure judgements (checks), the probes that read the host
(host, kvm, child). Callers add their own checks, such as the service's Redis."""
