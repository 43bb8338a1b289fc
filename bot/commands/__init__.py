"""Chat commands: grammar, the declared commands, and the dispatcher that runs them."""
