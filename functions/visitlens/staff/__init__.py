"""Staff: enrolment photos, their embeddings, and the per-site galleries the edge filters with."""
