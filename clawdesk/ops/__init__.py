"""Operating the pipeline: consumer groups, their lag read from the broker, and its export."""
