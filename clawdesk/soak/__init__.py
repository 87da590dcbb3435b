"""`clawdesk soak`: drive the system through faults; prove nothing is lost or sent twice."""
