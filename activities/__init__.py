"""Side effects of workflows; classes built once at worker start with their clients."""
