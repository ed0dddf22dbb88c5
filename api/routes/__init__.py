"""One router per resource, gathered in `api.app`."""
