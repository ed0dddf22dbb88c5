"""Settings, client factories, the local stack and the processes that run our code."""
