"""Measuring restorers: paired and unpaired evaluation, temporal consistency, identity judges, reports, benchmarks."""
