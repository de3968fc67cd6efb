"""The eval harness: datasets run through the same engine as the API (see the measurement issue); empty so far."""
