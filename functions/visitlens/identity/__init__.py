"""Identity: who a track is, which views to keep, visits."""
