"""Operating the pipeline: logs, metrics, traces, consumer groups and their lag from the broker."""
