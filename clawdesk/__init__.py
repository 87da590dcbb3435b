"""Shared code of the pipeline: settings, the Faust app, services and one subpackage per concern."""
