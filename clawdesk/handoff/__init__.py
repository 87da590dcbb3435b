"""Human handoff: the ticket every handoff gets (retried until the ticket system has it)
and the agent inbox's view of the conversations humans own."""
