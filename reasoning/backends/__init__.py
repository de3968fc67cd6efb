"""Model backends: each implements `reasoning.types.ModelBackend` and translates its errors to BackendError."""
