"""Jobs: worker processes, launching, liveness, cancellation and the run queue."""
